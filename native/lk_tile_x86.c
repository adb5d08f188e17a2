/* Lumina HAL twin kernel: x86 microkernels (AVX2+FMA and AVX-512F).
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

#define LK_T512 __attribute__((target("avx512f")))
#define LK_T256 __attribute__((target("avx2,fma")))

/* ------------------------------------------------------------------------------------ */
/* AVX-512F: a panel is one zmm register; up to 6 rows x 2 panels or 2 rows x 4 panels,    */
/* i.e. at most 24 accumulators (u and s2) in the 32 zmm registers.                        */
/* ------------------------------------------------------------------------------------ */

static LK_T512 LK_ALWAYS_INLINE void tile512(const float *restrict w, int64_t ps,
                                             const float *restrict xp, int64_t xs,
                                             int64_t cols, float *u, float *s2, const int MR,
                                             const int NP) {
    __m512 acc[LK_MR_MAX][LK_NP_MAX];
    __m512 sq[LK_MR_MAX][LK_NP_MAX];
    const float *wp[LK_NP_MAX];
    for (int p = 0; p < NP; p++) wp[p] = w + p * ps;
    for (int r = 0; r < MR; r++) {
        for (int p = 0; p < NP; p++) {
            acc[r][p] = _mm512_setzero_ps();
            sq[r][p] = _mm512_setzero_ps();
        }
    }
    for (int64_t j = 0; j < cols; j++) {
        __m512 wv[LK_NP_MAX];
        __m512 w2[LK_NP_MAX];
        for (int p = 0; p < NP; p++) {
            wv[p] = _mm512_loadu_ps(wp[p] + j * LK_PANEL);
            w2[p] = _mm512_mul_ps(wv[p], wv[p]);
        }
        const float *xj = xp + j * xs;
        for (int r = 0; r < MR; r++) {
            const __m512 xb = _mm512_set1_ps(xj[2 * r]);
            const __m512 x2b = _mm512_set1_ps(xj[2 * r + 1]);
            for (int p = 0; p < NP; p++) {
                acc[r][p] = _mm512_fmadd_ps(wv[p], xb, acc[r][p]);
                sq[r][p] = _mm512_fmadd_ps(w2[p], x2b, sq[r][p]);
            }
        }
    }
    for (int r = 0; r < MR; r++) {
        for (int p = 0; p < NP; p++) {
            _mm512_storeu_ps(u + r * LK_TILE_LD + p * LK_PANEL, acc[r][p]);
            _mm512_storeu_ps(s2 + r * LK_TILE_LD + p * LK_PANEL, sq[r][p]);
        }
    }
}

#define LK_CASE512(MR, NP)                                                                   \
    case (MR) * 8 + (NP):                                                                    \
        tile512(w, pstride, xp, xs, cols, u, s2, MR, NP);                                        \
        return;

LK_T512 void lk_tile_avx512(const float *w, int64_t pstride, int np, const float *xp,
                            int64_t xs, int mr, int64_t cols, float *u, float *s2) {
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
        lk_tile_avx512(w + p * pstride, pstride, 1, xp, xs, mr, cols, u + p * LK_PANEL,
                       s2 + p * LK_PANEL);
    }
}

/* ------------------------------------------------------------------------------------ */
/* AVX2+FMA: a panel is two ymm registers; up to 3 rows x 1 panel or 1 row x 2 panels      */
/* (12 or 8 accumulators of the 16 ymm registers).                                         */
/* ------------------------------------------------------------------------------------ */

static LK_T256 LK_ALWAYS_INLINE void tile256(const float *restrict w, int64_t ps,
                                             const float *restrict xp, int64_t xs,
                                             int64_t cols, float *u, float *s2, const int MR,
                                             const int NP) {
    __m256 acc[LK_MR_MAX][2 * LK_NP_MAX];
    __m256 sq[LK_MR_MAX][2 * LK_NP_MAX];
    const int NH = 2 * NP; /* 8-lane halves */
    for (int r = 0; r < MR; r++) {
        for (int h = 0; h < NH; h++) {
            acc[r][h] = _mm256_setzero_ps();
            sq[r][h] = _mm256_setzero_ps();
        }
    }
    for (int64_t j = 0; j < cols; j++) {
        const float *xj = xp + j * xs;
        for (int h = 0; h < NH; h++) {
            const __m256 wv = _mm256_loadu_ps(w + (h >> 1) * ps + j * LK_PANEL + (h & 1) * 8);
            const __m256 w2 = _mm256_mul_ps(wv, wv);
            for (int r = 0; r < MR; r++) {
                acc[r][h] = _mm256_fmadd_ps(wv, _mm256_broadcast_ss(xj + 2 * r), acc[r][h]);
                sq[r][h] = _mm256_fmadd_ps(w2, _mm256_broadcast_ss(xj + 2 * r + 1), sq[r][h]);
            }
        }
    }
    for (int r = 0; r < MR; r++) {
        for (int h = 0; h < NH; h++) {
            _mm256_storeu_ps(u + r * LK_TILE_LD + h * 8, acc[r][h]);
            _mm256_storeu_ps(s2 + r * LK_TILE_LD + h * 8, sq[r][h]);
        }
    }
}

#define LK_CASE256(MR, NP)                                                                   \
    case (MR) * 8 + (NP):                                                                    \
        tile256(w, pstride, xp, xs, cols, u, s2, MR, NP);                                        \
        return;

LK_T256 void lk_tile_avx2(const float *w, int64_t pstride, int np, const float *xp,
                          int64_t xs, int mr, int64_t cols, float *u, float *s2) {
    switch (mr * 8 + np) {
        LK_CASE256(1, 1) LK_CASE256(1, 2) LK_CASE256(2, 1) LK_CASE256(3, 1)
    default:
        break;
    }
    /* Other shapes: one panel and at most 3 rows at a time (same bits). */
    for (int p = 0; p < np; p++) {
        for (int r = 0; r < mr; r += 3) {
            const int m = mr - r < 3 ? mr - r : 3;
            lk_tile_avx2(w + p * pstride, pstride, 1, xp + 2 * r, xs, m, cols,
                         u + r * LK_TILE_LD + p * LK_PANEL, s2 + r * LK_TILE_LD + p * LK_PANEL);
        }
    }
}

#endif
