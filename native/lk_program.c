/* Lumina HAL twin kernel: programming the array (docs/physics.md section 2) at memory speed.
 *
 * lk_heater_codes is the host side (weights -> heater DAC codes), lk_program the chip side
 * (codes -> the packed W_eff the forward pass reads, at one temperature), lk_cell_normals the
 * per-cell fabrication draws on their own. Every step is the numpy reference's
 * (lumina_hal/twin/reference.py) in the same double-precision operations and order, with
 * libm's acos/cos (numpy's cos gives the same bits), so the packed weights equal
 * reference.program_codes(...).effective(p) rounded to float. The cell normals come from a
 * counter-based hash and the kernel's float ziggurat (docs/physics.md section 2 step 5), so
 * no array of draws is ever stored: a temperature change re-derives them from the codes.
 *
 * Work is split over the kernel's thread pool by panels of 16 rows; each cell is computed by
 * one thread from its own inputs, so the bits do not depend on the thread count.
 */
#define _POSIX_C_SOURCE 200809L

#include <math.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>

#include "lk_internal.h"
#include "lumina_kernel.h"

#define LK_PI 3.14159265358979323846
#define LK_GOLDEN UINT64_C(0x9E3779B97F4A7C15)
#define LK_PROGRAM_MAX_THREADS 64
/* Cells per thread below which a call stays on the calling thread. */
#define LK_PROGRAM_CELLS_PER_THREAD (INT64_C(1) << 16)

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
    int64_t workers = cells / LK_PROGRAM_CELLS_PER_THREAD;
    if (workers > threads) workers = threads;
    if (workers > job.units) workers = job.units;
    if (workers > LK_PROGRAM_MAX_THREADS) workers = LK_PROGRAM_MAX_THREADS;
    if (workers < 1) workers = 1;
    if (workers == 1) {
        row_worker(&job, 0);
    } else {
        lk_pool_run((int)workers, row_worker, &job);
    }
    /* A worker that could not allocate its scratch leaves its share to the others; if no
     * worker could, units are left over. */
    if (atomic_load(&job.next) < job.units) return LK_ENOMEM;
    return LK_OK;
}

/* ------------------------------------------------------------------------------------ */
/* Host side: heater codes                                                               */
/* ------------------------------------------------------------------------------------ */

typedef struct codes_ctx {
    const double *w;
    int64_t cols;
    int32_t bits;
    double scale;
    const double *row_env, *col_env;
    int32_t *codes;
} codes_ctx;

static void codes_rows(const void *arg, int64_t first, int64_t last, double *scratch) {
    (void)scratch;
    const codes_ctx *c = (const codes_ctx *)arg;
    const double dac_max = (double)((INT32_C(1) << c->bits) - 1);
    const int32_t sign_bit = INT32_C(1) << c->bits;
    for (int64_t i = first; i < last; i++) {
        const double *wr = c->w + i * c->cols;
        int32_t *out = c->codes + i * c->cols;
        const double r = c->row_env[i];
        for (int64_t j = 0; j < c->cols; j++) {
            const double wn = wr[j] / c->scale;                     /* 1. normalize */
            double t = fabs(wn) / (r * c->col_env[j]);              /* 2. loss */
            t = t < 0.0 ? 0.0 : (t > 1.0 ? 1.0 : t);
            const double phase = 2.0 * acos(t);                     /* 3. target phase */
            const double q = rint(sqrt(phase / LK_PI) * dac_max);   /* 4. heater DAC */
            out[j] = (int32_t)q | (wn < 0.0 ? sign_bit : 0);
        }
    }
}

int lk_heater_codes(const double *w, int64_t rows, int64_t cols, int32_t weight_bits,
                    const double *row_env, const double *col_env, int32_t *codes,
                    double *scale, int32_t threads) {
    if (w == NULL || row_env == NULL || col_env == NULL || codes == NULL || scale == NULL ||
        rows <= 0 || cols <= 0 || weight_bits < 2 || weight_bits > 24 || threads < 1)
        return LK_EINVAL;
    double peak = 0.0;
    const int64_t n = rows * cols;
    for (int64_t k = 0; k < n; k++) {
        const double a = fabs(w[k]);
        if (!(a <= peak)) peak = a; /* NaN propagates as in numpy's max */
    }
    if (!isfinite(peak)) return LK_ENONFINITE;
    const double s = peak != 0.0 ? peak : 1.0;
    codes_ctx ctx = {w, cols, weight_bits, s, row_env, col_env, codes};
    const int rc = run_rows(codes_rows, &ctx, rows, 16, n, threads, 0);
    if (rc == LK_OK) *scale = s;
    return rc;
}

/* ------------------------------------------------------------------------------------ */
/* Chip side: codes -> packed W_eff                                                      */
/* ------------------------------------------------------------------------------------ */

typedef struct program_ctx {
    const lk_program_params *p;
    const int32_t *codes;
    float *packed;
    uint64_t base;
    int use_fab, use_arm, use_xtalk;
} program_ctx;

/* phi_f of row i (steps 4-5) into out[0 .. cols-1]. */
static void static_phase_row(const program_ctx *c, int64_t i, double *out) {
    const lk_program_params *p = c->p;
    const int32_t *row = c->codes + i * p->cols;
    const int32_t mask = (INT32_C(1) << p->weight_bits) - 1;
    const double dac_max = (double)mask;
    for (int64_t j = 0; j < p->cols; j++) {
        const double v = (double)(row[j] & mask) / dac_max;
        double phase = LK_PI * (v * v); /* 4. heater law */
        if (c->use_fab) {
            const uint64_t h = cell_hash(c->base, i, j);
            double g = cell_normal(h, (uint32_t)h, 0); /* 5. fabrication, clipped */
            g = g < -3.0 ? -3.0 : (g > 3.0 ? 3.0 : g);
            phase = phase * (1.0 + p->fab_sigma * g);
        }
        out[j] = phase;
    }
}

static void program_rows(const void *arg, int64_t first, int64_t last, double *scratch) {
    const program_ctx *c = (const program_ctx *)arg;
    const lk_program_params *p = c->p;
    const int64_t cols = p->cols, rows = p->rows;
    /* scratch: phi_f of rows first-1 .. last (zero outside the block), then arm of a row */
    double *phi = scratch;                            /* (last - first + 2) x (cols + 2) */
    const int64_t ld = cols + 2;
    double *arm = scratch + (LK_PANEL + 2) * ld;      /* cols */
    for (int64_t r = first - 1; r <= last; r++) {
        double *dst = phi + (r - first + 1) * ld;
        dst[0] = dst[cols + 1] = 0.0;
        if (r < 0 || r >= rows || (!c->use_xtalk && (r < first || r >= last))) {
            for (int64_t j = 0; j < cols; j++) dst[j + 1] = 0.0;
        } else {
            static_phase_row(c, r, dst + 1);
        }
    }
    const int32_t sign_bit = INT32_C(1) << p->weight_bits;
    const double k1 = p->crosstalk, k2 = p->crosstalk_diag, drift = p->drift_rad_per_um;
    for (int64_t i = first; i < last; i++) {
        const double *up = phi + (i - first) * ld + 1;
        const double *mid = up + ld;
        const double *down = mid + ld;
        if (c->use_arm) {
            /* the arm normals of row i (their hash also feeds phi_f, recomputed here) */
            for (int64_t j = 0; j < cols; j++) {
                const uint64_t h = cell_hash(c->base, i, j);
                arm[j] = p->arm_imbalance_um * cell_normal(h, (uint32_t)(h >> 32), 1);
            }
        }
        const int32_t *code = c->codes + i * cols;
        float *panel = c->packed + (i / LK_PANEL) * cols * LK_PANEL + (i % LK_PANEL);
        const double r_env = p->row_envelope[i];
        for (int64_t j = 0; j < cols; j++) {
            double phase = mid[j];
            if (c->use_xtalk) { /* 6. crosstalk, summed as the reference sums */
                const double edge = ((up[j] + down[j]) + mid[j - 1]) + mid[j + 1];
                const double diag = ((up[j - 1] + up[j + 1]) + down[j - 1]) + down[j + 1];
                phase = (phase + k1 * edge) + k2 * diag;
            }
            if (c->use_arm) phase = phase + drift * arm[j]; /* 7. drift */
            const double envelope = r_env * p->col_envelope[j];
            const double signed_env = (code[j] & sign_bit) ? -envelope : envelope;
            panel[j * LK_PANEL] = (float)(signed_env * cos(phase / 2.0)); /* 8. W_eff */
        }
    }
    /* padding lanes of the last panel */
    if (last == rows && rows % LK_PANEL) {
        float *panel = c->packed + (rows / LK_PANEL) * cols * LK_PANEL;
        for (int64_t j = 0; j < cols; j++)
            for (int64_t l = rows % LK_PANEL; l < LK_PANEL; l++) panel[j * LK_PANEL + l] = 0.0f;
    }
}

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
    const int64_t scratch = (LK_PANEL + 2) * (p->cols + 2) + p->cols;
    return run_rows(program_rows, &ctx, p->rows, LK_PANEL, p->rows * p->cols, threads,
                    scratch);
}
