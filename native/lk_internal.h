/* Lumina HAL twin kernel: internal declarations shared by the kernel's translation units.
 *
 * Not part of the API (that is lumina_kernel.h). The forward pass and the stand-alone test
 * entry points (lk_quantize_inputs, lk_adc, lk_normals) share their code through what is
 * declared here: the inline RNG fast path, and the per-ISA DAC / ADC / epilogue functions
 * (lk_scalar.c, lk_x86.c), so the tests exercise the very code lk_forward runs.
 * See docs/kernel.md for the design.
 */
#ifndef LK_INTERNAL_H
#define LK_INTERNAL_H

#include <math.h>
#include <stdint.h>

#include "lumina_kernel.h"

/* x86 SIMD paths; -DLK_NO_X86 builds the portable kernel only (as on other CPUs). */
#if (defined(__x86_64__) || defined(__i386__)) && !defined(LK_NO_X86)
#define LK_X86 1
#else
#define LK_X86 0
#endif

#define LK_ALWAYS_INLINE inline __attribute__((always_inline))

/* Internal symbols are hidden: they do not leak from the shared object, and position-
 * independent code reaches them directly instead of through the GOT. */
#pragma GCC visibility push(hidden)

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

/* The input DAC's multiplier for a vector with s_x > 0: to_code = L / s_x rounded once to
 * float (docs/physics.md section 3 step 1), and *up = 1. If L / s_x overflows float (s_x
 * below about 1e-37, a subnormal-range vector), the DAC scales x and s_x by *up = 2^64
 * first, which is exact, so the result is the same arithmetic carried out with an unbounded
 * exponent range instead of inf * 0 = NaN: x_n = rint((x * up) * to_code) / L. */
static inline float lk_dac_factor(float sx, float levels, float *up) {
    const float to_code = levels / sx;
    if (!isinf(to_code)) {
        *up = 1.0f;
        return to_code;
    }
    *up = 18446744073709551616.0f; /* 2^64 */
    return levels / (sx * *up);
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

/* Keys (docs/physics.md section 4): lk_rng_vector_key is K_b = sm(sm(sm(seed) ^ call) ^ b),
 * the per-call normals' key; lk_rng_panel_key keys a xoshiro256++ stream from a key h and
 * a panel p: k = sm(h ^ p), state = sm(k + i * golden), i = 0..3 (the per-cell ziggurat's
 * slow path, lk_program.c). */
uint64_t lk_rng_vector_key(uint64_t seed, uint64_t call_index, uint64_t vector);
void lk_rng_panel_key(lk_rng *g, uint64_t vector_key, uint64_t panel);

static inline uint64_t lk_rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

/* One xoshiro256++ step (Blackman and Vigna 2019) on the state s[4]. */
static LK_ALWAYS_INLINE uint64_t lk_xoshiro(uint64_t *s) {
    const uint64_t result = lk_rotl(s[0] + s[3], 23) + s[0];
    const uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = lk_rotl(s[3], 45);
    return result;
}

static LK_ALWAYS_INLINE uint64_t lk_next64(lk_rng *g) { return lk_xoshiro(g->s); }

/* The 32-bit word stream: low half of each 64-bit output first, then its high half. */
static LK_ALWAYS_INLINE uint32_t lk_next32(lk_rng *g) {
    if (g->have) {
        g->have = 0;
        return (uint32_t)(g->buf >> 32);
    }
    g->buf = lk_next64(g);
    g->have = 1;
    return (uint32_t)g->buf;
}

/* Ziggurat tables (lk_rng.c), built by lk_ziggurat_init() (thread safe, idempotent). */
#define LK_ZIG_LAYERS 256
extern float lk_zig_w[LK_ZIG_LAYERS];    /* x_i * 2^-23 */
extern uint32_t lk_zig_k[LK_ZIG_LAYERS]; /* m < k_i  <=>  m * x_i / 2^23 < x_{i+1} */
void lk_ziggurat_init(void);

/* The rare part of a draw whose first word w missed its layer's rectangle: tail or wedge
 * test, and further words until a value is accepted (lk_rng.c). */
float lk_zig_slow(lk_rng *g, uint32_t w);

/* The fast path of one draw from word w: layer i = bits 0-7, sign = bit 8, mantissa
 * m = bits 9-31, x = m * x_i / 2^23, accepted when m < k_i (inside the layer's rectangle).
 * Writes the signed x to *out and returns 1 if it is accepted. The sign is applied by
 * flipping the float's sign bit (no unpredictable branch). */
static LK_ALWAYS_INLINE int lk_zig_fast(uint32_t w, float *out) {
    const uint32_t i = w & 0xFFu;
    const uint32_t m = w >> 9;
    const float x = (float)(int32_t)m * lk_zig_w[i];
    uint32_t bits;
    __builtin_memcpy(&bits, &x, sizeof bits);
    bits ^= (w & 0x100u) << 23;
    __builtin_memcpy(out, &bits, sizeof bits);
    return m < lk_zig_k[i];
}

/* Per-call normals (docs/physics.md section 4): the normals of outputs i0 .. i0 + n - 1 of
 * the vector whose key is `key` (lk_rng_vector_key), into z. Counter-based: outputs 2t and
 * 2t + 1 come from the word sm(key + t * golden) through a float32 Box-Muller transform.
 * Every path computes the same bits (explicit FMAs, IEEE operations only). */
typedef void (*lk_normals_fn)(uint64_t key, int64_t i0, int64_t n, float *z);
void lk_normals_scalar(uint64_t key, int64_t i0, int64_t n, float *z);
#if LK_X86
void lk_normals_avx2(uint64_t key, int64_t i0, int64_t n, float *z);
void lk_normals_avx512(uint64_t key, int64_t i0, int64_t n, float *z);
#endif

/* Constants of the transform (docs/physics.md section 4), shared by every path: Cephes
 * logf, and the Taylor coefficients (-1)^.. / k! of sine and cosine rounded to float. */
#define LK_SIN3 (float)(-1.0 / 6.0)
#define LK_SIN5 (float)(1.0 / 120.0)
#define LK_SIN7 (float)(-1.0 / 5040.0)
#define LK_SIN9 (float)(1.0 / 362880.0)
#define LK_SIN11 (float)(-1.0 / 39916800.0)
#define LK_COS2 (-0.5f)
#define LK_COS4 (float)(1.0 / 24.0)
#define LK_COS6 (float)(-1.0 / 720.0)
#define LK_COS8 (float)(1.0 / 40320.0)
#define LK_COS10 (float)(-1.0 / 3628800.0)
#define LK_COS12 (float)(1.0 / 479001600.0)
#define LK_ANGLE 0x1.921fb6p-30f /* pi / 2^31 rounded to float (0x30C90FDB) */
#define LK_LN_P0 7.0376836292e-2f
#define LK_LN_P1 -1.1514610310e-1f
#define LK_LN_P2 1.1676998740e-1f
#define LK_LN_P3 -1.2420140846e-1f
#define LK_LN_P4 1.4249322787e-1f
#define LK_LN_P5 -1.6668057665e-1f
#define LK_LN_P6 2.0000714765e-1f
#define LK_LN_P7 -2.4999993993e-1f
#define LK_LN_P8 3.3333331174e-1f
#define LK_LN_Q1 -2.12194440e-4f
#define LK_LN_Q2 0.693359375f
#define LK_SQRT2F 1.41421354f /* lnf range split */
#define LK_GOLDEN_RATIO64 UINT64_C(0x9E3779B97F4A7C15)

/* ------------------------------------------------------------------------------------ */
/* Thread pool (lk_pool.c)                                                                */
/* ------------------------------------------------------------------------------------ */

/* Run fn(arg, 0) on the calling thread and fn(arg, i), i = 1 .. workers-1, on pool helpers,
 * and return when all have returned. Helpers may be fewer (pool busy with another call,
 * thread start failure) or may find nothing left to do: fn must share its work through a
 * counter and return only when nothing is left to claim. */
void lk_pool_run(int workers, void (*fn)(void *, int), void *arg);

/* Workers for a job of `cells` cells in `units` claimable units: one per 2^16 cells (a
 * thread's start costs more than that much work), at most `threads`, `units` and 64. */
static inline int lk_workers_for(int64_t cells, int64_t threads, int64_t units) {
    int64_t workers = cells / (INT64_C(1) << 16);
    if (workers > threads) workers = threads;
    if (workers > units) workers = units;
    if (workers > 64) workers = 64;
    return workers < 1 ? 1 : (int)workers;
}

/* ------------------------------------------------------------------------------------ */
/* Per-ISA kernels (lk_scalar.c, lk_x86.c)                                                */
/* ------------------------------------------------------------------------------------ */

/* Variance codes (docs/kernel.md "Variance term"): D_ij = max(R_i^2 C_j^2 - W_ij^2, 0) in
 * float32 (R_i^2 * C_j^2 and W_ij * W_ij each rounded, then the difference), its code
 * dq_ij = min(rint(D_ij * dinv_i), 255) with dinv_i = 255 / max_j D_ij, and the input code
 * x2q_j = rint((x_n,j * x_n,j) * 127). Codes are integers, so their dot product
 * s_i = sum_j dq_ij x2q_j (int32) is the same on every path whatever the order. */
#define LK_DQ_MAX 255
#define LK_X2_MAX 127
#define LK_DGROUP 4 /* columns per 32-bit lane of packed variance codes (VNNI layout) */
#define LK_DPAD 64  /* code rows (x2q and each panel's codes) are padded to 64 columns */

static inline int32_t lk_dcode(float w, float r2, float c2, float dinv) {
    float d = r2 * c2 - w * w;
    d = d > 0.0f ? d : 0.0f;
    const float e = rintf(d * dinv);
    return e < (float)LK_DQ_MAX ? (int32_t)e : LK_DQ_MAX;
}

static inline uint8_t lk_x2code(float xn) { return (uint8_t)rintf((xn * xn) * 127.0f); }

/* What a tile reads. Panel p of the tile starts at w + p * pstride (floats) and its
 * variance codes at d + p * dstride (bytes): ceil(cols / 64) * 16 groups of 16 lanes x 4
 * bytes, byte k of lane l of group g being the code of (output l, column 4 g + k), 0 past
 * cols. Row r of the tile: x_n at xn + r * xs (floats), x2q at x2 + r * x2s (bytes, zero
 * padded to a multiple of 64). d == NULL: noise off, no s is computed. r2, dinv point at the
 * tile's first output (16 * np floats, zero padded), c2 at column 0: for tiles that
 * compute the codes from w on the fly instead of reading d. */
typedef struct lk_tile_args {
    const float *w;
    int64_t pstride;
    const uint8_t *d;
    int64_t dstride;
    const float *xn;
    int64_t xs;
    const uint8_t *x2;
    int64_t x2s;
    int64_t cols;
    int64_t j0, j1; /* the columns this call adds: [j0, j1), j0 a multiple of 4 */
    int init;       /* 1: start u and s from 0; 0: continue the chains held in u and s */
    const float *r2, *c2, *dinv;
} lk_tile_args;

/* Tile: for mr batch rows (1..LK_MR_MAX) and np consecutive panels (1..LK_NP_MAX), every
 * lane l of panel p and row r:
 *   u[r][p*16 + l] = fma chain over j = j0 .. j1-1, in order, of w[p][j][l] * x_n[r][j]
 *   s[r][p*16 + l] = + sum_j dq[p][l][j] * x2q[r][j]  (int32, exact; only when d != NULL)
 * from +0 (init) or from the values already in u and s, which continues the same chain:
 * a call over [0, 128) then one over [128, cols) gives the bits of one call over [0, cols).
 * u and s have row stride LK_TILE_LD. Tiles computing codes on the fly take j0 = 0,
 * j1 = cols, init = 1 only. */
typedef void (*lk_tile_fn)(const lk_tile_args *a, int np, int mr, float *u, int32_t *s);

/* Constants of the epilogue, all float32 as the kernel holds them. */
typedef struct lk_epi {
    float to_code;   /* L_y / FS */
    float from_code; /* FS / L_y */
    float levels;    /* L_y */
    float out_scale; /* s_w */
    float c0, c1, c2;
    int noise;
    int codes; /* 1: write the ADC codes as int32 into y instead of floats */
} lk_epi;

/* Epilogue of one (vector, panel): lanes 0..n-1 (n in 1..16) of u, s (accumulators),
 * vs (variance scale of the output row) and z (normals) are used; all four arrays must be
 * readable for 16 elements. Per lane, in float32 and in this order (docs/kernel.md):
 *   v_phi = vs * (float)s
 *   var   = v_phi + ((c0 + c1 * |u|) + c2 * (u * u))
 *   v     = u + sqrtf(var) * z          (v = u when noise is off)
 *   code  = rint(v * (L/FS)); code >= L gives L, code <= -L gives -L (a "hit")
 *   y     = ((code * (FS/L)) * s_x) * s_w      (or (int32)code when e->codes)
 * Writes y[0..n-1] and returns the number of hits. */
typedef int (*lk_epi_fn)(const lk_epi *e, const float *u, const int32_t *s, const float *vs,
                         const float *z, float sx, float *y, int n);

/* The epilogue of a whole panel group for the rows of a batch block (normals, epilogue and
 * ADC fused): row r's accumulators at u + r * ld and s + r * ld (16 * ceil(gn / 16) lanes
 * readable), s_x in sx[r], RNG key in key[r] (noise only), outputs gi0 .. gi0 + gn - 1
 * (gi0 a multiple of 16, gn <= LK_NP_MAX * 16) into y + r * ys; vs points at the group's
 * first row_var_scale (gn floats; noise only). Per output the arithmetic of lk_epi_fn with
 * the normals of lk_normals_fn; a row with s_x = 0 gets y = 0 and no draws. Returns the
 * number of hits. */
typedef struct lk_rows_args {
    const float *u;
    const int32_t *s;
    int64_t ld;
    const float *vs;
    const uint64_t *key;
    const float *sx;
    int64_t nb, gi0;
    int gn;
    float *y;
    int64_t ys;
} lk_rows_args;
typedef int64_t (*lk_epi_rows_fn)(const lk_epi *e, const lk_rows_args *a);

/* Input DAC of one vector (docs/physics.md section 3 step 1): s_x = max_j |x_j| is
 * returned and x_n,j = rint(x_j * to_code) / L written to xn (see lk_dac_factor; when the
 * pre-scale up is not 1 the product is (x_j * up) * to_code). A zero vector gives s_x = 0
 * and x_n = 0. x must be finite. */
typedef float (*lk_dac_fn)(const float *x, int64_t cols, float levels, float *xn);

/* Variance input codes of one vector: x2[j] = lk_x2code(xn[j]), j < cols. */
typedef void (*lk_x2_fn)(const float *xn, int64_t cols, uint8_t *x2);

/* 1 if any of the n floats is NaN or +-Inf (exponent bits all ones), else 0. */
typedef int (*lk_nonfinite_fn)(const float *a, int64_t n);

/* ADC of n values (the epilogue's converter on its own): codes and the number of hits. */
typedef int64_t (*lk_adc_fn)(const float *v, int64_t n, float to_code, float levels,
                             float *codes);

void lk_tile_scalar(const lk_tile_args *a, int np, int mr, float *u, int32_t *s);
int lk_epi_scalar(const lk_epi *e, const float *u, const int32_t *s, const float *vs,
                  const float *z, float sx, float *y, int n);
int64_t lk_adc_scalar(const float *v, int64_t n, float to_code, float levels, float *codes);
float lk_dac_scalar(const float *x, int64_t cols, float levels, float *xn);
int lk_nonfinite_scalar(const float *a, int64_t n);
void lk_x2_scalar(const float *xn, int64_t cols, uint8_t *x2);
#if LK_X86
void lk_x2_avx512(const float *xn, int64_t cols, uint8_t *x2);
int lk_amx_available(void);
void lk_amx_block(const uint8_t *x2, int64_t x2s, int64_t nb, const uint8_t *d, int64_t dstride,
                  int np, int64_t bytes, int32_t *s);
float lk_dac_avx2(const float *x, int64_t cols, float levels, float *xn);
float lk_dac_avx512(const float *x, int64_t cols, float levels, float *xn);
int lk_nonfinite_avx2(const float *a, int64_t n);
int lk_nonfinite_avx512(const float *a, int64_t n);
void lk_tile_avx2(const lk_tile_args *a, int np, int mr, float *u, int32_t *s);
int lk_epi_avx2(const lk_epi *e, const float *u, const int32_t *s, const float *vs,
                const float *z, float sx, float *y, int n);
int64_t lk_adc_avx2(const float *v, int64_t n, float to_code, float levels, float *codes);
void lk_tile_avx512(const lk_tile_args *a, int np, int mr, float *u, int32_t *s);
void lk_tile_avx512vnni(const lk_tile_args *a, int np, int mr, float *u, int32_t *s);
void lk_tile_avx512_fly(const lk_tile_args *a, int np, int mr, float *u, int32_t *s);
void lk_tile_avx512vnni_fly(const lk_tile_args *a, int np, int mr, float *u, int32_t *s);
int lk_epi_avx512(const lk_epi *e, const float *u, const int32_t *s, const float *vs,
                  const float *z, float sx, float *y, int n);
int64_t lk_adc_avx512(const float *v, int64_t n, float to_code, float levels, float *codes);
int64_t lk_epi_rows_avx512(const lk_epi *e, const lk_rows_args *a);
#endif

#pragma GCC visibility pop

#endif
