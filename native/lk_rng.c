/* Lumina HAL twin kernel: random numbers.
 *
 * Per-call normals (docs/physics.md section 4): counter-based splitmix64 words through a
 * float32 Box-Muller transform; lk_normals_scalar below is the definition the SIMD paths
 * (lk_x86.c) reproduce bit for bit. Per-cell draws of programming (lk_program.c): a float32
 * ziggurat with 256 layers, tables computed at first use from the Marsaglia-Tsang
 * construction in double precision, whose rare slow path continues on a xoshiro256++
 * stream keyed with splitmix64; its fast path is inline in lk_internal.h. docs/kernel.md,
 * section "Ziggurat", documents exactly which bits of which word go where.
 */
#include <math.h>
#include <pthread.h>
#include <stdint.h>

#include "lk_internal.h"

/* ------------------------------------------------------------------------------------ */
/* Keying                                                                                */
/* ------------------------------------------------------------------------------------ */

#define LK_GOLDEN UINT64_C(0x9E3779B97F4A7C15)

/* One splitmix64 step as a function: sm(z) = mix(z + golden). */
static inline uint64_t sm(uint64_t z) {
    z += LK_GOLDEN;
    z = (z ^ (z >> 30)) * UINT64_C(0xBF58476D1CE4E5B9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94D049BB133111EB);
    return z ^ (z >> 31);
}

uint64_t lk_rng_vector_key(uint64_t seed, uint64_t call_index, uint64_t vector) {
    return sm(sm(sm(seed) ^ call_index) ^ vector);
}

void lk_rng_panel_key(lk_rng *g, uint64_t vector_key, uint64_t panel) {
    const uint64_t k = sm(vector_key ^ panel);
    /* Four successive outputs of the splitmix64 sequence whose state starts at k: the i-th
     * output is mix(k + (i + 1) * golden) = sm(k + i * golden). mix is a bijection, so the
     * four words are distinct and the state is never all zero. */
    for (int i = 0; i < 4; i++) g->s[i] = sm(k + (uint64_t)i * LK_GOLDEN);
    g->buf = 0;
    g->have = 0;
}


/* ------------------------------------------------------------------------------------ */
/* Ziggurat                                                                              */
/* ------------------------------------------------------------------------------------ */

#define LK_PI 3.14159265358979323846
/* Right edge of the base layer for 256 layers (Marsaglia and Tsang 2000, normal case): the
 * root r of the closing condition x_256 = 0 of the recursion below. The layer area v is
 * derived from it (erfc); with this r the recursion closes to about 1e-15. */
#define LK_ZIG_R 3.6541528853610088

float lk_zig_w[LK_ZIG_LAYERS];
uint32_t lk_zig_k[LK_ZIG_LAYERS];
static double zig_f[LK_ZIG_LAYERS + 1]; /* f(x_i) = exp(-x_i^2 / 2); f(x_256) = 1 */
static pthread_once_t zig_once = PTHREAD_ONCE_INIT;

static double density(double x) { return exp(-0.5 * x * x); }

/* Layer boundaries x_0 > x_1 = r > x_2 > ... > x_255 > x_256 = 0 for the unnormalized
 * density f(x) = exp(-x^2/2) on x >= 0. Every layer has area v:
 *   v = r f(r) + integral_r^inf f = r f(r) + sqrt(pi/2) erfc(r / sqrt 2),
 *   x_0 = v / f(r)  (the base layer: the rectangle r x f(r) plus the tail, seen as one
 *                    rectangle of width x_0 and height f(r)),
 *   x_{i+1} = f^-1(f(x_i) + v / x_i) = sqrt(-2 ln(f(x_i) + v / x_i)),  i = 1 .. 254. */
static void zig_build(void) {
    double x[LK_ZIG_LAYERS + 1];
    const double r = LK_ZIG_R;
    const double v = r * density(r) + sqrt(LK_PI / 2.0) * erfc(r / sqrt(2.0));
    x[0] = v / density(r);
    x[1] = r;
    for (int i = 1; i < LK_ZIG_LAYERS - 1; i++) {
        x[i + 1] = sqrt(-2.0 * log(density(x[i]) + v / x[i]));
    }
    x[LK_ZIG_LAYERS] = 0.0;
    for (int i = 0; i < LK_ZIG_LAYERS; i++) {
        lk_zig_w[i] = (float)(x[i] * 0x1p-23);
        /* Smallest integer k >= 2^23 x_{i+1} / x_i: m < k exactly when the point
         * m * x_i / 2^23 lies left of x_{i+1}, i.e. inside the rectangle under the curve. */
        lk_zig_k[i] = (uint32_t)ceil(0x1p23 * x[i + 1] / x[i]);
        zig_f[i] = density(x[i]);
    }
    zig_f[LK_ZIG_LAYERS] = 1.0;
}

void lk_ziggurat_init(void) { pthread_once(&zig_once, zig_build); }

/* Uniform in [0, 1) from the top 24 bits of a word. */
static double u01_closed_open(uint32_t w) { return (double)(w >> 8) * 0x1p-24; }

/* Uniform in (0, 1] from the top 24 bits of a word (never 0, so its log is finite). */
static double u01_open_closed(uint32_t w) { return (double)((w >> 8) + 1) * 0x1p-24; }

/* Tail beyond r (Marsaglia 1964): a = -ln(u1) / r, b = -ln(u2) until 2b > a^2; r + a. */
static float tail(lk_rng *g) {
    for (;;) {
        const double a = -log(u01_open_closed(lk_next32(g))) / LK_ZIG_R;
        const double b = -log(u01_open_closed(lk_next32(g)));
        if (b + b > a * a) return (float)(LK_ZIG_R + a);
    }
}

float lk_zig_slow(lk_rng *g, uint32_t w) {
    for (;;) {
        const uint32_t i = w & 0xFFu; /* bits 0-7: layer */
        float x;
        if (lk_zig_fast(w, &x)) return x; /* inside the rectangle (after a restart) */
        const int neg = (w & 0x100u) != 0; /* bit 8: sign */
        if (i == 0) {
            x = tail(g);
            return neg ? -x : x;
        }
        x = fabsf(x);
        /* Wedge of layer i, between x_{i+1} and x_i: accept if a uniform height within the
         * layer falls under the curve. */
        const double y = zig_f[i] + u01_closed_open(lk_next32(g)) * (zig_f[i + 1] - zig_f[i]);
        if (y < density((double)x)) return neg ? -x : x;
        w = lk_next32(g); /* rejected: start over with a fresh word */
    }
}

/* ------------------------------------------------------------------------------------ */
/* Per-call normals, scalar: the exact definition every SIMD path reproduces              */
/* ------------------------------------------------------------------------------------ */

static inline float f32_from_bits(uint32_t b) {
    float f;
    __builtin_memcpy(&f, &b, sizeof f);
    return f;
}

static inline uint32_t bits_of_f32(float f) {
    uint32_t b;
    __builtin_memcpy(&b, &f, sizeof b);
    return b;
}

/* lnf of docs/physics.md section 4 (Cephes logf) for a normal float t > 0. */
static float spec_lnf(float t) {
    const uint32_t bits = bits_of_f32(t);
    int32_t e = (int32_t)(bits >> 23) - 127;
    float f = f32_from_bits((bits & 0x007FFFFFu) | 0x3F800000u);
    if (f > LK_SQRT2F) {
        f = f * 0.5f;
        e = e + 1;
    }
    const float y = f - 1.0f;
    const float y2 = y * y;
    float p = LK_LN_P0;
    p = fmaf(p, y, LK_LN_P1);
    p = fmaf(p, y, LK_LN_P2);
    p = fmaf(p, y, LK_LN_P3);
    p = fmaf(p, y, LK_LN_P4);
    p = fmaf(p, y, LK_LN_P5);
    p = fmaf(p, y, LK_LN_P6);
    p = fmaf(p, y, LK_LN_P7);
    p = fmaf(p, y, LK_LN_P8);
    float r = (y * y2) * p;
    const float ef = (float)e;
    r = fmaf(ef, LK_LN_Q1, r);
    r = fmaf(y2, -0.5f, r);
    r = y + r;
    return fmaf(ef, LK_LN_Q2, r);
}

/* The two standard normals of word h (docs/physics.md section 4, steps 1-5). */
static void spec_pair(uint64_t h, float *z0, float *z1) {
    const uint32_t lo = (uint32_t)h, hi = (uint32_t)(h >> 32);
    const float q = fmaf((float)(int32_t)(lo >> 1), 0x1p-31f, 0x1p-32f);
    const float rho = sqrtf(spec_lnf(q) * -2.0f);
    const float a = (float)(int32_t)(hi & 0x3FFFFFFFu) * LK_ANGLE;
    const float a2 = a * a, a3 = a * a2;
    float p = LK_SIN11;
    p = fmaf(p, a2, LK_SIN9);
    p = fmaf(p, a2, LK_SIN7);
    p = fmaf(p, a2, LK_SIN5);
    p = fmaf(p, a2, LK_SIN3);
    const float sine = fmaf(a3, p, a);
    p = LK_COS12;
    p = fmaf(p, a2, LK_COS10);
    p = fmaf(p, a2, LK_COS8);
    p = fmaf(p, a2, LK_COS6);
    p = fmaf(p, a2, LK_COS4);
    p = fmaf(p, a2, LK_COS2);
    const float cosine = fmaf(a2, p, 1.0f);
    const int swap = (hi >> 30) & 1u;
    const float c = swap ? sine : cosine, s = swap ? cosine : sine;
    const uint32_t csign = (hi ^ (hi << 1)) & 0x80000000u, ssign = hi & 0x80000000u;
    *z0 = rho * f32_from_bits(bits_of_f32(c) ^ csign);
    *z1 = rho * f32_from_bits(bits_of_f32(s) ^ ssign);
}

void lk_normals_scalar(uint64_t key, int64_t i0, int64_t n, float *z) {
    for (int64_t k = 0; k < n;) {
        const uint64_t i = (uint64_t)(i0 + k);
        float pair[2];
        spec_pair(sm(key + (i >> 1) * LK_GOLDEN), &pair[0], &pair[1]);
        z[k++] = pair[i & 1];
        if (!(i & 1) && k < n) z[k++] = pair[1];
    }
}
