/* Lumina HAL twin kernel: random numbers.
 *
 * xoshiro256++ streams keyed with splitmix64 (docs/physics.md section 4) and a float32
 * ziggurat with 256 layers whose tables are computed at first use from the Marsaglia-Tsang
 * construction in double precision. docs/kernel.md, section "Ziggurat", documents exactly
 * which bits of which word go where.
 */
#include <math.h>
#include <pthread.h>
#include <stdint.h>

#include "lk_internal.h"

/* ------------------------------------------------------------------------------------ */
/* splitmix64 and xoshiro256++                                                           */
/* ------------------------------------------------------------------------------------ */

#define LK_GOLDEN UINT64_C(0x9E3779B97F4A7C15)

/* One splitmix64 step as a function: sm(z) = mix(z + golden). */
static inline uint64_t sm(uint64_t z) {
    z += LK_GOLDEN;
    z = (z ^ (z >> 30)) * UINT64_C(0xBF58476D1CE4E5B9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94D049BB133111EB);
    return z ^ (z >> 31);
}

static inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

void lk_rng_key(lk_rng *g, uint64_t seed, uint64_t call_index, uint64_t vector, uint64_t panel) {
    uint64_t k = sm(seed);
    k = sm(k ^ call_index);
    k = sm(k ^ vector);
    k = sm(k ^ panel);
    /* Four successive outputs of the splitmix64 sequence whose state starts at k: the i-th
     * output is mix(k + (i + 1) * golden) = sm(k + i * golden). mix is a bijection, so the
     * four words are distinct and the state is never all zero. */
    for (int i = 0; i < 4; i++) g->s[i] = sm(k + (uint64_t)i * LK_GOLDEN);
    g->buf = 0;
    g->have = 0;
}

/* xoshiro256++ (Blackman and Vigna 2019). */
static inline uint64_t next64(lk_rng *g) {
    uint64_t *s = g->s;
    const uint64_t result = rotl(s[0] + s[3], 23) + s[0];
    const uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

/* The 32-bit word stream: low half of each 64-bit output first, then its high half. */
static inline uint32_t next32(lk_rng *g) {
    if (g->have) {
        g->have = 0;
        return (uint32_t)(g->buf >> 32);
    }
    g->buf = next64(g);
    g->have = 1;
    return (uint32_t)g->buf;
}

/* Uniform in [0, 1) from the top 24 bits of a word. */
static inline double u01_closed_open(uint32_t w) { return (double)(w >> 8) * 0x1p-24; }

/* Uniform in (0, 1] from the top 24 bits of a word (never 0, so its log is finite). */
static inline double u01_open_closed(uint32_t w) { return (double)((w >> 8) + 1) * 0x1p-24; }

/* ------------------------------------------------------------------------------------ */
/* Ziggurat                                                                              */
/* ------------------------------------------------------------------------------------ */

#define ZIG_LAYERS 256
#define LK_PI 3.14159265358979323846
/* Right edge of the base layer for 256 layers (Marsaglia and Tsang 2000, normal case): the
 * root r of the closing condition x_256 = 0 of the recursion below. The layer area v is
 * derived from it (erfc), and the recursion closes to about 1e-15 with this r. */
#define ZIG_R 3.6541528853610088

static float zig_w[ZIG_LAYERS];    /* x_i * 2^-23: scales the 23-bit mantissa into layer i */
static uint32_t zig_k[ZIG_LAYERS]; /* m < zig_k[i]  <=>  m * x_i / 2^23 < x_{i+1} */
static double zig_f[ZIG_LAYERS + 1]; /* f(x_i) = exp(-x_i^2 / 2), with f(x_256) = 1 */
static pthread_once_t zig_once = PTHREAD_ONCE_INIT;

static double zig_density(double x) { return exp(-0.5 * x * x); }

/* Layer boundaries x_0 > x_1 = r > x_2 > ... > x_255 > x_256 = 0 for the unnormalized
 * density f(x) = exp(-x^2/2) on x >= 0. Every layer has area v:
 *   v = r f(r) + integral_r^inf f = r f(r) + sqrt(pi/2) erfc(r / sqrt 2),
 *   x_0 = v / f(r)  (the base layer: a rectangle r x f(r) plus the tail, seen as one
 *                    rectangle of width x_0 and height f(r)),
 *   x_{i+1} = f^-1(f(x_i) + v / x_i) = sqrt(-2 ln(f(x_i) + v / x_i)),  i = 1 .. 254. */
static void zig_build(void) {
    double x[ZIG_LAYERS + 1];
    const double r = ZIG_R;
    const double v = r * zig_density(r) + sqrt(LK_PI / 2.0) * erfc(r / sqrt(2.0));
    x[0] = v / zig_density(r);
    x[1] = r;
    for (int i = 1; i < ZIG_LAYERS - 1; i++) {
        x[i + 1] = sqrt(-2.0 * log(zig_density(x[i]) + v / x[i]));
    }
    x[ZIG_LAYERS] = 0.0;
    for (int i = 0; i < ZIG_LAYERS; i++) {
        zig_w[i] = (float)(x[i] * 0x1p-23);
        /* Smallest integer k with k >= 2^23 x_{i+1} / x_i, so that m < k exactly when the
         * point m * x_i / 2^23 lies left of x_{i+1} (inside the rectangle under the curve). */
        zig_k[i] = (uint32_t)ceil(0x1p23 * x[i + 1] / x[i]);
        zig_f[i] = zig_density(x[i]);
    }
    zig_f[ZIG_LAYERS] = 1.0;
}

void lk_ziggurat_init(void) { pthread_once(&zig_once, zig_build); }

/* Tail beyond r (Marsaglia 1964): a = -ln(u1) / r, b = -ln(u2) until 2b > a^2; r + a. */
static float zig_tail(lk_rng *g) {
    for (;;) {
        const double a = -log(u01_open_closed(next32(g))) / ZIG_R;
        const double b = -log(u01_open_closed(next32(g)));
        if (b + b > a * a) return (float)(ZIG_R + a);
    }
}

float lk_rng_normal(lk_rng *g) {
    for (;;) {
        const uint32_t w = next32(g);
        const uint32_t i = w & 0xFFu;       /* bits 0-7: layer */
        const uint32_t neg = (w >> 8) & 1u; /* bit 8: sign */
        const uint32_t m = w >> 9;          /* bits 9-31: 23-bit mantissa */
        float x = (float)m * zig_w[i];
        if (m < zig_k[i]) return neg ? -x : x; /* inside the rectangle: ~98.5 % */
        if (i == 0) {
            x = zig_tail(g);
            return neg ? -x : x;
        }
        /* Wedge between x_{i+1} and x_i: a uniform height in layer i under the curve? */
        const double y = zig_f[i] + u01_closed_open(next32(g)) * (zig_f[i + 1] - zig_f[i]);
        if (y < zig_density((double)x)) return neg ? -x : x;
    }
}
