/* Lumina HAL twin kernel: internal declarations shared by the kernel's translation units.
 *
 * Not part of the API (that is lumina_kernel.h). Everything the forward pass and the
 * stand-alone test entry points (lk_quantize_inputs, lk_adc, lk_normals) have in common is
 * defined here once, as static inline functions, so the tests exercise the very same code.
 * See docs/kernel.md for the design.
 */
#ifndef LK_INTERNAL_H
#define LK_INTERNAL_H

#include <math.h>
#include <stdint.h>

#include "lumina_kernel.h"

#if defined(__x86_64__) || defined(__i386__)
#define LK_X86 1
#else
#define LK_X86 0
#endif

#define LK_ALWAYS_INLINE inline __attribute__((always_inline))

/* Largest tile the microkernels produce: rows of a batch tile x panels side by side. */
#define LK_MR_MAX 6
#define LK_NP_MAX 4
#define LK_TILE_LD (LK_NP_MAX * LK_PANEL) /* row stride of the u / s2 tile buffers */

/* ------------------------------------------------------------------------------------ */
/* Converters                                                                            */
/* ------------------------------------------------------------------------------------ */

/* Positive levels of a signed symmetric converter, L(b) = 2^(b-1) - 1 (exact in float32
 * for b <= 24). */
static inline float lk_levels(int32_t bits) { return (float)((INT32_C(1) << (bits - 1)) - 1); }

static inline int lk_valid_bits(int32_t bits) { return bits >= 2 && bits <= 24; }

/* Input DAC of one vector (docs/physics.md section 3 step 1):
 *   s_x = max_j |x_j|;  x_n,j = rint(x_j * (L / s_x)) / L, with L / s_x rounded once to float.
 * Writes x_n to xn (length cols) and returns s_x. A zero vector gives s_x = 0 and x_n = 0.
 *
 * If L / s_x overflows float (s_x below about 1e-37, a subnormal-range vector), x and s_x are
 * first scaled by 2^64, which is exact, so the result is the same arithmetic carried out
 * with an unbounded exponent range instead of inf * 0 = NaN. */
static LK_ALWAYS_INLINE float lk_dac_vector(const float *x, int64_t cols, float levels,
                                            float *xn) {
    float sx = 0.0f;
    for (int64_t j = 0; j < cols; j++) {
        float a = fabsf(x[j]);
        sx = a > sx ? a : sx;
    }
    if (sx == 0.0f) {
        for (int64_t j = 0; j < cols; j++) xn[j] = 0.0f;
        return 0.0f;
    }
    float to_code = levels / sx;
    if (isinf(to_code)) {
        const float up = 18446744073709551616.0f; /* 2^64 */
        to_code = levels / (sx * up);
        for (int64_t j = 0; j < cols; j++) xn[j] = rintf((x[j] * up) * to_code) / levels;
    } else {
        for (int64_t j = 0; j < cols; j++) xn[j] = rintf(x[j] * to_code) / levels;
    }
    return sx;
}

/* ADC of one value: code = clip(rint(v * to_code), -L, L) with to_code = L / FS rounded once
 * to float. *hit is set to 1 when the code sits at full scale (+-L), else 0. */
static LK_ALWAYS_INLINE float lk_adc_one(float v, float to_code, float levels, int *hit) {
    float code = rintf(v * to_code);
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

/* ------------------------------------------------------------------------------------ */
/* Random numbers (lk_rng.c)                                                             */
/* ------------------------------------------------------------------------------------ */

/* xoshiro256++ state plus a one-word buffer: each 64-bit output is consumed as two 32-bit
 * words, low half first. */
typedef struct lk_rng {
    uint64_t s[4];
    uint64_t buf;
    int have; /* 1 if the high half of buf is still unused */
} lk_rng;

/* Key the stream of (seed, call, vector, panel) as docs/physics.md section 4 says. */
void lk_rng_key(lk_rng *g, uint64_t seed, uint64_t call_index, uint64_t vector, uint64_t panel);

/* One standard normal (float ziggurat, 256 layers; docs/kernel.md "Ziggurat"). The tables
 * must have been built with lk_ziggurat_init() first. */
float lk_rng_normal(lk_rng *g);

/* Build the ziggurat tables once (thread safe, idempotent). */
void lk_ziggurat_init(void);

/* ------------------------------------------------------------------------------------ */
/* Microkernels (lk_tile_*.c)                                                             */
/* ------------------------------------------------------------------------------------ */

/* One tile: for mr batch rows (1..LK_MR_MAX) and np consecutive weight panels
 * (1..LK_NP_MAX) compute, for every lane l of panel p and row r,
 *   u[r][p*16 + l]  = fma chain over j of w[p][j][l] * xp[j][r].x
 *   s2[r][p*16 + l] = fma chain over j of (w[p][j][l]^2) * xp[j][r].x2
 * starting from +0, j = 0 .. cols-1 in order, one fused multiply-add per term.
 *   w      first panel of the tile; panel p starts at w + p * pstride
 *   xp     packed inputs of the tile: (x_n, x_n^2) pairs, x_n of row r at column j is
 *          xp[j * xs + 2 * r] and x_n^2 is next to it (xs >= 2 * mr floats per j)
 *   u, s2  outputs, row stride LK_TILE_LD floats */
typedef void (*lk_tile_fn)(const float *w, int64_t pstride, int np, const float *xp,
                           int64_t xs, int mr, int64_t cols, float *u, float *s2);

void lk_tile_scalar(const float *w, int64_t pstride, int np, const float *xp, int64_t xs,
                    int mr, int64_t cols, float *u, float *s2);
#if LK_X86
void lk_tile_avx2(const float *w, int64_t pstride, int np, const float *xp, int64_t xs,
                  int mr, int64_t cols, float *u, float *s2);
void lk_tile_avx512(const float *w, int64_t pstride, int np, const float *xp, int64_t xs,
                    int mr, int64_t cols, float *u, float *s2);
#endif

#endif
