/* Lumina HAL twin kernel: x86 tiles, epilogues and ADC (AVX2+FMA and AVX-512F).
 *
 * Compiled for the baseline target like every other file; only the functions below carry
 * __attribute__((target(...))), and lumina_kernel.c calls them only after
 * __builtin_cpu_supports said the CPU has the extension. No -march flag is involved.
 *
 * Broadcast formulation: for each j the kernel loads the 16-wide weight row of each panel,
 * squares it in a register, and fuses it with the broadcast x_n[j] and x_n[j]^2 of each
 * batch row. Every lane of every accumulator is therefore one sequential FMA chain over j,
 * exactly like lk_tile_scalar, so all paths give identical bits.
 */
#include "lk_internal.h"

#if LK_X86

#include <immintrin.h>
#include <stdint.h>
#include <string.h>

#define LK_T512 __attribute__((target("avx512f")))
#define LK_T256 __attribute__((target("avx2,fma")))
#define LK_TFMA __attribute__((target("fma")))

/* ------------------------------------------------------------------------------------ */
/* q chains (any x86 with FMA): independent scalar FMA chains of several rows, interleaved. */
/* ------------------------------------------------------------------------------------ */

static LK_TFMA LK_ALWAYS_INLINE void qrows(const float *xp, int64_t rs, const float *c2,
                                           int64_t cols, float *q, const int N) {
    __m128 acc[8];
    const float *x2[8];
#pragma GCC unroll 8
    for (int r = 0; r < N; r++) {
        acc[r] = _mm_setzero_ps();
        x2[r] = xp + r * rs + 1;
    }
    for (int64_t j = 0; j < cols; j++) {
        const __m128 c = _mm_set_ss(c2[j]);
#pragma GCC unroll 8
        for (int r = 0; r < N; r++) {
            acc[r] = _mm_fmadd_ss(c, _mm_load_ss(x2[r] + 2 * j), acc[r]);
        }
    }
#pragma GCC unroll 8
    for (int r = 0; r < N; r++) q[r] = _mm_cvtss_f32(acc[r]);
}

/* lk_qrows_fn: up to 8 rows' chains interleaved, so the FMA latency is hidden. */
LK_TFMA void lk_qrows_fma(const float *xp, int64_t rs, int64_t n, const float *c2, int64_t cols,
                          float *q) {
    for (int64_t r = 0; r < n; r += 8) {
        const float *x = xp + r * rs;
        switch (n - r < 8 ? n - r : 8) {
        case 1: qrows(x, rs, c2, cols, q + r, 1); break;
        case 2: qrows(x, rs, c2, cols, q + r, 2); break;
        case 3: qrows(x, rs, c2, cols, q + r, 3); break;
        case 4: qrows(x, rs, c2, cols, q + r, 4); break;
        case 5: qrows(x, rs, c2, cols, q + r, 5); break;
        case 6: qrows(x, rs, c2, cols, q + r, 6); break;
        case 7: qrows(x, rs, c2, cols, q + r, 7); break;
        default: qrows(x, rs, c2, cols, q + r, 8); break;
        }
    }
}

/* ------------------------------------------------------------------------------------ */
/* AVX-512F: a panel is one zmm register; up to 6 rows x 2 panels or 2 rows x 4 panels,    */
/* i.e. at most 24 accumulators (u and s2) in the 32 zmm registers.                        */
/* ------------------------------------------------------------------------------------ */

static LK_T512 LK_ALWAYS_INLINE void tile512(const float *restrict w, int64_t ps,
                                             const float *restrict xp, int64_t rs,
                                             int64_t cols, float *restrict u,
                                             float *restrict s2, const int MR, const int NP) {
    /* Every small loop is unrolled up front so the accumulators live in registers. */
    __m512 acc[LK_MR_MAX][LK_NP_MAX];
    __m512 sq[LK_MR_MAX][LK_NP_MAX];
    const float *wp[LK_NP_MAX];
    const float *xr[LK_MR_MAX];
#pragma GCC unroll 4
    for (int p = 0; p < NP; p++) wp[p] = w + p * ps;
#pragma GCC unroll 6
    for (int r = 0; r < MR; r++) xr[r] = xp + r * rs;
#pragma GCC unroll 6
    for (int r = 0; r < MR; r++) {
#pragma GCC unroll 4
        for (int p = 0; p < NP; p++) {
            acc[r][p] = _mm512_setzero_ps();
            sq[r][p] = _mm512_setzero_ps();
        }
    }
    for (int64_t j = 0; j < cols; j++) {
        __m512 wv[LK_NP_MAX];
        __m512 w2[LK_NP_MAX];
#pragma GCC unroll 4
        for (int p = 0; p < NP; p++) {
            wv[p] = _mm512_loadu_ps(wp[p] + j * LK_PANEL);
            w2[p] = _mm512_mul_ps(wv[p], wv[p]);
        }
#pragma GCC unroll 6
        for (int r = 0; r < MR; r++) {
            const __m512 xb = _mm512_set1_ps(xr[r][2 * j]);
            const __m512 x2b = _mm512_set1_ps(xr[r][2 * j + 1]);
#pragma GCC unroll 4
            for (int p = 0; p < NP; p++) {
                acc[r][p] = _mm512_fmadd_ps(wv[p], xb, acc[r][p]);
                sq[r][p] = _mm512_fmadd_ps(w2[p], x2b, sq[r][p]);
            }
        }
    }
#pragma GCC unroll 6
    for (int r = 0; r < MR; r++) {
#pragma GCC unroll 4
        for (int p = 0; p < NP; p++) {
            _mm512_storeu_ps(u + r * LK_TILE_LD + p * LK_PANEL, acc[r][p]);
            _mm512_storeu_ps(s2 + r * LK_TILE_LD + p * LK_PANEL, sq[r][p]);
        }
    }
}

#define LK_CASE512(MR, NP)                                                                  \
    case (MR) * 8 + (NP):                                                                   \
        tile512(w, pstride, xp, rs, cols, u, s2, MR, NP);                                   \
        return;

LK_T512 void lk_tile_avx512(const float *w, int64_t pstride, int np, const float *xp,
                            int64_t rs, int mr, int64_t cols, float *u, float *s2) {
    switch (mr * 8 + np) {
        LK_CASE512(1, 1) LK_CASE512(1, 2) LK_CASE512(1, 3) LK_CASE512(1, 4)
        LK_CASE512(2, 1) LK_CASE512(2, 2) LK_CASE512(2, 3) LK_CASE512(2, 4)
        LK_CASE512(3, 1) LK_CASE512(3, 2) LK_CASE512(4, 1) LK_CASE512(4, 2)
        LK_CASE512(5, 1) LK_CASE512(5, 2) LK_CASE512(6, 1) LK_CASE512(6, 2)
    default:
        break;
    }
    /* Shapes the driver does not ask for: one panel at a time (same bits). */
    for (int p = 0; p < np; p++) {
        lk_tile_avx512(w + p * pstride, pstride, 1, xp, rs, mr, cols, u + p * LK_PANEL,
                       s2 + p * LK_PANEL);
    }
}

/* ADC of 16 lanes: rint(v * to_code) (round to nearest even, as rintf in the default
 * rounding mode), then codes >= L become L and codes <= -L become -L; *hit marks them. */
static LK_T512 LK_ALWAYS_INLINE __m512 adc512(__m512 v, __m512 to_code, __m512 lv,
                                              __mmask16 *hit) {
    const __m512 code = _mm512_roundscale_ps(_mm512_mul_ps(v, to_code),
                                             _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    const __m512 nlv = _mm512_sub_ps(_mm512_setzero_ps(), lv);
    const __mmask16 hi = _mm512_cmp_ps_mask(code, lv, _CMP_GE_OQ);
    const __mmask16 lo = _mm512_cmp_ps_mask(code, nlv, _CMP_LE_OQ);
    *hit = (__mmask16)(hi | lo);
    return _mm512_mask_mov_ps(_mm512_mask_mov_ps(code, hi, lv), lo, nlv);
}

/* lk_epi_fn with one zmm per quantity; the same operations in the same order as
 * lk_epi_scalar, so the same bits. */
LK_T512 int lk_epi_avx512(const lk_epi *e, const float *u, const float *s2, const float *r2,
                          const float *z, float sx, float q, float *y, int n) {
    const __mmask16 valid = (__mmask16)((1u << n) - 1u);
    const __m512 uv = _mm512_loadu_ps(u);
    __m512 v = uv;
    if (e->noise) {
        __m512 vphi = _mm512_mul_ps(
            _mm512_set1_ps(e->phase_var),
            _mm512_sub_ps(_mm512_mul_ps(_mm512_loadu_ps(r2), _mm512_set1_ps(q)),
                          _mm512_loadu_ps(s2)));
        vphi = _mm512_max_ps(vphi, _mm512_setzero_ps()); /* -0 and NaN give +0, as scalar */
        const __m512 det = _mm512_add_ps(
            _mm512_add_ps(_mm512_set1_ps(e->c0), _mm512_mul_ps(_mm512_set1_ps(e->c1),
                                                               _mm512_abs_ps(uv))),
            _mm512_mul_ps(_mm512_set1_ps(e->c2), _mm512_mul_ps(uv, uv)));
        const __m512 sd = _mm512_sqrt_ps(_mm512_add_ps(vphi, det));
        v = _mm512_add_ps(uv, _mm512_mul_ps(sd, _mm512_loadu_ps(z)));
    }
    __mmask16 hit;
    const __m512 code = adc512(v, _mm512_set1_ps(e->to_code), _mm512_set1_ps(e->levels), &hit);
    const __m512 yv = _mm512_mul_ps(
        _mm512_mul_ps(_mm512_mul_ps(code, _mm512_set1_ps(e->from_code)), _mm512_set1_ps(sx)),
        _mm512_set1_ps(e->out_scale));
    _mm512_mask_storeu_ps(y, valid, yv);
    return __builtin_popcount((unsigned)(hit & valid));
}

LK_T512 int64_t lk_adc_avx512(const float *v, int64_t n, float to_code, float levels,
                              float *codes) {
    const __m512 tc = _mm512_set1_ps(to_code), lv = _mm512_set1_ps(levels);
    int64_t hits = 0;
    for (int64_t i = 0; i < n; i += 16) {
        const int64_t left = n - i;
        const __mmask16 valid = left >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << left) - 1u);
        __mmask16 hit;
        const __m512 code = adc512(_mm512_maskz_loadu_ps(valid, v + i), tc, lv, &hit);
        _mm512_mask_storeu_ps(codes + i, valid, code);
        hits += __builtin_popcount((unsigned)(hit & valid));
    }
    return hits;
}

/* Input DAC (lk_dac_fn), 16 lanes at a time; the same operations as lk_dac_scalar. */
LK_T512 float lk_dac_avx512(const float *x, int64_t cols, float levels, float *xn) {
    __m512 m = _mm512_setzero_ps();
    for (int64_t j = 0; j < cols; j += 16) {
        const int64_t left = cols - j;
        const __mmask16 k = left >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << left) - 1u);
        m = _mm512_max_ps(m, _mm512_abs_ps(_mm512_maskz_loadu_ps(k, x + j)));
    }
    const float sx = _mm512_reduce_max_ps(m);
    float up = 1.0f, to_code = 0.0f;
    if (sx != 0.0f) to_code = lk_dac_factor(sx, levels, &up);
    const __m512 tc = _mm512_set1_ps(to_code), upv = _mm512_set1_ps(up);
    const __m512 lv = _mm512_set1_ps(levels);
    for (int64_t j = 0; j < cols; j += 16) {
        const int64_t left = cols - j;
        const __mmask16 k = left >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << left) - 1u);
        __m512 v = _mm512_maskz_loadu_ps(k, x + j);
        if (up != 1.0f) v = _mm512_mul_ps(v, upv);
        const __m512 code = _mm512_roundscale_ps(_mm512_mul_ps(v, tc),
                                                 _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
        _mm512_mask_storeu_ps(xn + j, k, _mm512_div_ps(code, lv));
    }
    return sx;
}

/* lk_nonfinite_fn: exponent bits all ones in any lane, 64 floats per step. */
LK_T512 int lk_nonfinite_avx512(const float *a, int64_t n) {
    const __m512i e = _mm512_set1_epi32(0x7F800000);
    __mmask16 bad = 0;
    int64_t i = 0;
    for (; i + 64 <= n; i += 64) {
        for (int k = 0; k < 4; k++) {
            const __m512i v = _mm512_loadu_si512((const void *)(a + i + 16 * k));
            bad |= _mm512_cmpeq_epi32_mask(_mm512_and_si512(v, e), e);
        }
    }
    for (; i < n; i += 16) {
        const int64_t left = n - i;
        const __mmask16 k = left >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << left) - 1u);
        const __m512i v = _mm512_maskz_loadu_epi32(k, a + i);
        bad |= _mm512_mask_cmpeq_epi32_mask(k, _mm512_and_si512(v, e), e);
    }
    return bad != 0;
}

/* ------------------------------------------------------------------------------------ */
/* AVX2+FMA: a panel is two ymm registers; 2 rows x 1 panel or 1 row x 2 panels: 8        */
/* accumulators, 4 broadcasts and a weight half with its square fit the 16 ymm registers.  */
/* ------------------------------------------------------------------------------------ */

#define LK_AVX2_MR 2 /* largest AVX2 tiles: 2 rows x 1 panel, 1 row x 2 panels */
#define LK_AVX2_NH 4 /* 8-lane halves: 2 per panel, at most 2 panels */

static LK_T256 LK_ALWAYS_INLINE void tile256(const float *restrict w, int64_t ps,
                                             const float *restrict xp, int64_t rs,
                                             int64_t cols, float *restrict u,
                                             float *restrict s2, const int MR, const int NP) {
    /* Arrays sized for the largest shape, and every small loop unrolled up front (GCC 12
     * otherwise vectorizes the final stores first and keeps the accumulators in memory). */
    __m256 acc[LK_AVX2_MR][LK_AVX2_NH];
    __m256 sq[LK_AVX2_MR][LK_AVX2_NH];
    const float *wp[LK_AVX2_NH];
    const float *xr[LK_AVX2_MR];
#pragma GCC unroll 4
    for (int h = 0; h < 2 * NP; h++) wp[h] = w + (h / 2) * ps + (h % 2) * 8;
#pragma GCC unroll 2
    for (int r = 0; r < MR; r++) xr[r] = xp + r * rs;
#pragma GCC unroll 2
    for (int r = 0; r < MR; r++) {
#pragma GCC unroll 4
        for (int h = 0; h < 2 * NP; h++) {
            acc[r][h] = _mm256_setzero_ps();
            sq[r][h] = _mm256_setzero_ps();
        }
    }
    for (int64_t j = 0; j < cols; j++) {
        __m256 xb[LK_AVX2_MR];
        __m256 x2b[LK_AVX2_MR];
#pragma GCC unroll 2
        for (int r = 0; r < MR; r++) {
            xb[r] = _mm256_broadcast_ss(xr[r] + 2 * j);
            x2b[r] = _mm256_broadcast_ss(xr[r] + 2 * j + 1);
        }
#pragma GCC unroll 4
        for (int h = 0; h < 2 * NP; h++) { /* one weight half (and its square) at a time */
            const __m256 wv = _mm256_loadu_ps(wp[h] + j * LK_PANEL);
            const __m256 w2 = _mm256_mul_ps(wv, wv);
#pragma GCC unroll 2
            for (int r = 0; r < MR; r++) {
                acc[r][h] = _mm256_fmadd_ps(wv, xb[r], acc[r][h]);
                sq[r][h] = _mm256_fmadd_ps(w2, x2b[r], sq[r][h]);
            }
        }
    }
#pragma GCC unroll 2
    for (int r = 0; r < MR; r++) {
#pragma GCC unroll 4
        for (int h = 0; h < 2 * NP; h++) {
            _mm256_storeu_ps(u + r * LK_TILE_LD + h * 8, acc[r][h]);
            _mm256_storeu_ps(s2 + r * LK_TILE_LD + h * 8, sq[r][h]);
        }
    }
}

#define LK_CASE256(MR, NP)                                                                  \
    case (MR) * 8 + (NP):                                                                   \
        tile256(w, pstride, xp, rs, cols, u, s2, MR, NP);                                   \
        return;

LK_T256 void lk_tile_avx2(const float *w, int64_t pstride, int np, const float *xp,
                          int64_t rs, int mr, int64_t cols, float *u, float *s2) {
    switch (mr * 8 + np) {
        LK_CASE256(1, 1) LK_CASE256(1, 2) LK_CASE256(2, 1)
    default:
        break;
    }
    /* Other shapes: one panel and at most 2 rows at a time (same bits). */
    for (int p = 0; p < np; p++) {
        for (int r = 0; r < mr; r += LK_AVX2_MR) {
            const int m = mr - r < LK_AVX2_MR ? mr - r : LK_AVX2_MR;
            lk_tile_avx2(w + p * pstride, pstride, 1, xp + r * rs, rs, m, cols,
                         u + r * LK_TILE_LD + p * LK_PANEL, s2 + r * LK_TILE_LD + p * LK_PANEL);
        }
    }
}

/* ADC of 8 lanes, as adc512; *hit gets one bit per lane at full scale. */
static LK_T256 LK_ALWAYS_INLINE __m256 adc256(__m256 v, __m256 to_code, __m256 lv, int *hit) {
    const __m256 code =
        _mm256_round_ps(_mm256_mul_ps(v, to_code), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    const __m256 nlv = _mm256_sub_ps(_mm256_setzero_ps(), lv);
    const __m256 hi = _mm256_cmp_ps(code, lv, _CMP_GE_OQ);
    const __m256 lo = _mm256_cmp_ps(code, nlv, _CMP_LE_OQ);
    *hit = _mm256_movemask_ps(_mm256_or_ps(hi, lo));
    return _mm256_blendv_ps(_mm256_blendv_ps(code, lv, hi), nlv, lo);
}

/* lk_epi_fn with two ymm halves per quantity (same operations as lk_epi_scalar). */
LK_T256 int lk_epi_avx2(const lk_epi *e, const float *u, const float *s2, const float *r2,
                        const float *z, float sx, float q, float *y, int n) {
    float out[LK_PANEL];
    int hits = 0;
    const unsigned valid = (1u << n) - 1u;
    for (int h = 0; h < 2; h++) {
        const __m256 uv = _mm256_loadu_ps(u + 8 * h);
        __m256 v = uv;
        if (e->noise) {
            __m256 vphi = _mm256_mul_ps(
                _mm256_set1_ps(e->phase_var),
                _mm256_sub_ps(_mm256_mul_ps(_mm256_loadu_ps(r2 + 8 * h), _mm256_set1_ps(q)),
                              _mm256_loadu_ps(s2 + 8 * h)));
            vphi = _mm256_max_ps(vphi, _mm256_setzero_ps()); /* -0 and NaN give +0 */
            const __m256 absu = _mm256_andnot_ps(_mm256_set1_ps(-0.0f), uv);
            const __m256 det = _mm256_add_ps(
                _mm256_add_ps(_mm256_set1_ps(e->c0), _mm256_mul_ps(_mm256_set1_ps(e->c1), absu)),
                _mm256_mul_ps(_mm256_set1_ps(e->c2), _mm256_mul_ps(uv, uv)));
            const __m256 sd = _mm256_sqrt_ps(_mm256_add_ps(vphi, det));
            v = _mm256_add_ps(uv, _mm256_mul_ps(sd, _mm256_loadu_ps(z + 8 * h)));
        }
        int hit;
        const __m256 code =
            adc256(v, _mm256_set1_ps(e->to_code), _mm256_set1_ps(e->levels), &hit);
        const __m256 yv = _mm256_mul_ps(
            _mm256_mul_ps(_mm256_mul_ps(code, _mm256_set1_ps(e->from_code)), _mm256_set1_ps(sx)),
            _mm256_set1_ps(e->out_scale));
        _mm256_storeu_ps(out + 8 * h, yv);
        hits += __builtin_popcount((unsigned)hit << (8 * h) & valid);
    }
    memcpy(y, out, (size_t)n * sizeof(float));
    return hits;
}

LK_T256 int64_t lk_adc_avx2(const float *v, int64_t n, float to_code, float levels,
                            float *codes) {
    const __m256 tc = _mm256_set1_ps(to_code), lv = _mm256_set1_ps(levels);
    int64_t hits = 0;
    for (int64_t i = 0; i < n; i += 8) {
        const int left = n - i >= 8 ? 8 : (int)(n - i);
        float in[8] = {0}, out[8];
        memcpy(in, v + i, (size_t)left * sizeof(float));
        int hit;
        _mm256_storeu_ps(out, adc256(_mm256_loadu_ps(in), tc, lv, &hit));
        memcpy(codes + i, out, (size_t)left * sizeof(float));
        hits += __builtin_popcount((unsigned)hit & ((1u << left) - 1u));
    }
    return hits;
}

/* Input DAC (lk_dac_fn), 8 lanes at a time; the same operations as lk_dac_scalar. */
LK_T256 float lk_dac_avx2(const float *x, int64_t cols, float levels, float *xn) {
    const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    const __m256 sign = _mm256_set1_ps(-0.0f);
    __m256 m = _mm256_setzero_ps();
    for (int64_t j = 0; j < cols; j += 8) {
        const int left = cols - j >= 8 ? 8 : (int)(cols - j);
        const __m256i k = _mm256_cmpgt_epi32(_mm256_set1_epi32(left), lane);
        m = _mm256_max_ps(m, _mm256_andnot_ps(sign, _mm256_maskload_ps(x + j, k)));
    }
    float lanes[8];
    _mm256_storeu_ps(lanes, m);
    float sx = 0.0f;
    for (int l = 0; l < 8; l++) sx = lanes[l] > sx ? lanes[l] : sx;
    float up = 1.0f, to_code = 0.0f;
    if (sx != 0.0f) to_code = lk_dac_factor(sx, levels, &up);
    const __m256 tc = _mm256_set1_ps(to_code), upv = _mm256_set1_ps(up);
    const __m256 lv = _mm256_set1_ps(levels);
    for (int64_t j = 0; j < cols; j += 8) {
        const int left = cols - j >= 8 ? 8 : (int)(cols - j);
        const __m256i k = _mm256_cmpgt_epi32(_mm256_set1_epi32(left), lane);
        __m256 v = _mm256_maskload_ps(x + j, k);
        if (up != 1.0f) v = _mm256_mul_ps(v, upv);
        const __m256 code =
            _mm256_round_ps(_mm256_mul_ps(v, tc), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
        _mm256_maskstore_ps(xn + j, k, _mm256_div_ps(code, lv));
    }
    return sx;
}

/* lk_nonfinite_fn: exponent bits all ones in any lane, 32 floats per step. */
LK_T256 int lk_nonfinite_avx2(const float *a, int64_t n) {
    const __m256i e = _mm256_set1_epi32(0x7F800000);
    __m256i bad = _mm256_setzero_si256();
    int64_t i = 0;
    for (; i + 32 <= n; i += 32) {
        for (int k = 0; k < 4; k++) {
            const __m256i v = _mm256_loadu_si256((const __m256i *)(const void *)(a + i + 8 * k));
            bad = _mm256_or_si256(bad, _mm256_cmpeq_epi32(_mm256_and_si256(v, e), e));
        }
    }
    int found = !_mm256_testz_si256(bad, bad);
    for (; i < n; i++) {
        uint32_t bits;
        memcpy(&bits, &a[i], sizeof bits);
        found |= (bits & 0x7F800000u) == 0x7F800000u;
    }
    return found;
}

#endif
