/* Lumina HAL twin kernel: programming the array (docs/physics.md section 2) at memory speed.
 *
 * lk_heater_codes is the host side (weights -> heater DAC codes), lk_program the chip side
 * (codes -> the packed W_eff the forward pass reads, at one temperature), lk_cell_normals the
 * per-cell fabrication draws on their own. Every step is the numpy reference's
 * (lumina_hal/twin/reference.py) in the same double-precision operations and order, with
 * libm's acos for the host codes and the documented polynomial cos (cos_poly), so the packed
 * weights equal
 * reference.program_codes(...).effective(p) rounded to float. The cell normals come from a
 * counter-based hash and the kernel's float ziggurat (docs/physics.md section 2 step 5), so
 * no array of draws is ever stored: a temperature change re-derives them from the codes.
 *
 * Work is split over the kernel's thread pool by blocks of whole 16-row panels (16 rows for the
 * host codes, 64 for lk_program, whose blocks each recompute the 2 rows of their crosstalk
 * halo); each cell is computed by one thread from its own inputs, so the bits do not depend
 * on the thread count.
 */
#define _POSIX_C_SOURCE 200809L

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>

#include "lk_internal.h"
#include "lumina_kernel.h"

#if LK_X86
#include <immintrin.h>
#define LK_T512 __attribute__((target("avx512f")))
#endif

#define LK_PI 3.14159265358979323846
#define LK_GOLDEN UINT64_C(0x9E3779B97F4A7C15)

static inline uint64_t sm(uint64_t z) {
    z += LK_GOLDEN;
    z = (z ^ (z >> 30)) * UINT64_C(0xBF58476D1CE4E5B9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94D049BB133111EB);
    return z ^ (z >> 31);
}

/* The hash of cell (i, j) of the device whose serial key is `key`: the low 32 bits draw its
 * fabrication normal, the high 32 bits its arm-imbalance normal. */
static inline uint64_t cell_hash(uint64_t base, int64_t i, int64_t j) {
    return sm(base ^ (((uint64_t)i << 32) | (uint64_t)j));
}

/* One standard normal from word w of cell hash h, stream s (0: fabrication, 1: arm): the
 * ziggurat's fast path on w; if it misses, the slow path continues on the xoshiro256++ stream
 * keyed lk_rng_panel_key(h, s). */
static inline double cell_normal(uint64_t h, uint32_t w, uint64_t s) {
    float z;
    if (__builtin_expect(lk_zig_fast(w, &z), 1)) return (double)z;
    lk_rng g;
    lk_rng_panel_key(&g, h, s);
    return (double)lk_zig_slow(&g, w);
}

static inline uint64_t normals_base(uint64_t key) { return sm(key ^ sm(0)); }

int lk_cell_normals(uint64_t key, int64_t rows, int64_t cols, double *fab, double *arm) {
    if (rows <= 0 || cols <= 0 || fab == NULL || arm == NULL) return LK_EINVAL;
    lk_ziggurat_init();
    const uint64_t base = normals_base(key);
    for (int64_t i = 0; i < rows; i++) {
        for (int64_t j = 0; j < cols; j++) {
            const uint64_t h = cell_hash(base, i, j);
            fab[i * cols + j] = cell_normal(h, (uint32_t)h, 0);
            arm[i * cols + j] = cell_normal(h, (uint32_t)(h >> 32), 1);
        }
    }
    return LK_OK;
}

int lk_zig_table(int32_t layer, float *width, uint32_t *k) {
    if (layer < 0 || layer >= LK_ZIG_LAYERS || width == NULL || k == NULL) return LK_EINVAL;
    lk_ziggurat_init();
    *width = lk_zig_w[layer];
    *k = lk_zig_k[layer];
    return LK_OK;
}

/* ------------------------------------------------------------------------------------ */
/* Parallel rows                                                                         */
/* ------------------------------------------------------------------------------------ */

typedef struct row_job {
    void (*unit)(const void *ctx, int64_t first, int64_t last, double *scratch);
    const void *ctx;
    int64_t units;        /* work units (row blocks) */
    int64_t rows_per;     /* rows per unit */
    int64_t total_rows;
    int64_t scratch_len;  /* doubles of scratch per worker */
    atomic_llong next;
    atomic_int failed;
} row_job;

static void row_worker(void *arg, int worker) {
    (void)worker;
    row_job *job = (row_job *)arg;
    double *scratch = NULL;
    if (job->scratch_len > 0) {
        scratch = (double *)malloc((size_t)job->scratch_len * sizeof(double));
        if (scratch == NULL) {
            atomic_store(&job->failed, 1);
            return;
        }
    }
    for (;;) {
        const int64_t u = atomic_fetch_add(&job->next, 1);
        if (u >= job->units) break;
        const int64_t first = u * job->rows_per;
        int64_t last = first + job->rows_per;
        if (last > job->total_rows) last = job->total_rows;
        job->unit(job->ctx, first, last, scratch);
    }
    free(scratch);
}

static int run_rows(void (*unit)(const void *, int64_t, int64_t, double *), const void *ctx,
                    int64_t total_rows, int64_t rows_per, int64_t cells, int32_t threads,
                    int64_t scratch_len) {
    row_job job;
    job.unit = unit;
    job.ctx = ctx;
    job.rows_per = rows_per;
    job.total_rows = total_rows;
    job.units = (total_rows + rows_per - 1) / rows_per;
    job.scratch_len = scratch_len;
    atomic_init(&job.next, 0);
    atomic_init(&job.failed, 0);
    const int workers = lk_workers_for(cells, threads, job.units);
    if (workers == 1) {
        row_worker(&job, 0);
    } else {
        lk_pool_run(workers, row_worker, &job);
    }
    /* A worker that could not allocate its scratch leaves its share to the others; if no
     * worker could, units are left over. */
    if (atomic_load(&job.next) < job.units) return LK_ENOMEM;
    return LK_OK;
}

/* ------------------------------------------------------------------------------------ */
/* Host side: heater codes                                                               */
/* ------------------------------------------------------------------------------------ */

/* arccos on [0, 1] as docs/physics.md section 2 ("Arithmetic") defines it: fdlibm's e_acos.c
 * rational approximation (+, -, *, /, sqrt), the same bits as codes.acos_poly in numpy. */
#define LK_PIO2_HI 1.57079632679489655800e+00
#define LK_PIO2_LO 6.12323399573676603587e-17
static const double lk_acos_p[6] = {1.66666666666666657415e-01, -3.25565818622400915405e-01,
                                    2.01212532134862925881e-01, -4.00555345006794114027e-02,
                                    7.91534994289814532176e-04, 3.47933107596021167570e-05};
static const double lk_acos_q[4] = {-2.40339491173441421878e+00, 2.02094576023350569471e+00,
                                    -6.88283971605453293030e-01, 7.70381505559019352791e-02};

static LK_ALWAYS_INLINE double acos_ratio(double z) {
    const double *p = lk_acos_p, *q = lk_acos_q;
    const double num = z * (p[0] + z * (p[1] + z * (p[2] + z * (p[3] + z * (p[4] + z * p[5])))));
    return num / (1.0 + z * (q[0] + z * (q[1] + z * (q[2] + z * q[3]))));
}

static inline double acos_poly(double x) {
    if (x < 0.5) return LK_PIO2_HI - (x - (LK_PIO2_LO - x * acos_ratio(x * x)));
    if (x == 1.0) return 0.0;
    const double z = (1.0 - x) * 0.5;
    const double s = sqrt(z);
    uint64_t bits;
    __builtin_memcpy(&bits, &s, sizeof bits);
    bits &= UINT64_C(0xFFFFFFFF00000000);
    double df;
    __builtin_memcpy(&df, &bits, sizeof df);
    const double c = (z - df * df) / (s + df);
    return 2.0 * (df + (acos_ratio(z) * s + c));
}

typedef struct codes_ctx {
    const double *w;
    const float *w32; /* the float32 matrix instead of w (lk_heater_codes_f32), or NULL */
    int64_t cols;
    int32_t bits;
    double scale;
    const double *row_env, *col_env;
    int32_t *codes;
    double *peaks; /* max |w| per 16-row unit (the first pass) */
    int vec512;
} codes_ctx;

/* max |w[k]| for k in [begin, end); NaN if any w[k] is NaN (as numpy's max). */
static double peak_abs(const double *w, int64_t begin, int64_t end) {
    double peak = 0.0;
    int nan = 0;
    for (int64_t k = begin; k < end; k++) {
        const double a = fabs(w[k]);
        nan |= a != a;
        peak = a > peak ? a : peak;
    }
    return nan ? NAN : peak;
}

/* peak_abs of a float32 matrix: each |w| widened to double (exactly), the same maximum. */
static double peak_abs_f32(const float *w, int64_t begin, int64_t end) {
    float peak = 0.0f;
    int nan = 0;
    for (int64_t k = begin; k < end; k++) {
        const float a = fabsf(w[k]);
        nan |= a != a;
        peak = a > peak ? a : peak;
    }
    return nan ? NAN : (double)peak;
}

#if LK_X86
LK_T512 static double peak_abs_f32_512(const float *w, int64_t begin, int64_t end) {
    __m512 peak = _mm512_setzero_ps();
    __mmask16 nan = 0;
    int64_t k = begin;
    for (; k + 16 <= end; k += 16) {
        const __m512 a = _mm512_abs_ps(_mm512_loadu_ps(w + k));
        nan |= _mm512_cmp_ps_mask(a, a, _CMP_UNORD_Q);
        peak = _mm512_max_ps(a, peak);
    }
    float lanes[16];
    _mm512_storeu_ps(lanes, peak);
    double out = peak_abs_f32(w, k, end);
    for (int l = 0; l < 16; l++) out = (double)lanes[l] > out ? (double)lanes[l] : out;
    return nan ? NAN : out;
}

LK_T512 static double peak_abs_512(const double *w, int64_t begin, int64_t end) {
    __m512d peak = _mm512_setzero_pd();
    __mmask8 nan = 0;
    int64_t k = begin;
    for (; k + 8 <= end; k += 8) {
        const __m512d a = _mm512_abs_pd(_mm512_loadu_pd(w + k));
        nan |= _mm512_cmp_pd_mask(a, a, _CMP_UNORD_Q);
        peak = _mm512_max_pd(a, peak);
    }
    double lanes[8];
    _mm512_storeu_pd(lanes, peak);
    double out = peak_abs(w, k, end);
    for (int l = 0; l < 8; l++) out = lanes[l] > out ? lanes[l] : out;
    return nan ? NAN : out;
}
#endif

/* Steps 1-4 and the sign bit of cell j of row i (row envelope r) whose weight is w: the
 * arithmetic of codes_rows' loops for one cell. */
static int32_t code_of(const codes_ctx *c, double w, double r, int64_t j) {
    const double dac_max = (double)((INT32_C(1) << c->bits) - 1);
    const double wn = w / c->scale;
    const double v = fabs(wn) / (r * c->col_env[j]);
    const double t = acos_poly(v < 0.0 ? 0.0 : (v > 1.0 ? 1.0 : v));
    const double q = rint(sqrt((2.0 * t) / LK_PI) * dac_max);
    return (int32_t)q | (wn < 0.0 ? INT32_C(1) << c->bits : 0);
}

static void peak_rows(const void *arg, int64_t first, int64_t last, double *scratch) {
    (void)scratch;
    const codes_ctx *c = (const codes_ctx *)arg;
    const int64_t begin = first * c->cols, end = last * c->cols;
    if (c->w32 != NULL) {
#if LK_X86
        if (c->vec512) {
            c->peaks[first / 16] = peak_abs_f32_512(c->w32, begin, end);
            return;
        }
#endif
        c->peaks[first / 16] = peak_abs_f32(c->w32, begin, end);
        return;
    }
#if LK_X86
    if (c->vec512) {
        c->peaks[first / 16] = peak_abs_512(c->w, begin, end);
        return;
    }
#endif
    c->peaks[first / 16] = peak_abs(c->w, begin, end);
}

/* Steps 1-3 of one row up to the arccos argument t (clipped to [0, 1]) into t[0 .. cols-1]. */
static LK_ALWAYS_INLINE void transmission_row(const codes_ctx *c, const double *wr, double r,
                                              double *t) {
    for (int64_t j = 0; j < c->cols; j++) {
        const double wn = wr[j] / c->scale;
        const double v = fabs(wn) / (r * c->col_env[j]);
        t[j] = v < 0.0 ? 0.0 : (v > 1.0 ? 1.0 : v);
    }
}

#if LK_X86
LK_T512 static LK_ALWAYS_INLINE __m512d acos_ratio_512(__m512d z) {
    const double *p = lk_acos_p, *q = lk_acos_q;
    __m512d num = _mm512_mul_pd(z, _mm512_set1_pd(p[5]));
    for (int i = 4; i >= 1; i--) num = _mm512_mul_pd(z, _mm512_add_pd(_mm512_set1_pd(p[i]), num));
    num = _mm512_mul_pd(z, _mm512_add_pd(_mm512_set1_pd(p[0]), num));
    __m512d den = _mm512_mul_pd(z, _mm512_set1_pd(q[3]));
    for (int i = 2; i >= 0; i--) den = _mm512_mul_pd(z, _mm512_add_pd(_mm512_set1_pd(q[i]), den));
    den = _mm512_add_pd(_mm512_set1_pd(1.0), den);
    return _mm512_div_pd(num, den);
}

/* Steps 1-4 and the sign bit of 8 cells w (as doubles) in one pass, registers only: the
 * operations of transmission_row, acos_poly and step 4 lane by lane (the same bits). The two
 * branches of acos_poly share one rational acos_ratio: its argument is x^2 where x < 0.5 and
 * z = (1 - x) / 2 elsewhere, so each lane evaluates the ratio its own branch uses. */
LK_T512 static LK_ALWAYS_INLINE __m256i codes_8(__m512d w, __m512d scale, __m512d renv,
                                               __m512d dac_max, __m512d sign_bit) {
    const __m512d zero = _mm512_setzero_pd(), one = _mm512_set1_pd(1.0);
    const __m512d half = _mm512_set1_pd(0.5);
    const int nearest = _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC;
    const __m512d wn = _mm512_div_pd(w, scale); /* 1. normalize */
    const __m512d v = _mm512_div_pd(_mm512_abs_pd(wn), renv); /* 2. loss */
    const __m512d x = _mm512_min_pd(_mm512_max_pd(v, zero), one); /* finite v */
    const __mmask8 small_lane = _mm512_cmp_pd_mask(x, half, _CMP_LT_OQ);
    const __m512d z = _mm512_mul_pd(_mm512_sub_pd(one, x), half);
    const __m512d ratio =
        acos_ratio_512(_mm512_mask_blend_pd(small_lane, z, _mm512_mul_pd(x, x)));
    const __m512d small = _mm512_sub_pd(
        _mm512_set1_pd(LK_PIO2_HI),
        _mm512_sub_pd(x, _mm512_sub_pd(_mm512_set1_pd(LK_PIO2_LO), _mm512_mul_pd(x, ratio))));
    const __m512d s = _mm512_sqrt_pd(z);
    const __m512d df = _mm512_castsi512_pd(_mm512_and_epi64(
        _mm512_castpd_si512(s), _mm512_set1_epi64((long long)UINT64_C(0xFFFFFFFF00000000))));
    const __m512d c =
        _mm512_div_pd(_mm512_sub_pd(z, _mm512_mul_pd(df, df)), _mm512_add_pd(s, df));
    const __m512d large = _mm512_mul_pd(
        _mm512_set1_pd(2.0), _mm512_add_pd(df, _mm512_add_pd(_mm512_mul_pd(ratio, s), c)));
    __m512d a = _mm512_mask_blend_pd(small_lane, large, small); /* 3. target phase / 2 */
    a = _mm512_mask_blend_pd(_mm512_cmp_pd_mask(x, one, _CMP_EQ_OQ), a, zero);
    const __m512d phase = _mm512_mul_pd(_mm512_set1_pd(2.0), a); /* 4. heater DAC */
    const __m512d q = _mm512_mul_pd(
        _mm512_sqrt_pd(_mm512_div_pd(phase, _mm512_set1_pd(LK_PI))), dac_max);
    /* code | sign bit as code + 2^bits (exact: both are integers below 2^25) */
    const __mmask8 neg = _mm512_cmp_pd_mask(wn, zero, _CMP_LT_OQ);
    const __m512d code = _mm512_mask_add_pd(_mm512_roundscale_pd(q, nearest), neg,
                                            _mm512_roundscale_pd(q, nearest), sign_bit);
    return _mm512_cvttpd_epi32(code);
}

/* codes_rows on AVX-512: one pass per row, no scratch (float32 rows widened in registers). */
LK_T512 static void codes_rows_512(const codes_ctx *c, int64_t first, int64_t last) {
    const __m512d scale = _mm512_set1_pd(c->scale);
    const __m512d dac_max = _mm512_set1_pd((double)((INT32_C(1) << c->bits) - 1));
    const __m512d sign_bit = _mm512_set1_pd((double)(INT32_C(1) << c->bits));
    const int64_t cols = c->cols;
    for (int64_t i = first; i < last; i++) {
        const double r = c->row_env[i];
        const __m512d rv = _mm512_set1_pd(r);
        int32_t *out = c->codes + i * cols;
        int64_t j = 0;
        if (c->w32 != NULL) {
            const float *src = c->w32 + i * cols;
            for (; j + 8 <= cols; j += 8) {
                const __m512d w = _mm512_cvtps_pd(_mm256_loadu_ps(src + j)); /* exact */
                const __m512d renv = _mm512_mul_pd(rv, _mm512_loadu_pd(c->col_env + j));
                _mm256_storeu_si256((__m256i *)(out + j),
                                    codes_8(w, scale, renv, dac_max, sign_bit));
            }
            for (; j < cols; j++) out[j] = code_of(c, (double)src[j], r, j);
        } else {
            const double *src = c->w + i * cols;
            for (; j + 8 <= cols; j += 8) {
                const __m512d renv = _mm512_mul_pd(rv, _mm512_loadu_pd(c->col_env + j));
                _mm256_storeu_si256((__m256i *)(out + j),
                                    codes_8(_mm512_loadu_pd(src + j), scale, renv, dac_max,
                                            sign_bit));
            }
            for (; j < cols; j++) out[j] = code_of(c, src[j], r, j);
        }
    }
}
#endif

static void codes_rows(const void *arg, int64_t first, int64_t last, double *scratch) {
    const codes_ctx *c = (const codes_ctx *)arg;
#if LK_X86
    if (c->vec512) {
        codes_rows_512(c, first, last);
        return;
    }
#endif
    const double dac_max = (double)((INT32_C(1) << c->bits) - 1);
    const int32_t sign_bit = INT32_C(1) << c->bits;
    double *t = scratch; /* cols doubles, then (float32 input) the row widened to double */
    for (int64_t i = first; i < last; i++) {
        const double *wr = c->w32 != NULL ? scratch + c->cols : c->w + i * c->cols;
        if (c->w32 != NULL) {
            double *wide = scratch + c->cols;
            const float *src = c->w32 + i * c->cols;
            for (int64_t j = 0; j < c->cols; j++) wide[j] = (double)src[j]; /* exact */
        }
        int32_t *out = c->codes + i * c->cols;
        transmission_row(c, wr, c->row_env[i], t);
        for (int64_t j = 0; j < c->cols; j++) t[j] = acos_poly(t[j]); /* 3. target phase / 2 */
        for (int64_t j = 0; j < c->cols; j++)
            t[j] = rint(sqrt((2.0 * t[j]) / LK_PI) * dac_max); /* 4. heater DAC */
        for (int64_t j = 0; j < c->cols; j++)
            out[j] = (int32_t)t[j] | (wr[j] / c->scale < 0.0 ? sign_bit : 0);
    }
}

/* lk_heater_codes of w (float64) or w32 (float32, widened to double exactly per row, so the
 * codes equal those of the float64 copy of w32); exactly one of them is non-NULL. */
static int heater_codes(const double *w, const float *w32, int64_t rows, int64_t cols,
                        int32_t weight_bits, const double *row_env, const double *col_env,
                        int32_t *codes, double *scale, int32_t threads) {
    if ((w == NULL) == (w32 == NULL) || row_env == NULL || col_env == NULL || codes == NULL ||
        scale == NULL || rows <= 0 || cols <= 0 || weight_bits < 2 || weight_bits > 24 ||
        threads < 1)
        return LK_EINVAL;
    const int64_t n = rows * cols;
    const int64_t units = (rows + 15) / 16;
    double *peaks = (double *)malloc((size_t)units * sizeof(double));
    if (peaks == NULL) return LK_ENOMEM;
    codes_ctx ctx = {w, w32, cols, weight_bits, 1.0, row_env, col_env, codes, peaks,
                     lk_isa() >= LK_ISA_AVX512};
    int rc = run_rows(peak_rows, &ctx, rows, 16, n, threads, 0);
    double peak = 0.0;
    int nan = 0;
    for (int64_t u = 0; u < units && rc == LK_OK; u++) {
        nan |= peaks[u] != peaks[u];
        peak = peaks[u] > peak ? peaks[u] : peak;
    }
    free(peaks);
    if (nan) return LK_ENONFINITE;
    if (rc != LK_OK) return rc;
    if (!isfinite(peak)) return LK_ENONFINITE;
    ctx.scale = peak != 0.0 ? peak : 1.0;
    rc = run_rows(codes_rows, &ctx, rows, 16, n, threads, w32 != NULL ? 2 * cols : cols);
    if (rc == LK_OK) *scale = ctx.scale;
    return rc;
}

int lk_heater_codes(const double *w, int64_t rows, int64_t cols, int32_t weight_bits,
                    const double *row_env, const double *col_env, int32_t *codes,
                    double *scale, int32_t threads) {
    if (w == NULL) return LK_EINVAL;
    return heater_codes(w, NULL, rows, cols, weight_bits, row_env, col_env, codes, scale,
                        threads);
}

int lk_heater_codes_f32(const float *w, int64_t rows, int64_t cols, int32_t weight_bits,
                        const double *row_env, const double *col_env, int32_t *codes,
                        double *scale, int32_t threads) {
    if (w == NULL) return LK_EINVAL;
    return heater_codes(NULL, w, rows, cols, weight_bits, row_env, col_env, codes, scale,
                        threads);
}

/* lk_weight_range: min and max per 16-row unit, in one pass over the matrix. */
typedef struct range_ctx {
    const double *w;
    const float *w32;
    int64_t cols;
    double *lo, *hi; /* per unit; NaN if the unit holds a NaN */
    int vec512;
} range_ctx;

#if LK_X86
/* min and max of entries [begin, end) of w (or of w32, widened exactly) into *lo, *hi;
 * returns 1 if a NaN was seen. */
LK_T512 static int range_512(const double *w, const float *w32, int64_t begin, int64_t end,
                             double *lo, double *hi) {
    __m512d vlo = _mm512_set1_pd(INFINITY), vhi = _mm512_set1_pd(-INFINITY);
    __mmask8 nan = 0;
    int64_t k = begin;
    for (; k + 8 <= end; k += 8) {
        const __m512d a = w32 != NULL ? _mm512_cvtps_pd(_mm256_loadu_ps(w32 + k))
                                      : _mm512_loadu_pd(w + k);
        nan |= _mm512_cmp_pd_mask(a, a, _CMP_UNORD_Q);
        vlo = _mm512_min_pd(a, vlo);
        vhi = _mm512_max_pd(a, vhi);
    }
    double l = _mm512_reduce_min_pd(vlo), h = _mm512_reduce_max_pd(vhi);
    int tail_nan = 0;
    for (; k < end; k++) {
        const double a = w32 != NULL ? (double)w32[k] : w[k];
        tail_nan |= a != a;
        l = a < l ? a : l;
        h = a > h ? a : h;
    }
    *lo = l;
    *hi = h;
    return nan != 0 || tail_nan;
}
#endif

static void range_rows(const void *arg, int64_t first, int64_t last, double *scratch) {
    (void)scratch;
    const range_ctx *c = (const range_ctx *)arg;
    const int64_t begin = first * c->cols, end = last * c->cols, u = first / 16;
    int nan = 0;
#if LK_X86
    if (c->vec512) {
        nan = range_512(c->w, c->w32, begin, end, &c->lo[u], &c->hi[u]);
    } else
#endif
    {
        double lo = INFINITY, hi = -INFINITY; /* a float32 widens exactly */
        for (int64_t k = begin; k < end; k++) {
            const double a = c->w32 != NULL ? (double)c->w32[k] : c->w[k];
            nan |= a != a;
            lo = a < lo ? a : lo;
            hi = a > hi ? a : hi;
        }
        c->lo[u] = lo;
        c->hi[u] = hi;
    }
    if (nan) c->lo[u] = c->hi[u] = NAN;
}

int lk_weight_range(const double *w, const float *w32, int64_t rows, int64_t cols,
                    int32_t threads, double *lo, double *hi) {
    if ((w == NULL) == (w32 == NULL) || rows <= 0 || cols <= 0 || threads < 1 || lo == NULL ||
        hi == NULL)
        return LK_EINVAL;
    const int64_t units = (rows + 15) / 16;
    double *bounds = (double *)malloc((size_t)(2 * units) * sizeof(double));
    if (bounds == NULL) return LK_ENOMEM;
    range_ctx ctx = {w, w32, cols, bounds, bounds + units, lk_isa() >= LK_ISA_AVX512};
    const int rc = run_rows(range_rows, &ctx, rows, 16, rows * cols, threads, 0);
    double low = INFINITY, high = -INFINITY;
    int nan = 0;
    for (int64_t u = 0; u < units && rc == LK_OK; u++) {
        nan |= ctx.lo[u] != ctx.lo[u];
        low = ctx.lo[u] < low ? ctx.lo[u] : low;
        high = ctx.hi[u] > high ? ctx.hi[u] : high;
    }
    free(bounds);
    if (rc != LK_OK) return rc;
    *lo = nan ? NAN : low;
    *hi = nan ? NAN : high;
    return LK_OK;
}

/* ------------------------------------------------------------------------------------ */
/* The weights id: zlib's CRC-32 of the codes, in threads                                */
/* ------------------------------------------------------------------------------------ */

/* CRC-32 as zlib's crc32 (ISO-HDLC: reflected polynomial 0xEDB88320, register preset and
 * final value inverted). The register form `reg` below is the inverted CRC. Pieces are
 * joined with zlib's crc32_combine arithmetic (multiplication modulo the polynomial in
 * GF(2)), so the value does not depend on how the data is split or on the thread count. */
#define LK_CRC_POLY UINT32_C(0xEDB88320)
#define LK_CRC_UNIT (INT64_C(1) << 20) /* bytes per work unit */

static uint32_t crc_table[256];
static pthread_once_t crc_once = PTHREAD_ONCE_INIT;
static void crc_table_build(void) {
    for (uint32_t n = 0; n < 256; n++) {
        uint32_t c = n;
        for (int k = 0; k < 8; k++) c = c & 1 ? (c >> 1) ^ LK_CRC_POLY : c >> 1;
        crc_table[n] = c;
    }
}

static uint32_t crc_bytes(uint32_t reg, const uint8_t *p, int64_t n) {
    for (int64_t k = 0; k < n; k++) reg = crc_table[(reg ^ p[k]) & 0xFF] ^ (reg >> 8);
    return reg;
}

#if LK_X86
#define LK_TCLMUL __attribute__((target("pclmul,sse4.1")))
/* Folding by carry-less multiplication (Intel's "Fast CRC Computation for Generic Polynomials
 * Using PCLMULQDQ", the bit-reflected constants of zlib/Chromium's crc32_simd.c): n >= 64
 * and a multiple of 16; register form in and out. */
LK_TCLMUL static uint32_t crc_clmul(uint32_t reg, const uint8_t *buf, int64_t n) {
    const __m128i k1k2 = _mm_set_epi64x(INT64_C(0x01c6e41596), INT64_C(0x0154442bd4));
    const __m128i k3k4 = _mm_set_epi64x(INT64_C(0x00ccaa009e), INT64_C(0x01751997d0));
    const __m128i k5k0 = _mm_set_epi64x(0, INT64_C(0x0163cd6124));
    const __m128i poly = _mm_set_epi64x(INT64_C(0x01f7011641), INT64_C(0x01db710641));
    __m128i x1 = _mm_loadu_si128((const __m128i *)(buf + 0x00));
    __m128i x2 = _mm_loadu_si128((const __m128i *)(buf + 0x10));
    __m128i x3 = _mm_loadu_si128((const __m128i *)(buf + 0x20));
    __m128i x4 = _mm_loadu_si128((const __m128i *)(buf + 0x30));
    x1 = _mm_xor_si128(x1, _mm_cvtsi32_si128((int)reg));
    buf += 64;
    n -= 64;
    while (n >= 64) { /* four blocks of 16 folded in parallel */
        const __m128i x5 = _mm_clmulepi64_si128(x1, k1k2, 0x00);
        const __m128i x6 = _mm_clmulepi64_si128(x2, k1k2, 0x00);
        const __m128i x7 = _mm_clmulepi64_si128(x3, k1k2, 0x00);
        const __m128i x8 = _mm_clmulepi64_si128(x4, k1k2, 0x00);
        x1 = _mm_clmulepi64_si128(x1, k1k2, 0x11);
        x2 = _mm_clmulepi64_si128(x2, k1k2, 0x11);
        x3 = _mm_clmulepi64_si128(x3, k1k2, 0x11);
        x4 = _mm_clmulepi64_si128(x4, k1k2, 0x11);
        x1 = _mm_xor_si128(_mm_xor_si128(x1, x5), _mm_loadu_si128((const __m128i *)(buf + 0x00)));
        x2 = _mm_xor_si128(_mm_xor_si128(x2, x6), _mm_loadu_si128((const __m128i *)(buf + 0x10)));
        x3 = _mm_xor_si128(_mm_xor_si128(x3, x7), _mm_loadu_si128((const __m128i *)(buf + 0x20)));
        x4 = _mm_xor_si128(_mm_xor_si128(x4, x8), _mm_loadu_si128((const __m128i *)(buf + 0x30)));
        buf += 64;
        n -= 64;
    }
    __m128i x5 = _mm_clmulepi64_si128(x1, k3k4, 0x00); /* fold the four into one */
    x1 = _mm_xor_si128(_mm_xor_si128(_mm_clmulepi64_si128(x1, k3k4, 0x11), x2), x5);
    x5 = _mm_clmulepi64_si128(x1, k3k4, 0x00);
    x1 = _mm_xor_si128(_mm_xor_si128(_mm_clmulepi64_si128(x1, k3k4, 0x11), x3), x5);
    x5 = _mm_clmulepi64_si128(x1, k3k4, 0x00);
    x1 = _mm_xor_si128(_mm_xor_si128(_mm_clmulepi64_si128(x1, k3k4, 0x11), x4), x5);
    while (n >= 16) {
        x5 = _mm_clmulepi64_si128(x1, k3k4, 0x00);
        x1 = _mm_xor_si128(_mm_xor_si128(_mm_clmulepi64_si128(x1, k3k4, 0x11),
                                         _mm_loadu_si128((const __m128i *)buf)),
                           x5);
        buf += 16;
        n -= 16;
    }
    /* 128 -> 64 bits */
    x2 = _mm_clmulepi64_si128(x1, k3k4, 0x10);
    const __m128i mask = _mm_setr_epi32(~0, 0, ~0, 0);
    x1 = _mm_xor_si128(_mm_srli_si128(x1, 8), x2);
    x2 = _mm_srli_si128(x1, 4);
    x1 = _mm_xor_si128(_mm_clmulepi64_si128(_mm_and_si128(x1, mask), k5k0, 0x00), x2);
    /* Barrett reduction to 32 bits */
    x2 = _mm_clmulepi64_si128(_mm_and_si128(x1, mask), poly, 0x10);
    x2 = _mm_clmulepi64_si128(_mm_and_si128(x2, mask), poly, 0x00);
    x1 = _mm_xor_si128(x1, x2);
    return (uint32_t)_mm_extract_epi32(x1, 1);
}
#endif

/* zlib's crc32(0, p, n). */
static uint32_t crc_piece(const uint8_t *p, int64_t n, int clmul) {
    uint32_t reg = UINT32_C(0xFFFFFFFF);
#if LK_X86
    if (clmul && n >= 64) {
        const int64_t chunk = n & ~INT64_C(15);
        reg = crc_clmul(reg, p, chunk);
        p += chunk;
        n -= chunk;
    }
#else
    (void)clmul;
#endif
    return ~crc_bytes(reg, p, n);
}

/* a(x) b(x) modulo the polynomial (bit 31 is x^0); a != 0. */
static uint32_t crc_mult_mod_p(uint32_t a, uint32_t b) {
    uint32_t m = UINT32_C(1) << 31, p = 0;
    for (;;) {
        if (a & m) {
            p ^= b;
            if ((a & (m - 1)) == 0) return p;
        }
        m >>= 1;
        b = b & 1 ? (b >> 1) ^ LK_CRC_POLY : b >> 1;
    }
}

/* crc32_combine: the CRC of A B from crc1 = CRC(A), crc2 = CRC(B) and len2 = |B|. */
static uint32_t crc_combine(uint32_t crc1, uint32_t crc2, uint64_t len2) {
    uint32_t x2n = UINT32_C(1) << 30; /* x^(2^0) */
    uint32_t p = UINT32_C(1) << 31;   /* x^0 */
    for (int k = 0; k < 3; k++) x2n = crc_mult_mod_p(x2n, x2n); /* x^(2^3): bytes to bits */
    for (uint64_t n = len2; n; n >>= 1) {
        if (n & 1) p = crc_mult_mod_p(x2n, p);
        x2n = crc_mult_mod_p(x2n, x2n);
    }
    return crc_mult_mod_p(p, crc1) ^ crc2;
}

typedef struct crc_ctx {
    const uint8_t *data;
    int64_t len;
    uint32_t *crcs; /* per unit */
    int clmul;
} crc_ctx;

static void crc_units(const void *arg, int64_t first, int64_t last, double *scratch) {
    (void)scratch;
    const crc_ctx *c = (const crc_ctx *)arg;
    for (int64_t u = first; u < last; u++) {
        const int64_t begin = u * LK_CRC_UNIT;
        const int64_t end = begin + LK_CRC_UNIT < c->len ? begin + LK_CRC_UNIT : c->len;
        c->crcs[u] = crc_piece(c->data + begin, end - begin, c->clmul);
    }
}

int lk_crc32(const uint8_t *data, int64_t len, int32_t threads, uint32_t *crc) {
    if ((data == NULL && len > 0) || len < 0 || threads < 1 || crc == NULL) return LK_EINVAL;
    pthread_once(&crc_once, crc_table_build);
    int clmul = 0;
#if LK_X86
    clmul = lk_isa() >= LK_ISA_AVX2 && __builtin_cpu_supports("pclmul") &&
            __builtin_cpu_supports("sse4.1");
#endif
    if (len <= LK_CRC_UNIT) {
        *crc = crc_piece(data, len, clmul);
        return LK_OK;
    }
    const int64_t units = (len + LK_CRC_UNIT - 1) / LK_CRC_UNIT;
    uint32_t *crcs = (uint32_t *)malloc((size_t)units * sizeof(uint32_t));
    if (crcs == NULL) return LK_ENOMEM;
    crc_ctx ctx = {data, len, crcs, clmul};
    /* lk_workers_for counts cells of 4 bytes */
    const int rc = run_rows(crc_units, &ctx, units, 1, len / 4, threads, 0);
    uint32_t out = crcs[0];
    for (int64_t u = 1; u < units && rc == LK_OK; u++) {
        const int64_t end = (u + 1) * LK_CRC_UNIT < len ? (u + 1) * LK_CRC_UNIT : len;
        out = crc_combine(out, crcs[u], (uint64_t)(end - u * LK_CRC_UNIT));
    }
    free(crcs);
    if (rc == LK_OK) *crc = out;
    return rc;
}

/* ------------------------------------------------------------------------------------ */
/* Chip side: codes -> packed W_eff                                                      */
/* ------------------------------------------------------------------------------------ */

typedef struct program_ctx {
    const lk_program_params *p;
    const int32_t *codes;
    float *packed;
    const double *phase_table; /* pi (q / M)^2 per DAC code q, or NULL (computed per cell) */
    uint64_t base;
    int use_fab, use_arm, use_xtalk, vec512, vec512dq;
} program_ctx;

/* Step 4: the heater law of code q, pi (q / M)^2, as the reference computes it. */
static inline double heater_phase(int32_t q, double dac_max) {
    const double v = (double)q / dac_max;
    return LK_PI * (v * v);
}

/* phi_f of row i (steps 4-5) into out[0 .. cols-1] and, if arm is not NULL, the row's arm
 * imbalances (step 7, um) into arm: both normals come from the cell's one hash. */
static void static_phase_row(const program_ctx *c, int64_t i, double *out, double *arm) {
    const lk_program_params *p = c->p;
    const int32_t *row = c->codes + i * p->cols;
    const int32_t mask = (INT32_C(1) << p->weight_bits) - 1;
    const double dac_max = (double)mask;
    const double *table = c->phase_table;
    for (int64_t j = 0; j < p->cols; j++) {
        const int32_t q = row[j] & mask;
        double phase = table != NULL ? table[q] : heater_phase(q, dac_max); /* 4. heater law */
        if (c->use_fab || arm != NULL) {
            const uint64_t h = cell_hash(c->base, i, j);
            if (c->use_fab) {
                double g = cell_normal(h, (uint32_t)h, 0); /* 5. fabrication, clipped */
                g = g < -3.0 ? -3.0 : (g > 3.0 ? 3.0 : g);
                phase = phase * (1.0 + p->fab_sigma * g);
            }
            if (arm != NULL) arm[j] = p->arm_imbalance_um * cell_normal(h, (uint32_t)(h >> 32), 1);
        }
        out[j] = phase;
    }
}

/* cos(x) as docs/physics.md section 2 ("Arithmetic") defines it, from IEEE +, -, *, rint and
 * floor only, so numpy evaluates the same bits (reference.cos_poly) and the loop vectorizes:
 * Cody-Waite reduction by pi/2 (k = rint(x 2/pi), r = (x - k P1) - k P1t) and fdlibm's
 * kernel polynomials on |r| <= pi/4, the quadrant n = k - 4 floor(k / 4) choosing
 * cos, -sin, -cos or sin. Within 2 ulp of cos for |x| < 1.6e6 (k P1 exact below 2^20). */
#define LK_TWO_OVER_PI 6.36619772367581382433e-01
#define LK_PIO2_1 1.57079632673412561417e+00
#define LK_PIO2_1T 6.07710050650619224932e-11
static LK_ALWAYS_INLINE double cos_poly(double x) {
    const double k = rint(x * LK_TWO_OVER_PI);
    const double r = (x - k * LK_PIO2_1) - k * LK_PIO2_1T;
    const double z = r * r;
    const double c =
        (1.0 - 0.5 * z) +
        (z * z) *
            (4.16666666666666019037e-02 +
             z * (-1.38888888888741095749e-03 +
                  z * (2.48015872894767294178e-05 +
                       z * (-2.75573143513906633035e-07 +
                            z * (2.08757232129817482790e-09 + z * -1.13596475577881948265e-11)))));
    const double sn =
        r + (r * z) *
                (-1.66666666666666324348e-01 +
                 z * (8.33333333332248946124e-03 +
                      z * (-1.98412698298579493134e-04 +
                           z * (2.75573137070700676789e-06 +
                                z * (-2.50507602534068634195e-08 + z * 1.58969099521155010221e-10)))));
    const double n = k - 4.0 * floor(k * 0.25);
    return n == 0.0 ? c : (n == 1.0 ? -sn : (n == 2.0 ? -c : sn));
}

#if LK_X86
#define LK_T512DQ __attribute__((target("avx512f,avx512dq")))

/* The ziggurat's layer i as one 64-bit word, k_i << 32 | the bits of the float width w_i, so
 * an 8-lane fast path needs one gather (lk_ziggurat_init must have run). */
static uint64_t lk_zig_kw64[LK_ZIG_LAYERS];
static pthread_once_t zig_k64_once = PTHREAD_ONCE_INIT;
static void zig_k64_build(void) {
    for (int i = 0; i < LK_ZIG_LAYERS; i++) {
        uint32_t wbits;
        __builtin_memcpy(&wbits, &lk_zig_w[i], sizeof wbits);
        lk_zig_kw64[i] = (uint64_t)lk_zig_k[i] << 32 | wbits;
    }
}

/* sm() on 8 lanes. */
LK_T512DQ static LK_ALWAYS_INLINE __m512i sm_512(__m512i z) {
    z = _mm512_add_epi64(z, _mm512_set1_epi64((long long)LK_GOLDEN));
    z = _mm512_mullo_epi64(_mm512_xor_si512(z, _mm512_srli_epi64(z, 30)),
                           _mm512_set1_epi64((long long)UINT64_C(0xBF58476D1CE4E5B9)));
    z = _mm512_mullo_epi64(_mm512_xor_si512(z, _mm512_srli_epi64(z, 27)),
                           _mm512_set1_epi64((long long)UINT64_C(0x94D049BB133111EB)));
    return _mm512_xor_si512(z, _mm512_srli_epi64(z, 31));
}

/* The ziggurat's fast path (lk_zig_fast) on 8 words w (in 64-bit lanes): the signed values
 * as doubles, and in *ok the lanes that were accepted. */
LK_T512DQ static LK_ALWAYS_INLINE __m512d zig_fast_512(__m512i w, __mmask8 *ok) {
    const __m512i layer = _mm512_and_si512(w, _mm512_set1_epi64(0xFF));
    const __m512i m = _mm512_srli_epi64(w, 9);
    const __m512i kw = _mm512_i64gather_epi64(layer, (const long long *)lk_zig_kw64, 8);
    const __m256 width = _mm256_castsi256_ps(_mm512_cvtepi64_epi32(kw)); /* low halves */
    __m256 x = _mm256_mul_ps(_mm512_cvtepi64_ps(m), width); /* float, as lk_zig_fast */
    const __m512i k = _mm512_srli_epi64(kw, 32);
    *ok = _mm512_cmplt_epu64_mask(m, k);
    const __m256i sign =
        _mm512_cvtepi64_epi32(_mm512_slli_epi64(_mm512_and_si512(w, _mm512_set1_epi64(0x100)), 23));
    x = _mm256_castsi256_ps(_mm256_xor_si256(_mm256_castps_si256(x), sign));
    return _mm512_cvtps_pd(x);
}

/* static_phase_row with 8 cells at a time (needs the phase table); the same bits. */
LK_T512DQ static void static_phase_row_512(const program_ctx *c, int64_t i, double *out,
                                           double *arm) {
    const lk_program_params *p = c->p;
    const int32_t *row = c->codes + i * p->cols;
    const __m256i mask = _mm256_set1_epi32((INT32_C(1) << p->weight_bits) - 1);
    const __m512d sigma = _mm512_set1_pd(p->fab_sigma), one = _mm512_set1_pd(1.0);
    const __m512d lo = _mm512_set1_pd(-3.0), hi = _mm512_set1_pd(3.0);
    const __m512d arm_um = _mm512_set1_pd(p->arm_imbalance_um);
    const __m512i base = _mm512_set1_epi64((long long)c->base);
    const __m512i lanes = _mm512_set_epi64(7, 6, 5, 4, 3, 2, 1, 0);
    const __m512i row_bits = _mm512_set1_epi64((long long)((uint64_t)i << 32));
    const __m512i low32 = _mm512_set1_epi64(0xFFFFFFFF);
    int64_t j = 0;
    for (; j + 8 <= p->cols; j += 8) {
        const __m256i q = _mm256_and_si256(_mm256_loadu_si256((const __m256i *)(row + j)), mask);
        __m512d phase = _mm512_i32gather_pd(q, c->phase_table, 8); /* 4. heater law */
        if (c->use_fab || arm != NULL) {
            const __m512i cell = _mm512_or_si512(
                row_bits, _mm512_add_epi64(_mm512_set1_epi64((long long)j), lanes));
            const __m512i h = sm_512(_mm512_xor_si512(base, cell));
            if (c->use_fab) {
                __mmask8 ok;
                __m512d g = zig_fast_512(_mm512_and_si512(h, low32), &ok);
                if (ok != 0xFF) {
                    double tmp[8];
                    uint64_t hs[8];
                    _mm512_storeu_pd(tmp, g);
                    _mm512_storeu_si512(hs, h);
                    for (int l = 0; l < 8; l++)
                        if (!((ok >> l) & 1)) tmp[l] = cell_normal(hs[l], (uint32_t)hs[l], 0);
                    g = _mm512_loadu_pd(tmp);
                }
                g = _mm512_min_pd(_mm512_max_pd(g, lo), hi); /* 5. clipped at 3 sigma */
                phase = _mm512_mul_pd(phase, _mm512_add_pd(one, _mm512_mul_pd(sigma, g)));
            }
            if (arm != NULL) {
                __mmask8 ok;
                __m512d n = zig_fast_512(_mm512_srli_epi64(h, 32), &ok);
                if (ok != 0xFF) {
                    double tmp[8];
                    uint64_t hs[8];
                    _mm512_storeu_pd(tmp, n);
                    _mm512_storeu_si512(hs, h);
                    for (int l = 0; l < 8; l++)
                        if (!((ok >> l) & 1))
                            tmp[l] = cell_normal(hs[l], (uint32_t)(hs[l] >> 32), 1);
                    n = _mm512_loadu_pd(tmp);
                }
                _mm512_storeu_pd(arm + j, _mm512_mul_pd(arm_um, n));
            }
        }
        _mm512_storeu_pd(out + j, phase);
    }
    for (; j < p->cols; j++) { /* the last few cells: the scalar code */
        const int32_t qj = row[j] & ((INT32_C(1) << p->weight_bits) - 1);
        double phase = c->phase_table[qj];
        if (c->use_fab || arm != NULL) {
            const uint64_t h = cell_hash(c->base, i, j);
            if (c->use_fab) {
                double g = cell_normal(h, (uint32_t)h, 0);
                g = g < -3.0 ? -3.0 : (g > 3.0 ? 3.0 : g);
                phase = phase * (1.0 + p->fab_sigma * g);
            }
            if (arm != NULL) arm[j] = p->arm_imbalance_um * cell_normal(h, (uint32_t)(h >> 32), 1);
        }
        out[j] = phase;
    }
}
#endif

/* Steps 6-8 for one row: half[j] = cos(phi_T / 2) from the phi_f rows above, at and below
 * (each with one zero column either side) and the arm imbalances. Plain loops the compiler
 * vectorizes; the operations and their order are the reference's. */
static LK_ALWAYS_INLINE void half_phase_body(const double *up, const double *mid,
                                             const double *down, const double *arm,
                                             int64_t cols, double k1, double k2, double drift,
                                             int use_xtalk, int use_arm, double *half) {
    if (use_xtalk) {
        for (int64_t j = 0; j < cols; j++) {
            const double edge = ((up[j] + down[j]) + mid[j - 1]) + mid[j + 1];
            const double diag = ((up[j - 1] + up[j + 1]) + down[j - 1]) + down[j + 1];
            half[j] = (mid[j] + k1 * edge) + k2 * diag;
        }
    } else {
        for (int64_t j = 0; j < cols; j++) half[j] = mid[j];
    }
    if (use_arm) {
        for (int64_t j = 0; j < cols; j++) half[j] = half[j] + drift * arm[j];
    }
    for (int64_t j = 0; j < cols; j++) half[j] = half[j] / 2.0;
}

static void half_phase(const double *up, const double *mid, const double *down,
                       const double *arm, int64_t cols, double k1, double k2, double drift,
                       int use_xtalk, int use_arm, double *half) {
    half_phase_body(up, mid, down, arm, cols, k1, k2, drift, use_xtalk, use_arm, half);
    for (int64_t j = 0; j < cols; j++) half[j] = cos_poly(half[j]);
}

#if LK_X86
/* c0 + z (c1 + z (c2 + ...)) for 8 lanes, innermost first, multiply then add (no FMA). */
static LK_ALWAYS_INLINE LK_T512 __m512d horner6(__m512d z, const double *c) {
    __m512d acc = _mm512_mul_pd(z, _mm512_set1_pd(c[5]));
    for (int i = 4; i >= 1; i--) acc = _mm512_mul_pd(z, _mm512_add_pd(_mm512_set1_pd(c[i]), acc));
    return _mm512_add_pd(_mm512_set1_pd(c[0]), acc);
}

static const double lk_cos_c[6] = {4.16666666666666019037e-02, -1.38888888888741095749e-03,
                                   2.48015872894767294178e-05, -2.75573143513906633035e-07,
                                   2.08757232129817482790e-09, -1.13596475577881948265e-11};
static const double lk_sin_s[6] = {-1.66666666666666324348e-01, 8.33333333332248946124e-03,
                                   -1.98412698298579493134e-04, 2.75573137070700676789e-06,
                                   -2.50507602534068634195e-08, 1.58969099521155010221e-10};

/* cos_poly on 8 lanes: the same operations in the same order (IEEE, so the same bits). */
static LK_ALWAYS_INLINE LK_T512 __m512d cos_poly_512(__m512d x) {
    const int nearest = _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC;
    const int down = _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC;
    const __m512d k =
        _mm512_roundscale_pd(_mm512_mul_pd(x, _mm512_set1_pd(LK_TWO_OVER_PI)), nearest);
    const __m512d r = _mm512_sub_pd(_mm512_sub_pd(x, _mm512_mul_pd(k, _mm512_set1_pd(LK_PIO2_1))),
                                    _mm512_mul_pd(k, _mm512_set1_pd(LK_PIO2_1T)));
    const __m512d z = _mm512_mul_pd(r, r);
    const __m512d c = _mm512_add_pd(
        _mm512_sub_pd(_mm512_set1_pd(1.0), _mm512_mul_pd(_mm512_set1_pd(0.5), z)),
        _mm512_mul_pd(_mm512_mul_pd(z, z), horner6(z, lk_cos_c)));
    const __m512d sn = _mm512_add_pd(r, _mm512_mul_pd(_mm512_mul_pd(r, z), horner6(z, lk_sin_s)));
    const __m512d quarter = _mm512_roundscale_pd(_mm512_mul_pd(k, _mm512_set1_pd(0.25)), down);
    const __m512d n = _mm512_sub_pd(k, _mm512_mul_pd(_mm512_set1_pd(4.0), quarter));
    const __mmask8 odd = _mm512_cmp_pd_mask(n, _mm512_set1_pd(1.0), _CMP_EQ_OQ) |
                         _mm512_cmp_pd_mask(n, _mm512_set1_pd(3.0), _CMP_EQ_OQ);
    const __mmask8 neg = _mm512_cmp_pd_mask(n, _mm512_set1_pd(1.0), _CMP_EQ_OQ) |
                         _mm512_cmp_pd_mask(n, _mm512_set1_pd(2.0), _CMP_EQ_OQ);
    const __m512i v = _mm512_castpd_si512(_mm512_mask_blend_pd(odd, c, sn));
    const __m512i sign = _mm512_set1_epi64((long long)UINT64_C(0x8000000000000000));
    return _mm512_castsi512_pd(_mm512_mask_xor_epi64(v, neg, v, sign));
}

LK_T512 static void half_phase_512(const double *up, const double *mid, const double *down,
                                   const double *arm, int64_t cols, double k1, double k2,
                                   double drift, int use_xtalk, int use_arm, double *half) {
    half_phase_body(up, mid, down, arm, cols, k1, k2, drift, use_xtalk, use_arm, half);
    int64_t j = 0;
    for (; j + 8 <= cols; j += 8) _mm512_storeu_pd(half + j, cos_poly_512(_mm512_loadu_pd(half + j)));
    for (; j < cols; j++) half[j] = cos_poly(half[j]);
}
#endif

#if LK_X86
/* Step 8 for the first multiple of 8 cells of a row (the scalar loop's operations, 8 at a
 * time): panel[j 16] = (float)(+-(r_env C_j) half[j]); returns the cells done. */
LK_T512 static int64_t weff_row_512(const int32_t *code, const double *col_env, double r_env,
                                    const double *half, int64_t cols, int32_t sign_bit,
                                    float *panel) {
    const __m512d rv = _mm512_set1_pd(r_env);
    const __m512i sign = _mm512_set1_epi64((long long)UINT64_C(0x8000000000000000));
    const __m512i bit = _mm512_set1_epi32(sign_bit);
    float lanes[8];
    int64_t j = 0;
    for (; j + 8 <= cols; j += 8) {
        const __m512i q = _mm512_castsi256_si512(_mm256_loadu_si256((const __m256i *)(code + j)));
        const __mmask8 neg = (__mmask8)_mm512_mask_test_epi32_mask(0xFF, q, bit);
        const __m512i env = _mm512_castpd_si512(_mm512_mul_pd(rv, _mm512_loadu_pd(col_env + j)));
        const __m512d signed_env = _mm512_castsi512_pd(_mm512_mask_xor_epi64(env, neg, env, sign));
        _mm256_storeu_ps(lanes,
                         _mm512_cvtpd_ps(_mm512_mul_pd(signed_env, _mm512_loadu_pd(half + j))));
        for (int l = 0; l < 8; l++) panel[(j + l) * LK_PANEL] = lanes[l];
    }
    return j;
}
#endif

/* Rows per work unit of lk_program (whole panels): each unit also computes phi_f of the row
 * above and below it (the crosstalk stencil), 2 extra rows per unit. */
#define LK_PROGRAM_ROWS (4 * LK_PANEL)

/* phi_f of row r (with a zero column either side) into ring slot (r - first + 1) % 3 and,
 * for a row of the unit, its arm imbalances into the matching arm slot; zeros outside the
 * array, and outside the unit when there is no crosstalk. */
static void phase_ring_row(const program_ctx *c, int64_t r, int64_t first, int64_t last,
                           double *phi, double *arms) {
    const lk_program_params *p = c->p;
    const int64_t cols = p->cols, ld = cols + 2, slot = (r - first + 1) % 3;
    double *dst = phi + slot * ld;
    dst[0] = dst[cols + 1] = 0.0;
    const int own = r >= first && r < last;
    if (r < 0 || r >= p->rows || (!c->use_xtalk && !own)) {
        for (int64_t j = 0; j < cols; j++) dst[j + 1] = 0.0;
        return;
    }
    double *arm = own && c->use_arm ? arms + slot * cols : NULL;
#if LK_X86
    if (c->vec512dq && c->phase_table != NULL)
        static_phase_row_512(c, r, dst + 1, arm);
    else
#endif
        static_phase_row(c, r, dst + 1, arm);
}

static void program_rows(const void *arg, int64_t first, int64_t last, double *scratch) {
    const program_ctx *c = (const program_ctx *)arg;
    const lk_program_params *p = c->p;
    const int64_t cols = p->cols, rows = p->rows;
    /* scratch: a ring of 3 phi_f rows (the rows above, at and below the one being finished),
     * their arm imbalances, one row of half phases; each row's phi_f is computed once */
    const int64_t ld = cols + 2;
    double *phi = scratch;
    double *arms = phi + 3 * ld;
    double *half = arms + 3 * cols;
    phase_ring_row(c, first - 1, first, last, phi, arms);
    phase_ring_row(c, first, first, last, phi, arms);
    const int32_t sign_bit = INT32_C(1) << p->weight_bits;
    for (int64_t i = first; i < last; i++) {
        phase_ring_row(c, i + 1, first, last, phi, arms);
        const double *up = phi + ((i - first) % 3) * ld + 1;
        const double *mid = phi + ((i - first + 1) % 3) * ld + 1;
        const double *down = phi + ((i - first + 2) % 3) * ld + 1;
        const double *arm = arms + ((i - first + 1) % 3) * cols;
#if LK_X86
        if (c->vec512)
            half_phase_512(up, mid, down, arm, cols, p->crosstalk, p->crosstalk_diag,
                           p->drift_rad_per_um, c->use_xtalk, c->use_arm, half);
        else
#endif
            half_phase(up, mid, down, arm, cols, p->crosstalk, p->crosstalk_diag,
                       p->drift_rad_per_um, c->use_xtalk, c->use_arm, half);
        const int32_t *code = c->codes + i * cols;
        float *panel = c->packed + (i / LK_PANEL) * cols * LK_PANEL + (i % LK_PANEL);
        const double r_env = p->row_envelope[i];
        int64_t j = 0;
#if LK_X86
        if (c->vec512) j = weff_row_512(code, p->col_envelope, r_env, half, cols, sign_bit, panel);
#endif
        for (; j < cols; j++) {
            const double envelope = r_env * p->col_envelope[j];
            const double signed_env = (code[j] & sign_bit) ? -envelope : envelope;
            panel[j * LK_PANEL] = (float)(signed_env * half[j]); /* 8. W_eff */
        }
    }
    /* padding lanes of the last panel */
    if (last == rows && rows % LK_PANEL) {
        float *panel = c->packed + (rows / LK_PANEL) * cols * LK_PANEL;
        for (int64_t j = 0; j < cols; j++)
            for (int64_t l = rows % LK_PANEL; l < LK_PANEL; l++) panel[j * LK_PANEL + l] = 0.0f;
    }
}

/* Codes of at most this many bits use a table of their heater phases (512 KiB at most). */
#define LK_PHASE_TABLE_BITS 16

int lk_program(const lk_program_params *p, const int32_t *codes, float *packed,
               int32_t threads) {
    if (p == NULL || codes == NULL || packed == NULL || p->rows <= 0 || p->cols <= 0 ||
        p->weight_bits < 2 || p->weight_bits > 24 || p->row_envelope == NULL ||
        p->col_envelope == NULL || threads < 1)
        return LK_EINVAL;
    lk_ziggurat_init();
    program_ctx ctx;
    ctx.p = p;
    ctx.codes = codes;
    ctx.packed = packed;
    ctx.base = normals_base(p->serial_key);
    /* An effect that is off is skipped: the reference's arithmetic then adds exact zeros. */
    ctx.use_fab = p->fab_sigma != 0.0;
    ctx.use_arm = p->arm_imbalance_um != 0.0 && p->drift_rad_per_um != 0.0;
    ctx.use_xtalk = p->crosstalk != 0.0 || p->crosstalk_diag != 0.0;
    ctx.vec512 = lk_isa() >= LK_ISA_AVX512; /* VNNI and AMX paths include AVX-512F */
    ctx.vec512dq = 0;
#if LK_X86
    if (ctx.vec512 && __builtin_cpu_supports("avx512dq")) {
        pthread_once(&zig_k64_once, zig_k64_build);
        ctx.vec512dq = 1;
    }
#endif
    double *table = NULL;
    if (p->weight_bits <= LK_PHASE_TABLE_BITS && p->rows * p->cols >= (INT64_C(1) << 16)) {
        const int32_t levels = INT32_C(1) << p->weight_bits;
        table = (double *)malloc((size_t)levels * sizeof(double));
        if (table != NULL)
            for (int32_t q = 0; q < levels; q++) table[q] = heater_phase(q, (double)(levels - 1));
    }
    ctx.phase_table = table;
    const int64_t scratch = 3 * (p->cols + 2) + 4 * p->cols;
    const int rc = run_rows(program_rows, &ctx, p->rows, LK_PROGRAM_ROWS, p->rows * p->cols,
                            threads, scratch);
    free(table);
    return rc;
}
