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

void lk_tile_scalar(const lk_tile_args *a, int np, int mr, float *u, int32_t *s) {
    for (int r = 0; r < mr && a->init; r++) {
        for (int l = 0; l < np * LK_PANEL; l++) {
            u[r * LK_TILE_LD + l] = 0.0f;
            s[r * LK_TILE_LD + l] = 0;
        }
    }
    for (int64_t j = a->j0; j < a->j1; j++) {
        for (int p = 0; p < np; p++) {
            const float *wj = a->w + p * a->pstride + j * LK_PANEL;
            for (int r = 0; r < mr; r++) {
                const float xv = a->xn[r * a->xs + j];
                float *ur = u + r * LK_TILE_LD + p * LK_PANEL;
                for (int l = 0; l < LK_PANEL; l++) ur[l] = fmaf(wj[l], xv, ur[l]);
            }
        }
    }
    if (a->d == NULL) return;
    for (int p = 0; p < np; p++) {
        const uint8_t *dp = a->d + p * a->dstride;
        for (int r = 0; r < mr; r++) {
            const uint8_t *x2 = a->x2 + r * a->x2s;
            int32_t *sr = s + r * LK_TILE_LD + p * LK_PANEL;
            for (int64_t j = a->j0; j < a->j1; j++) {
                const uint8_t *dj = dp + (j / LK_DGROUP) * (LK_PANEL * LK_DGROUP) + j % LK_DGROUP;
                const int32_t xq = x2[j];
                for (int l = 0; l < LK_PANEL; l++) sr[l] += (int32_t)dj[l * LK_DGROUP] * xq;
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

int lk_epi_scalar(const lk_epi *e, const float *u, const int32_t *s, const float *vs,
                  const float *z, float sx, float *y, int n) {
    int hits = 0;
    for (int l = 0; l < n; l++) {
        const float ul = u[l];
        float v = ul;
        if (e->noise) {
            const float vphi = vs[l] * (float)s[l];
            const float det = (e->c0 + e->c1 * fabsf(ul)) + e->c2 * (ul * ul);
            v = ul + sqrtf(vphi + det) * z[l];
        }
        int hit;
        const float code = adc_one(v, e->to_code, e->levels, &hit);
        hits += hit;
        if (e->codes) {
            const int32_t c = (int32_t)code;
            memcpy(&y[l], &c, sizeof c);
        } else {
            y[l] = ((code * e->from_code) * sx) * e->out_scale;
        }
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

int lk_nonfinite_scalar(const float *a, int64_t n) {
    uint32_t bad = 0;
    for (int64_t i = 0; i < n; i++) {
        uint32_t bits;
        memcpy(&bits, &a[i], sizeof bits);
        bad |= (uint32_t)((bits & 0x7F800000u) == 0x7F800000u);
    }
    return bad != 0;
}

void lk_x2_scalar(const float *xn, int64_t cols, uint8_t *x2) {
    for (int64_t j = 0; j < cols; j++) x2[j] = lk_x2code(xn[j]);
}
