/* Lumina HAL twin kernel: portable tile, epilogue and ADC (any CPU).
 *
 * The reference shape of every tile kernel (see lk_tile_fn in lk_internal.h): each output
 * lane is one sequential fmaf chain over j, so it gives the same bits as the SIMD kernels.
 * fmaf is a single rounding by C11's definition; -ffp-contract=off keeps the compiler from
 * fusing anything else.
 */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "lk_internal.h"

void lk_tile_scalar(const float *w, int64_t pstride, int np, const float *xp, int64_t rs,
                    int mr, int64_t cols, float *u, float *s2) {
    for (int r = 0; r < mr; r++) {
        for (int l = 0; l < np * LK_PANEL; l++) {
            u[r * LK_TILE_LD + l] = 0.0f;
            s2[r * LK_TILE_LD + l] = 0.0f;
        }
    }
    for (int64_t j = 0; j < cols; j++) {
        for (int p = 0; p < np; p++) {
            const float *wj = w + p * pstride + j * LK_PANEL;
            for (int r = 0; r < mr; r++) {
                const float xv = xp[r * rs + 2 * j];
                const float x2 = xp[r * rs + 2 * j + 1];
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

/* ADC of one value; *hit = 1 when the code sits at full scale. */
static inline float adc_one(float v, float to_code, float levels, int *hit) {
    const float code = rintf(v * to_code);
    if (code >= levels) {
        *hit = 1;
        return levels;
    }
    if (code <= -levels) {
        *hit = 1;
        return -levels;
    }
    *hit = 0;
    return code;
}

int64_t lk_adc_scalar(const float *v, int64_t n, float to_code, float levels, float *codes) {
    int64_t hits = 0;
    for (int64_t i = 0; i < n; i++) {
        int hit;
        codes[i] = adc_one(v[i], to_code, levels, &hit);
        hits += hit;
    }
    return hits;
}

int lk_epi_scalar(const lk_epi *e, const float *u, const float *s2, const float *r2,
                  const float *z, float sx, float q, float *y, int n) {
    int hits = 0;
    for (int l = 0; l < n; l++) {
        const float ul = u[l];
        float v = ul;
        if (e->noise) {
            float vphi = e->phase_var * (r2[l] * q - s2[l]);
            vphi = vphi > 0.0f ? vphi : 0.0f;
            const float det = (e->c0 + e->c1 * fabsf(ul)) + e->c2 * (ul * ul);
            v = ul + sqrtf(vphi + det) * z[l];
        }
        int hit;
        const float code = adc_one(v, e->to_code, e->levels, &hit);
        hits += hit;
        y[l] = ((code * e->from_code) * sx) * e->out_scale;
    }
    return hits;
}

float lk_dac_scalar(const float *x, int64_t cols, float levels, float *xn) {
    float sx = 0.0f;
    for (int64_t j = 0; j < cols; j++) {
        const float a = fabsf(x[j]);
        sx = a > sx ? a : sx;
    }
    if (sx == 0.0f) {
        for (int64_t j = 0; j < cols; j++) xn[j] = 0.0f;
        return 0.0f;
    }
    float up;
    const float to_code = lk_dac_factor(sx, levels, &up);
    if (up != 1.0f) {
        for (int64_t j = 0; j < cols; j++) xn[j] = rintf((x[j] * up) * to_code) / levels;
    } else {
        for (int64_t j = 0; j < cols; j++) xn[j] = rintf(x[j] * to_code) / levels;
    }
    return sx;
}

void lk_qrows_scalar(const float *xp, int64_t rs, int64_t n, const float *c2, int64_t cols,
                     float *q) {
    for (int64_t r = 0; r < n; r++) {
        float acc = 0.0f;
        for (int64_t j = 0; j < cols; j++) acc = fmaf(c2[j], xp[r * rs + 2 * j + 1], acc);
        q[r] = acc;
    }
}

int lk_nonfinite_scalar(const float *a, int64_t n) {
    uint32_t bad = 0;
    for (int64_t i = 0; i < n; i++) {
        uint32_t bits;
        memcpy(&bits, &a[i], sizeof bits);
        bad |= (uint32_t)((bits & 0x7F800000u) == 0x7F800000u);
    }
    return bad != 0;
}
