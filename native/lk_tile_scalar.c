/* Lumina HAL twin kernel: portable microkernel (any CPU).
 *
 * The reference shape of every tile kernel (see lk_tile_fn in lk_internal.h): each output
 * lane is one sequential fmaf chain over j, so it gives the same bits as the SIMD kernels.
 * fmaf is a single rounding by C11's definition; -ffp-contract=off keeps the compiler from
 * fusing anything else.
 */
#include <math.h>
#include <stdint.h>

#include "lk_internal.h"

void lk_tile_scalar(const float *w, int64_t pstride, int np, const float *xp, int64_t xs,
                    int mr, int64_t cols, float *u, float *s2) {
    for (int r = 0; r < mr; r++) {
        for (int l = 0; l < np * LK_PANEL; l++) {
            u[r * LK_TILE_LD + l] = 0.0f;
            s2[r * LK_TILE_LD + l] = 0.0f;
        }
    }
    for (int64_t j = 0; j < cols; j++) {
        const float *xj = xp + j * xs;
        for (int p = 0; p < np; p++) {
            const float *wj = w + p * pstride + j * LK_PANEL;
            for (int r = 0; r < mr; r++) {
                const float xv = xj[2 * r];
                const float x2 = xj[2 * r + 1];
                float *ur = u + r * LK_TILE_LD + p * LK_PANEL;
                float *sr = s2 + r * LK_TILE_LD + p * LK_PANEL;
                for (int l = 0; l < LK_PANEL; l++) {
                    const float wl = wj[l];
                    const float w2 = wl * wl;
                    ur[l] = fmaf(wl, xv, ur[l]);
                    sr[l] = fmaf(w2, x2, sr[l]);
                }
            }
        }
    }
}
