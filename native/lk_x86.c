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

#include <cpuid.h>
#include <immintrin.h>
#include <stdint.h>
#include <string.h>
#if defined(__linux__)
#include <sys/syscall.h>
#include <unistd.h>
#endif

/* The AVX-512 paths need F, BW and DQ (every CPU with BW has DQ; lumina_kernel.c checks all
 * three): DQ for the 64-bit multiplies of the normals (vpmullq). */
#define LK_T512 __attribute__((target("avx512f,avx512bw,avx512dq")))
#define LK_T512V __attribute__((target("avx512f,avx512bw,avx512dq,avx512vnni")))
#define LK_T256 __attribute__((target("avx2,fma")))

/* ------------------------------------------------------------------------------------ */
/* AVX-512F: a panel is one zmm register; up to 6 rows x 2 panels or 2 rows x 4 panels,    */
/* i.e. at most 24 accumulators (u and s2) in the 32 zmm registers.                        */
/* ------------------------------------------------------------------------------------ */

/* The 4-byte group of variance codes of row r at column group g, as one int32. */
static LK_ALWAYS_INLINE int32_t x2group(const lk_tile_args *a, int r, int64_t g) {
    int32_t v;
    memcpy(&v, a->x2 + r * a->x2s + LK_DGROUP * g, sizeof v);
    return v;
}

/* s += sum over the 4 bytes k of each 32-bit lane of a[k] * b[k] (a unsigned codes <= 255,
 * b codes <= 127): vpdpbusd where the CPU has AVX-512 VNNI, else two vpmaddwd of the even
 * and odd bytes (exact: each 16-bit product pair sums to < 2^16). */
static LK_T512 LK_ALWAYS_INLINE __m512i dot4_512(__m512i s, __m512i a, __m512i b) {
    const __m512i m = _mm512_set1_epi16(0x00FF);
    s = _mm512_add_epi32(s, _mm512_madd_epi16(_mm512_and_si512(a, m), _mm512_and_si512(b, m)));
    return _mm512_add_epi32(
        s, _mm512_madd_epi16(_mm512_srli_epi16(a, 8), _mm512_srli_epi16(b, 8)));
}

static LK_T512V LK_ALWAYS_INLINE __m512i dot4_512v(__m512i s, __m512i a, __m512i b) {
    return _mm512_dpbusd_epi32(s, a, b);
}

/* The AVX-512 tile, for one shape (MR x NP), with or without the variance codes (NOISE),
 * with vpdpbusd or its emulation (VNNI). Every lane of u is a sequential FMA chain in j. */
#define LK_TILE512_BODY(DOT)                                                                 \
    __m512 acc[LK_MR_MAX][LK_NP_MAX];                                                        \
    __m512i sq[LK_MR_MAX][LK_NP_MAX];                                                        \
    const int64_t cols = a->j1, groups = cols / LK_DGROUP;                                   \
    _Pragma("GCC unroll 6") for (int r = 0; r < MR; r++) {                                   \
        _Pragma("GCC unroll 4") for (int p = 0; p < NP; p++) {                               \
            if (a->init) {                                                                   \
                acc[r][p] = _mm512_setzero_ps();                                             \
                sq[r][p] = _mm512_setzero_si512();                                           \
            } else {                                                                         \
                acc[r][p] = _mm512_loadu_ps(u + r * LK_TILE_LD + p * LK_PANEL);              \
                sq[r][p] = NOISE ? _mm512_loadu_si512(                                       \
                                       (const void *)(s + r * LK_TILE_LD + p * LK_PANEL))    \
                                 : _mm512_setzero_si512();                                   \
            }                                                                                \
        }                                                                                    \
    }                                                                                        \
    for (int64_t g = a->j0 / LK_DGROUP; g <= groups; g++) {                                  \
        const int64_t j0 = g * LK_DGROUP;                                                    \
        const int64_t jn = g < groups ? LK_DGROUP : cols - j0;                               \
        if (jn == 0) break;                                                                  \
        if (jn == LK_DGROUP) {                                                               \
            _Pragma("GCC unroll 4") for (int k = 0; k < LK_DGROUP; k++) {                    \
                __m512 wv[LK_NP_MAX];                                                        \
                _Pragma("GCC unroll 4") for (int p = 0; p < NP; p++) wv[p] =                 \
                    _mm512_loadu_ps(a->w + p * a->pstride + (j0 + k) * LK_PANEL);            \
                _Pragma("GCC unroll 6") for (int r = 0; r < MR; r++) {                       \
                    const __m512 xb = _mm512_set1_ps(a->xn[r * a->xs + j0 + k]);             \
                    _Pragma("GCC unroll 4") for (int p = 0; p < NP; p++) acc[r][p] =         \
                        _mm512_fmadd_ps(wv[p], xb, acc[r][p]);                               \
                }                                                                            \
            }                                                                                \
        } else {                                                                             \
            for (int64_t k = 0; k < jn; k++) {                                               \
                _Pragma("GCC unroll 6") for (int r = 0; r < MR; r++) {                       \
                    const __m512 xb = _mm512_set1_ps(a->xn[r * a->xs + j0 + k]);             \
                    _Pragma("GCC unroll 4") for (int p = 0; p < NP; p++) acc[r][p] =         \
                        _mm512_fmadd_ps(                                                     \
                            _mm512_loadu_ps(a->w + p * a->pstride + (j0 + k) * LK_PANEL),    \
                            xb, acc[r][p]);                                                  \
                }                                                                            \
            }                                                                                \
        }                                                                                    \
        if (NOISE) {                                                                         \
            __m512i dv[LK_NP_MAX];                                                           \
            _Pragma("GCC unroll 4") for (int p = 0; p < NP; p++) dv[p] =                     \
                _mm512_loadu_si512((const void *)(a->d + p * a->dstride + g * 64));          \
            _Pragma("GCC unroll 6") for (int r = 0; r < MR; r++) {                           \
                const __m512i xb = _mm512_set1_epi32(x2group(a, r, g));                      \
                _Pragma("GCC unroll 4") for (int p = 0; p < NP; p++) sq[r][p] =              \
                    DOT(sq[r][p], dv[p], xb);                                                \
            }                                                                                \
        }                                                                                    \
    }                                                                                        \
    _Pragma("GCC unroll 6") for (int r = 0; r < MR; r++) {                                   \
        _Pragma("GCC unroll 4") for (int p = 0; p < NP; p++) {                               \
            _mm512_storeu_ps(u + r * LK_TILE_LD + p * LK_PANEL, acc[r][p]);                  \
            if (NOISE)                                                                       \
                _mm512_storeu_si512((void *)(s + r * LK_TILE_LD + p * LK_PANEL), sq[r][p]);  \
        }                                                                                    \
    }

static LK_T512 LK_ALWAYS_INLINE void tile512(const lk_tile_args *a, float *u, int32_t *s,
                                             const int MR, const int NP, const int NOISE) {
    LK_TILE512_BODY(dot4_512)
}

static LK_T512V LK_ALWAYS_INLINE void tile512v(const lk_tile_args *a, float *u, int32_t *s,
                                               const int MR, const int NP, const int NOISE) {
    LK_TILE512_BODY(dot4_512v)
}

/* Shapes the driver asks for: 1-6 rows x 1-2 panels, 1-2 rows x 3-4 panels, and 3-6 rows x 4
 * panels for tiles without variance codes (the quiet shape, 6 x 4). */
#define LK_SHAPES512(CASE)                                                                  \
    CASE(1, 1) CASE(1, 2) CASE(1, 3) CASE(1, 4) CASE(2, 1) CASE(2, 2) CASE(2, 3) CASE(2, 4)  \
    CASE(3, 1) CASE(3, 2) CASE(4, 1) CASE(4, 2) CASE(5, 1) CASE(5, 2) CASE(6, 1) CASE(6, 2)  \
    CASE(3, 4) CASE(4, 4) CASE(5, 4) CASE(6, 4)

/* One case of the shape switch for the tile function FN (tile512 or tile512v). */
#define LK_CASE512_OF(FN, MR, NP)                                                          \
    case (MR) * 8 + (NP):                                                                   \
        if (a->d == NULL) {                                                                 \
            FN(a, u, s, MR, NP, 0);                                                         \
            return;                                                                         \
        }                                                                                   \
        if ((MR) * (NP) <= 12) { /* acc + sq fit the 32 registers */                        \
            FN(a, u, s, MR, NP, 1);                                                         \
            return;                                                                         \
        }                                                                                   \
        break; /* codes in a wider tile: one panel at a time (tile_by_panel) */
#define LK_CASE512(MR, NP) LK_CASE512_OF(tile512, MR, NP)
#define LK_CASE512V(MR, NP) LK_CASE512_OF(tile512v, MR, NP)

/* Shapes outside the table: one panel at a time (same bits). */
static void tile_by_panel(lk_tile_fn fn, const lk_tile_args *a, int np, int mr, float *u,
                          int32_t *s) {
    for (int p = 0; p < np; p++) {
        lk_tile_args b = *a;
        b.w = a->w + p * a->pstride;
        if (a->d != NULL) b.d = a->d + p * a->dstride;
        if (a->r2 != NULL) b.r2 = a->r2 + p * LK_PANEL;
        if (a->dinv != NULL) b.dinv = a->dinv + p * LK_PANEL;
        fn(&b, 1, mr, u + p * LK_PANEL, s + p * LK_PANEL);
    }
}

LK_T512 void lk_tile_avx512(const lk_tile_args *a, int np, int mr, float *u, int32_t *s) {
    switch (mr * 8 + np) {
        LK_SHAPES512(LK_CASE512)
    default:
        break;
    }
    tile_by_panel(lk_tile_avx512, a, np, mr, u, s);
}

LK_T512V void lk_tile_avx512vnni(const lk_tile_args *a, int np, int mr, float *u,
                                 int32_t *s) {
    switch (mr * 8 + np) {
        LK_SHAPES512(LK_CASE512V)
    default:
        break;
    }
    tile_by_panel(lk_tile_avx512vnni, a, np, mr, u, s);
}

/* s += dq * x2q per 32-bit lane (dq <= 255, x2q <= 127 in the low 16 bits, high 16 bits
 * 0): vpmaddwd and an add, or one vpdpwssd with VNNI; exact either way. */
static LK_T512 LK_ALWAYS_INLINE __m512i dot1_512(__m512i s, __m512i a, __m512i b) {
    return _mm512_add_epi32(s, _mm512_madd_epi16(a, b));
}

static LK_T512V LK_ALWAYS_INLINE __m512i dot1_512v(__m512i s, __m512i a, __m512i b) {
    return _mm512_dpwssd_epi32(s, a, b);
}

/* Narrow tiles (1-2 rows) for matrices too large for the caches: the variance codes are
 * computed from w on the fly (lk_dcode's float operations) instead of read, so a GEMV moves
 * only the float weights. The code min(rint(d * dinv), 255) is taken as one conversion with
 * round-to-nearest-even of min(d * dinv, 255): the same integer, since rint is monotonic and
 * 255 an integer (d * dinv is finite and >= 0). */
#define LK_FLY512_BODY(DOT1)                                                                 \
    __m512 acc[2][LK_NP_MAX];                                                                \
    __m512i sq[2][LK_NP_MAX];                                                                \
    __m512 r2v[LK_NP_MAX], dinvv[LK_NP_MAX];                                                 \
    const __m512 zero = _mm512_setzero_ps(), dmax = _mm512_set1_ps((float)LK_DQ_MAX);        \
    _Pragma("GCC unroll 4") for (int p = 0; p < NP; p++) {                                   \
        r2v[p] = _mm512_loadu_ps(a->r2 + p * LK_PANEL);                                      \
        dinvv[p] = _mm512_loadu_ps(a->dinv + p * LK_PANEL);                                  \
        _Pragma("GCC unroll 2") for (int r = 0; r < MR; r++) {                               \
            acc[r][p] = zero;                                                                \
            sq[r][p] = _mm512_setzero_si512();                                               \
        }                                                                                    \
    }                                                                                        \
    for (int64_t j = 0; j < a->cols; j++) {                                                  \
        const __m512 c2b = _mm512_set1_ps(a->c2[j]);                                         \
        __m512 xb[2];                                                                        \
        __m512i x2b[2];                                                                      \
        _Pragma("GCC unroll 2") for (int r = 0; r < MR; r++) {                               \
            xb[r] = _mm512_set1_ps(a->xn[r * a->xs + j]);                                    \
            x2b[r] = _mm512_set1_epi32((int32_t)a->x2[r * a->x2s + j]);                      \
        }                                                                                    \
        _Pragma("GCC unroll 4") for (int p = 0; p < NP; p++) {                               \
            const __m512 wv = _mm512_loadu_ps(a->w + p * a->pstride + j * LK_PANEL);         \
            __m512 d = _mm512_sub_ps(_mm512_mul_ps(r2v[p], c2b), _mm512_mul_ps(wv, wv));     \
            d = _mm512_max_ps(d, zero);                                                      \
            const __m512i dq = _mm512_cvt_roundps_epi32(                                     \
                _mm512_min_ps(_mm512_mul_ps(d, dinvv[p]), dmax),                             \
                _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);                              \
            _Pragma("GCC unroll 2") for (int r = 0; r < MR; r++) {                           \
                acc[r][p] = _mm512_fmadd_ps(wv, xb[r], acc[r][p]);                           \
                sq[r][p] = DOT1(sq[r][p], dq, x2b[r]);                                       \
            }                                                                                \
        }                                                                                    \
    }                                                                                        \
    _Pragma("GCC unroll 2") for (int r = 0; r < MR; r++) {                                   \
        _Pragma("GCC unroll 4") for (int p = 0; p < NP; p++) {                               \
            _mm512_storeu_ps(u + r * LK_TILE_LD + p * LK_PANEL, acc[r][p]);                  \
            _mm512_storeu_si512((void *)(s + r * LK_TILE_LD + p * LK_PANEL), sq[r][p]);      \
        }                                                                                    \
    }

static LK_T512 LK_ALWAYS_INLINE void fly512(const lk_tile_args *a, float *u, int32_t *s,
                                            const int MR, const int NP) {
    LK_FLY512_BODY(dot1_512)
}

static LK_T512V LK_ALWAYS_INLINE void fly512v(const lk_tile_args *a, float *u, int32_t *s,
                                              const int MR, const int NP) {
    LK_FLY512_BODY(dot1_512v)
}

#define LK_CASEFLY(MR, NP)                                                                  \
    case (MR) * 8 + (NP):                                                                   \
        fly512(a, u, s, MR, NP);                                                            \
        return;
#define LK_CASEFLYV(MR, NP)                                                                 \
    case (MR) * 8 + (NP):                                                                   \
        fly512v(a, u, s, MR, NP);                                                           \
        return;
#define LK_SHAPESFLY(CASE)                                                                  \
    CASE(1, 1) CASE(1, 2) CASE(1, 3) CASE(1, 4) CASE(2, 1) CASE(2, 2) CASE(2, 3) CASE(2, 4)

LK_T512 void lk_tile_avx512_fly(const lk_tile_args *a, int np, int mr, float *u, int32_t *s) {
    if (a->d == NULL) { /* noise off: nothing to compute on the fly */
        lk_tile_avx512(a, np, mr, u, s);
        return;
    }
    switch (mr * 8 + np) {
        LK_SHAPESFLY(LK_CASEFLY)
    default:
        break;
    }
    tile_by_panel(lk_tile_avx512_fly, a, np, mr, u, s);
}

LK_T512V void lk_tile_avx512vnni_fly(const lk_tile_args *a, int np, int mr, float *u,
                                     int32_t *s) {
    if (a->d == NULL) {
        lk_tile_avx512vnni(a, np, mr, u, s);
        return;
    }
    switch (mr * 8 + np) {
        LK_SHAPESFLY(LK_CASEFLYV)
    default:
        break;
    }
    tile_by_panel(lk_tile_avx512vnni_fly, a, np, mr, u, s);
}

/* ------------------------------------------------------------------------------------ */
/* AMX-INT8: the variance sums s of up to 16 rows x 1 panel as one tile product per 64     */
/* columns (tdpbuud: unsigned x2 codes x unsigned variance codes, int32 accumulation).     */
/* ------------------------------------------------------------------------------------ */

#define LK_AMX_TILE_CFG __attribute__((target("amx-tile,amx-int8")))

/* 1 if the CPU has AMX-TILE and AMX-INT8, the OS saves the tile state and (Linux) this
 * process was granted the tile data (arch_prctl ARCH_REQ_XCOMP_PERM). */
int lk_amx_available(void) {
    unsigned a, b, c, d;
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return 0;
    if (!((d >> 24) & 1u) || !((d >> 25) & 1u)) return 0; /* AMX-TILE, AMX-INT8 */
    if (!__get_cpuid(1, &a, &b, &c, &d) || !((c >> 27) & 1u)) return 0; /* OSXSAVE */
    unsigned lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    if ((lo & (3u << 17)) != (3u << 17)) return 0; /* XTILECFG, XTILEDATA enabled */
#if defined(__linux__) && defined(SYS_arch_prctl)
    return syscall(SYS_arch_prctl, 0x1023 /* ARCH_REQ_XCOMP_PERM */, 18 /* XTILEDATA */) == 0;
#else
    return 0;
#endif
}

typedef struct amx_cfg {
    uint8_t palette, start_row, reserved[14];
    uint16_t colsb[16];
    uint8_t rows[16];
} amx_cfg;

/* Tiles 0, 1: s of two panels; 2: x2 of up to 16 rows; 3, 4: codes of the two panels. */
static LK_AMX_TILE_CFG void amx_config(int mr) {
    amx_cfg cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.palette = 1;
    for (int t = 0; t < 3; t++) cfg.rows[t] = (uint8_t)mr, cfg.colsb[t] = 64;
    for (int t = 3; t < 5; t++) cfg.rows[t] = 16, cfg.colsb[t] = 64;
    _tile_loadconfig(&cfg);
}

/* s of nb rows x np panels: s[r][p*16 + l] = sum over the first `bytes` columns (a
 * multiple of 64) of x2[r][j] * dq[p][l][j]. x2 rows are x2s bytes apart; panel p's codes
 * start at d + p * dstride (64 bytes per group of 4 columns); s rows are LK_TILE_LD int32
 * apart. Two panels share each x2 tile load: 3 loads per 2 tile products. */
LK_AMX_TILE_CFG void lk_amx_block(const uint8_t *x2, int64_t x2s, int64_t nb, const uint8_t *d,
                                  int64_t dstride, int np, int64_t bytes, int32_t *s) {
    const int64_t ld = LK_TILE_LD * (int64_t)sizeof(int32_t);
    int configured = 0;
    for (int64_t r0 = 0; r0 < nb; r0 += 16) {
        const int mr = nb - r0 < 16 ? (int)(nb - r0) : 16;
        if (mr != configured) {
            amx_config(mr);
            configured = mr;
        }
        const uint8_t *xr = x2 + r0 * x2s;
        int32_t *sr = s + r0 * LK_TILE_LD;
        int p = 0;
        for (; p + 1 < np; p += 2) {
            const uint8_t *d0 = d + p * dstride, *d1 = d0 + dstride;
            _tile_zero(0);
            _tile_zero(1);
            for (int64_t k = 0; k < bytes; k += 64) {
                _tile_loadd(2, xr + k, x2s);
                _tile_loadd(3, d0 + k * LK_PANEL, 64);
                _tile_loadd(4, d1 + k * LK_PANEL, 64);
                _tile_dpbuud(0, 2, 3);
                _tile_dpbuud(1, 2, 4);
            }
            _tile_stored(0, sr + p * LK_PANEL, ld);
            _tile_stored(1, sr + (p + 1) * LK_PANEL, ld);
        }
        if (p < np) {
            const uint8_t *d0 = d + p * dstride;
            _tile_zero(0);
            for (int64_t k = 0; k < bytes; k += 64) {
                _tile_loadd(2, xr + k, x2s);
                _tile_loadd(3, d0 + k * LK_PANEL, 64);
                _tile_dpbuud(0, 2, 3);
            }
            _tile_stored(0, sr + p * LK_PANEL, ld);
        }
    }
    _tile_release();
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

/* The epilogue's constants, broadcast once per call of an epilogue. */
typedef struct epi512 {
    __m512 to_code, levels, from_code, out_scale, c0, c1, c2;
} epi512;

static LK_T512 LK_ALWAYS_INLINE epi512 epi512_of(const lk_epi *e) {
    epi512 k;
    k.to_code = _mm512_set1_ps(e->to_code);
    k.levels = _mm512_set1_ps(e->levels);
    k.from_code = _mm512_set1_ps(e->from_code);
    k.out_scale = _mm512_set1_ps(e->out_scale);
    k.c0 = _mm512_set1_ps(e->c0);
    k.c1 = _mm512_set1_ps(e->c1);
    k.c2 = _mm512_set1_ps(e->c2);
    return k;
}

/* The epilogue of 16 lanes (lk_epi_fn's arithmetic) with the normals z in a register: the
 * same operations in the same order as lk_epi_scalar, so the same bits. Lanes outside
 * `valid` are not stored and not counted; returns the number of hits. */
static LK_T512 LK_ALWAYS_INLINE int epi16_512(const lk_epi *e, const epi512 *k, __m512 uv,
                                              const int32_t *s, __m512 vsv, __m512 z,
                                              __m512 sxv, __mmask16 valid, float *y) {
    __m512 v = uv;
    if (e->noise) {
        const __m512 vphi =
            _mm512_mul_ps(vsv, _mm512_cvtepi32_ps(_mm512_loadu_si512((const void *)s)));
        const __m512 det =
            _mm512_add_ps(_mm512_add_ps(k->c0, _mm512_mul_ps(k->c1, _mm512_abs_ps(uv))),
                          _mm512_mul_ps(k->c2, _mm512_mul_ps(uv, uv)));
        const __m512 sd = _mm512_sqrt_ps(_mm512_add_ps(vphi, det));
        v = _mm512_add_ps(uv, _mm512_mul_ps(sd, z));
    }
    __mmask16 hit;
    const __m512 code = adc512(v, k->to_code, k->levels, &hit);
    if (e->codes) {
        _mm512_mask_storeu_epi32(y, valid, _mm512_cvtps_epi32(code));
    } else {
        const __m512 yv = _mm512_mul_ps(
            _mm512_mul_ps(_mm512_mul_ps(code, k->from_code), sxv), k->out_scale);
        _mm512_mask_storeu_ps(y, valid, yv);
    }
    return __builtin_popcount((unsigned)(hit & valid));
}

/* lk_epi_fn with one zmm per quantity (epi16_512). */
LK_T512 int lk_epi_avx512(const lk_epi *e, const float *u, const int32_t *s, const float *vs,
                          const float *z, float sx, float *y, int n) {
    const __mmask16 valid = (__mmask16)((1u << n) - 1u);
    const epi512 k = epi512_of(e);
    const __m512 vsv = e->noise ? _mm512_loadu_ps(vs) : _mm512_setzero_ps();
    const __m512 zv = e->noise ? _mm512_loadu_ps(z) : _mm512_setzero_ps();
    return epi16_512(e, &k, _mm512_loadu_ps(u), s, vsv, zv, _mm512_set1_ps(sx), valid, y);
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

/* code / L correctly rounded, for integer-valued codes |code| <= 2 L + 4 and L = 2^(b-1) - 1,
 * b = 2 .. 24, without a division: q = code * (1/L), the remainder code - q L (exact, one
 * fma), then q + rem * (1/L) (one fma) is the correctly rounded quotient for every such code
 * (Markstein's correction; checked exhaustively, all 2^25 codes of the 23 widths, by
 * tests/test_kernel_native.py). The sign of code is or-ed in so that -0 / L stays -0. */
static LK_T512 LK_ALWAYS_INLINE __m512 div_levels_512(__m512 code, __m512 lv, __m512 inv,
                                                      __m512i sign) {
    const __m512 q = _mm512_mul_ps(code, inv);
    const __m512 rem = _mm512_fnmadd_ps(q, lv, code);
    const __m512 quot = _mm512_fmadd_ps(rem, inv, q);
    return _mm512_castsi512_ps(_mm512_ternarylogic_epi32(
        _mm512_castps_si512(quot), _mm512_castps_si512(code), sign, 0xF8)); /* a | (b & c) */
}

/* Input DAC (lk_dac_fn), 16 lanes at a time; the results of lk_dac_scalar (its division
 * evaluated as div_levels_512). */
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
    const __m512 lv = _mm512_set1_ps(levels), inv = _mm512_set1_ps(1.0f / levels);
    const __m512i sign = _mm512_set1_epi32((int)0x80000000u);
    for (int64_t j = 0; j < cols; j += 16) {
        const int64_t left = cols - j;
        const __mmask16 k = left >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << left) - 1u);
        __m512 v = _mm512_maskz_loadu_ps(k, x + j);
        if (up != 1.0f) v = _mm512_mul_ps(v, upv);
        const __m512 code = _mm512_roundscale_ps(_mm512_mul_ps(v, tc),
                                                 _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
        _mm512_mask_storeu_ps(xn + j, k, div_levels_512(code, lv, inv, sign));
    }
    return sx;
}

/* lk_x2_fn, 16 lanes at a time: rint((x * x) * 127) as bytes (the operations of lk_x2code). */
LK_T512 void lk_x2_avx512(const float *xn, int64_t cols, uint8_t *x2) {
    const __m512 k = _mm512_set1_ps((float)LK_X2_MAX);
    for (int64_t j = 0; j < cols; j += 16) {
        const int64_t left = cols - j;
        const __mmask16 m = left >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << left) - 1u);
        const __m512 v = _mm512_maskz_loadu_ps(m, xn + j);
        /* rint and the conversion in one instruction (round to nearest even), then the
         * bytes packed in a register: a masked narrowing store is slow on some cores */
        const __m512i e = _mm512_cvt_roundps_epi32(_mm512_mul_ps(_mm512_mul_ps(v, v), k),
                                                   _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
        if (m == 0xFFFF) {
            _mm_storeu_si128((__m128i *)(void *)(x2 + j), _mm512_cvtepi32_epi8(e));
        } else {
            _mm512_mask_cvtepi32_storeu_epi8(x2 + j, m, e);
        }
    }
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

/* dot4_512 on 8 lanes (AVX2 vpmaddwd; exact). */
static LK_T256 LK_ALWAYS_INLINE __m256i dot4_256(__m256i s, __m256i a, __m256i b) {
    const __m256i m = _mm256_set1_epi16(0x00FF);
    s = _mm256_add_epi32(s, _mm256_madd_epi16(_mm256_and_si256(a, m), _mm256_and_si256(b, m)));
    return _mm256_add_epi32(
        s, _mm256_madd_epi16(_mm256_srli_epi16(a, 8), _mm256_srli_epi16(b, 8)));
}

static LK_T256 LK_ALWAYS_INLINE void tile256(const lk_tile_args *a, float *u, int32_t *s,
                                             const int MR, const int NP) {
    __m256 acc[LK_AVX2_MR][LK_AVX2_NH];
#pragma GCC unroll 2
    for (int r = 0; r < MR; r++) {
#pragma GCC unroll 4
        for (int h = 0; h < 2 * NP; h++) {
            acc[r][h] = a->init ? _mm256_setzero_ps() : _mm256_loadu_ps(u + r * LK_TILE_LD + h * 8);
        }
    }
    for (int64_t j = a->j0; j < a->j1; j++) {
        __m256 xb[LK_AVX2_MR];
#pragma GCC unroll 2
        for (int r = 0; r < MR; r++) xb[r] = _mm256_broadcast_ss(a->xn + r * a->xs + j);
#pragma GCC unroll 4
        for (int h = 0; h < 2 * NP; h++) {
            const __m256 wv = _mm256_loadu_ps(a->w + (h / 2) * a->pstride + (h % 2) * 8 +
                                              j * LK_PANEL);
#pragma GCC unroll 2
            for (int r = 0; r < MR; r++) acc[r][h] = _mm256_fmadd_ps(wv, xb[r], acc[r][h]);
        }
    }
#pragma GCC unroll 2
    for (int r = 0; r < MR; r++) {
#pragma GCC unroll 4
        for (int h = 0; h < 2 * NP; h++) _mm256_storeu_ps(u + r * LK_TILE_LD + h * 8, acc[r][h]);
    }
    if (a->d == NULL) return;
    /* The variance codes in a second pass over the tile's panels (integers: any order). */
    const int64_t groups = (a->j1 + LK_DGROUP - 1) / LK_DGROUP;
#pragma GCC unroll 2
    for (int r = 0; r < MR; r++) {
#pragma GCC unroll 4
        for (int h = 0; h < 2 * NP; h++) {
            const uint8_t *d = a->d + (h / 2) * a->dstride + (h % 2) * 32;
            int32_t *sr = s + r * LK_TILE_LD + h * 8;
            __m256i sq = a->init ? _mm256_setzero_si256()
                                 : _mm256_loadu_si256((const __m256i *)(const void *)sr);
            for (int64_t g = a->j0 / LK_DGROUP; g < groups; g++) {
                const __m256i dv = _mm256_loadu_si256((const __m256i *)(const void *)(d + g * 64));
                sq = dot4_256(sq, dv, _mm256_set1_epi32(x2group(a, r, g)));
            }
            _mm256_storeu_si256((__m256i *)(void *)sr, sq);
        }
    }
}

#define LK_CASE256(MR, NP)                                                                  \
    case (MR) * 8 + (NP):                                                                   \
        tile256(a, u, s, MR, NP);                                                           \
        return;

LK_T256 void lk_tile_avx2(const lk_tile_args *a, int np, int mr, float *u, int32_t *s) {
    switch (mr * 8 + np) {
        LK_CASE256(1, 1) LK_CASE256(1, 2) LK_CASE256(2, 1)
    default:
        break;
    }
    /* Other shapes: one panel and at most 2 rows at a time (same bits). */
    for (int p = 0; p < np; p++) {
        for (int r = 0; r < mr; r += LK_AVX2_MR) {
            lk_tile_args b = *a;
            b.w = a->w + p * a->pstride;
            if (a->d != NULL) b.d = a->d + p * a->dstride;
            b.xn = a->xn + r * a->xs;
            b.x2 = a->x2 + r * a->x2s;
            const int m = mr - r < LK_AVX2_MR ? mr - r : LK_AVX2_MR;
            lk_tile_avx2(&b, 1, m, u + r * LK_TILE_LD + p * LK_PANEL,
                         s + r * LK_TILE_LD + p * LK_PANEL);
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
LK_T256 int lk_epi_avx2(const lk_epi *e, const float *u, const int32_t *s, const float *vs,
                        const float *z, float sx, float *y, int n) {
    float out[LK_PANEL];
    int hits = 0;
    const unsigned valid = (1u << n) - 1u;
    for (int h = 0; h < 2; h++) {
        const __m256 uv = _mm256_loadu_ps(u + 8 * h);
        __m256 v = uv;
        if (e->noise) {
            const __m256 vphi = _mm256_mul_ps(
                _mm256_loadu_ps(vs + 8 * h),
                _mm256_cvtepi32_ps(_mm256_loadu_si256((const __m256i *)(const void *)(s + 8 * h))));
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
        if (e->codes) {
            _mm256_storeu_si256((__m256i *)(void *)(out + 8 * h), _mm256_cvtps_epi32(code));
        } else {
            const __m256 yv = _mm256_mul_ps(
                _mm256_mul_ps(_mm256_mul_ps(code, _mm256_set1_ps(e->from_code)),
                              _mm256_set1_ps(sx)),
                _mm256_set1_ps(e->out_scale));
            _mm256_storeu_ps(out + 8 * h, yv);
        }
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

/* ------------------------------------------------------------------------------------ */
/* Per-call normals (docs/physics.md section 4): the operations of lk_normals_scalar on      */
/* 16 (AVX-512) or 8 (AVX2) lanes. 64-bit words are 8 or 4 splitmix64 outputs, read as 16 or  */
/* 8 32-bit lanes: lane 2t is the low half of word t, i.e. output order.                      */
/* ------------------------------------------------------------------------------------ */

#define LK_SM_M1 UINT64_C(0xBF58476D1CE4E5B9)
#define LK_SM_M2 UINT64_C(0x94D049BB133111EB)

/* z * c mod 2^64 per 64-bit lane (vpmullq: one instruction instead of three 32 x 32 -> 64
 * products and four shifts and adds; the same integers). */
static LK_T512 LK_ALWAYS_INLINE __m512i mul64_512(__m512i z, uint64_t c) {
    return _mm512_mullo_epi64(z, _mm512_set1_epi64((long long)c));
}

/* splitmix64's mixing (after its += golden) on 8 lanes. */
static LK_T512 LK_ALWAYS_INLINE __m512i mix_512(__m512i z) {
    z = mul64_512(_mm512_xor_si512(z, _mm512_srli_epi64(z, 30)), LK_SM_M1);
    z = mul64_512(_mm512_xor_si512(z, _mm512_srli_epi64(z, 27)), LK_SM_M2);
    return _mm512_xor_si512(z, _mm512_srli_epi64(z, 31));
}

/* Horner steps p = fma(p, a2, c) over the listed coefficients. */
#define LK_SIN_POLY(FMA, SET, p, a2)                                                         \
    do {                                                                                     \
        p = SET(LK_SIN11);                                                                   \
        p = FMA(p, a2, SET(LK_SIN9));                                                        \
        p = FMA(p, a2, SET(LK_SIN7));                                                        \
        p = FMA(p, a2, SET(LK_SIN5));                                                        \
        p = FMA(p, a2, SET(LK_SIN3));                                                        \
    } while (0)
#define LK_COS_POLY(FMA, SET, p, a2)                                                         \
    do {                                                                                     \
        p = SET(LK_COS12);                                                                   \
        p = FMA(p, a2, SET(LK_COS10));                                                       \
        p = FMA(p, a2, SET(LK_COS8));                                                        \
        p = FMA(p, a2, SET(LK_COS6));                                                        \
        p = FMA(p, a2, SET(LK_COS4));                                                        \
        p = FMA(p, a2, SET(LK_COS2));                                                        \
    } while (0)
#define LK_LN_POLY(FMA, SET, p, y)                                                           \
    do {                                                                                     \
        p = SET(LK_LN_P0);                                                                   \
        p = FMA(p, y, SET(LK_LN_P1));                                                        \
        p = FMA(p, y, SET(LK_LN_P2));                                                        \
        p = FMA(p, y, SET(LK_LN_P3));                                                        \
        p = FMA(p, y, SET(LK_LN_P4));                                                        \
        p = FMA(p, y, SET(LK_LN_P5));                                                        \
        p = FMA(p, y, SET(LK_LN_P6));                                                        \
        p = FMA(p, y, SET(LK_LN_P7));                                                        \
        p = FMA(p, y, SET(LK_LN_P8));                                                        \
    } while (0)

/* spec_lnf (lk_rng.c) on 16 lanes. */
static LK_T512 LK_ALWAYS_INLINE __m512 lnf_512(__m512 t) {
    const __m512i bits = _mm512_castps_si512(t);
    __m512i e = _mm512_sub_epi32(_mm512_srli_epi32(bits, 23), _mm512_set1_epi32(127));
    __m512 f = _mm512_castsi512_ps(_mm512_or_si512(
        _mm512_and_si512(bits, _mm512_set1_epi32(0x007FFFFF)), _mm512_set1_epi32(0x3F800000)));
    const __mmask16 big = _mm512_cmp_ps_mask(f, _mm512_set1_ps(LK_SQRT2F), _CMP_GT_OQ);
    f = _mm512_mask_mul_ps(f, big, f, _mm512_set1_ps(0.5f));
    e = _mm512_mask_add_epi32(e, big, e, _mm512_set1_epi32(1));
    const __m512 y = _mm512_sub_ps(f, _mm512_set1_ps(1.0f));
    const __m512 y2 = _mm512_mul_ps(y, y);
    __m512 p;
    LK_LN_POLY(_mm512_fmadd_ps, _mm512_set1_ps, p, y);
    __m512 r = _mm512_mul_ps(_mm512_mul_ps(y, y2), p);
    const __m512 ef = _mm512_cvtepi32_ps(e);
    r = _mm512_fmadd_ps(ef, _mm512_set1_ps(LK_LN_Q1), r);
    r = _mm512_fmadd_ps(y2, _mm512_set1_ps(-0.5f), r);
    r = _mm512_add_ps(y, r);
    return _mm512_fmadd_ps(ef, _mm512_set1_ps(LK_LN_Q2), r);
}

/* spec_pair (lk_rng.c) on 16 words given as their low and high halves: *zc the even
 * outputs, *zs the odd ones. */
static LK_T512 LK_ALWAYS_INLINE void pair_512(__m512i lo, __m512i hi, __m512 *zc, __m512 *zs) {
    const __m512 q = _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_srli_epi32(lo, 1)),
                                     _mm512_set1_ps(0x1p-31f), _mm512_set1_ps(0x1p-32f));
    const __m512 rho = _mm512_sqrt_ps(_mm512_mul_ps(lnf_512(q), _mm512_set1_ps(-2.0f)));
    const __m512 a = _mm512_mul_ps(
        _mm512_cvtepi32_ps(_mm512_and_si512(hi, _mm512_set1_epi32(0x3FFFFFFF))),
        _mm512_set1_ps(LK_ANGLE));
    const __m512 a2 = _mm512_mul_ps(a, a), a3 = _mm512_mul_ps(a, a2);
    __m512 p;
    LK_SIN_POLY(_mm512_fmadd_ps, _mm512_set1_ps, p, a2);
    const __m512 sine = _mm512_fmadd_ps(a3, p, a);
    LK_COS_POLY(_mm512_fmadd_ps, _mm512_set1_ps, p, a2);
    const __m512 cosine = _mm512_fmadd_ps(a2, p, _mm512_set1_ps(1.0f));
    const __mmask16 swap = _mm512_test_epi32_mask(hi, _mm512_set1_epi32(0x40000000));
    const __m512 c = _mm512_mask_mov_ps(cosine, swap, sine);
    const __m512 s = _mm512_mask_mov_ps(sine, swap, cosine);
    const __m512i top = _mm512_set1_epi32((int)0x80000000u);
    const __m512i csign = _mm512_and_si512(_mm512_xor_si512(hi, _mm512_slli_epi32(hi, 1)), top);
    const __m512i ssign = _mm512_and_si512(hi, top);
    *zc = _mm512_mul_ps(rho, _mm512_castsi512_ps(_mm512_xor_si512(_mm512_castps_si512(c), csign)));
    *zs = _mm512_mul_ps(rho, _mm512_castsi512_ps(_mm512_xor_si512(_mm512_castps_si512(s), ssign)));
}

/* The normals of outputs i0 .. i0 + 31 (i0 even): words t = i0/2 .. i0/2 + 15,
 * sm(key + t G) = mix(key + (t + 1) G); *out0 holds outputs i0 .. i0 + 15, *out1 the rest. */
static LK_T512 LK_ALWAYS_INLINE void normals32_512(uint64_t key, int64_t i0, __m512 *out0,
                                                   __m512 *out1) {
    const __m512i lanes = _mm512_set_epi64(
        (long long)(7 * LK_GOLDEN_RATIO64), (long long)(6 * LK_GOLDEN_RATIO64),
        (long long)(5 * LK_GOLDEN_RATIO64), (long long)(4 * LK_GOLDEN_RATIO64),
        (long long)(3 * LK_GOLDEN_RATIO64), (long long)(2 * LK_GOLDEN_RATIO64),
        (long long)LK_GOLDEN_RATIO64, 0);
    const __m512i eight = _mm512_set1_epi64((long long)(8 * LK_GOLDEN_RATIO64));
    const __m512i even =
        _mm512_set_epi32(30, 28, 26, 24, 22, 20, 18, 16, 14, 12, 10, 8, 6, 4, 2, 0);
    const __m512i odd = _mm512_set_epi32(31, 29, 27, 25, 23, 21, 19, 17, 15, 13, 11, 9, 7, 5, 3, 1);
    const __m512i inter0 = _mm512_set_epi32(23, 7, 22, 6, 21, 5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0);
    const __m512i inter1 =
        _mm512_set_epi32(31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24, 8);
    const uint64_t base = key + ((uint64_t)i0 / 2 + 1) * LK_GOLDEN_RATIO64;
    const __m512i w0 = _mm512_add_epi64(_mm512_set1_epi64((long long)base), lanes);
    const __m512i h0 = mix_512(w0), h1 = mix_512(_mm512_add_epi64(w0, eight));
    __m512 zc, zs;
    pair_512(_mm512_permutex2var_epi32(h0, even, h1), _mm512_permutex2var_epi32(h0, odd, h1), &zc,
             &zs);
    *out0 = _mm512_permutex2var_ps(zc, inter0, zs);
    *out1 = _mm512_permutex2var_ps(zc, inter1, zs);
}

LK_T512 void lk_normals_avx512(uint64_t key, int64_t i0, int64_t n, float *z) {
    if (n > 0 && (i0 & 1)) { /* odd start: one scalar draw, then whole words */
        lk_normals_scalar(key, i0, 1, z);
        i0++, z++, n--;
    }
    for (; n > 0; i0 += 32, z += 32, n -= 32) {
        __m512 out0, out1;
        normals32_512(key, i0, &out0, &out1);
        if (n >= 32) {
            _mm512_storeu_ps(z, out0);
            _mm512_storeu_ps(z + 16, out1);
        } else {
            const int n0 = n < 16 ? (int)n : 16, n1 = (int)n - n0;
            _mm512_mask_storeu_ps(z, (__mmask16)((1u << n0) - 1u), out0);
            _mm512_mask_storeu_ps(z + 16, (__mmask16)((1u << n1) - 1u), out1);
        }
    }
}

/* The fused epilogue of a panel group (lk_epi_rows_fn): for each row, the normals of
 * 32 outputs at a time (normals32_512) go straight from registers into epi16_512; no
 * per-panel call, no round trip of z through memory. The same operations as
 * lk_normals_avx512 + lk_epi_avx512 per panel, so the same bits. Normals of the lanes past
 * gn are computed and dropped (counter-based: that changes no other normal). */
LK_T512 int64_t lk_epi_rows_avx512(const lk_epi *e, const lk_rows_args *a) {
    const epi512 k = epi512_of(e);
    const int gn = a->gn, npan = (gn + LK_PANEL - 1) / LK_PANEL;
    __mmask16 valid[LK_NP_MAX];
    __m512 vsv[LK_NP_MAX];
    for (int p = 0; p < LK_NP_MAX; p++) {
        const int left = gn - p * LK_PANEL;
        valid[p] = left >= LK_PANEL ? (__mmask16)0xFFFF
                   : left > 0       ? (__mmask16)((1u << left) - 1u)
                                    : (__mmask16)0;
        vsv[p] = e->noise ? _mm512_maskz_loadu_ps(valid[p], a->vs + p * LK_PANEL)
                          : _mm512_setzero_ps();
    }
    const __m512 zero = _mm512_setzero_ps();
    int64_t hits = 0;
    for (int64_t r = 0; r < a->nb;) {
        const float sx = a->sx[r];
        float *y = a->y + r * a->ys;
        if (sx == 0.0f) { /* zero vector: y = 0 (code 0), no draws */
            for (int p = 0; p < npan; p++) _mm512_mask_storeu_ps(y + p * LK_PANEL, valid[p], zero);
            r++;
            continue;
        }
        /* two rows at a time when the next one is not zero: two independent dependency
         * chains of normals and epilogue for the out-of-order core to overlap */
        const int two = r + 1 < a->nb && a->sx[r + 1] != 0.0f;
        const __m512 sxv = _mm512_set1_ps(sx);
        const __m512 sxw = _mm512_set1_ps(two ? a->sx[r + 1] : sx);
        float *y2 = y + a->ys;
        const float *u = a->u + r * a->ld, *u2 = u + a->ld;
        const int32_t *s = a->s + r * a->ld, *s2 = s + a->ld;
        for (int p = 0; p < npan; p += 2) {
            const int64_t i0 = a->gi0 + p * LK_PANEL;
            __m512 z0 = zero, z1 = zero, z2 = zero, z3 = zero;
            if (e->noise) {
                normals32_512(a->key[r], i0, &z0, &z1);
                if (two) normals32_512(a->key[r + 1], i0, &z2, &z3);
            }
            hits += epi16_512(e, &k, _mm512_loadu_ps(u + p * LK_PANEL), s + p * LK_PANEL,
                              vsv[p], z0, sxv, valid[p], y + p * LK_PANEL);
            if (two) {
                hits += epi16_512(e, &k, _mm512_loadu_ps(u2 + p * LK_PANEL), s2 + p * LK_PANEL,
                                  vsv[p], z2, sxw, valid[p], y2 + p * LK_PANEL);
            }
            if (p + 1 < npan) {
                const int q = p + 1;
                hits += epi16_512(e, &k, _mm512_loadu_ps(u + q * LK_PANEL), s + q * LK_PANEL,
                                  vsv[q], z1, sxv, valid[q], y + q * LK_PANEL);
                if (two) {
                    hits += epi16_512(e, &k, _mm512_loadu_ps(u2 + q * LK_PANEL),
                                      s2 + q * LK_PANEL, vsv[q], z3, sxw, valid[q],
                                      y2 + q * LK_PANEL);
                }
            }
        }
        r += two ? 2 : 1;
    }
    return hits;
}

/* AVX2 versions: 8 words (two groups of 4), 8 lanes. */
static LK_T256 LK_ALWAYS_INLINE __m256i mul64_256(__m256i z, uint64_t c) {
    const __m256i lo = _mm256_set1_epi64x((long long)(c & 0xFFFFFFFFu));
    const __m256i hi = _mm256_set1_epi64x((long long)(c >> 32));
    const __m256i cross = _mm256_add_epi64(_mm256_mul_epu32(_mm256_srli_epi64(z, 32), lo),
                                           _mm256_mul_epu32(z, hi));
    return _mm256_add_epi64(_mm256_mul_epu32(z, lo), _mm256_slli_epi64(cross, 32));
}

static LK_T256 LK_ALWAYS_INLINE __m256i mix_256(__m256i z) {
    z = mul64_256(_mm256_xor_si256(z, _mm256_srli_epi64(z, 30)), LK_SM_M1);
    z = mul64_256(_mm256_xor_si256(z, _mm256_srli_epi64(z, 27)), LK_SM_M2);
    return _mm256_xor_si256(z, _mm256_srli_epi64(z, 31));
}

static LK_T256 LK_ALWAYS_INLINE __m256 lnf_256(__m256 t) {
    const __m256i bits = _mm256_castps_si256(t);
    __m256i e = _mm256_sub_epi32(_mm256_srli_epi32(bits, 23), _mm256_set1_epi32(127));
    __m256 f = _mm256_castsi256_ps(_mm256_or_si256(
        _mm256_and_si256(bits, _mm256_set1_epi32(0x007FFFFF)), _mm256_set1_epi32(0x3F800000)));
    const __m256 big = _mm256_cmp_ps(f, _mm256_set1_ps(LK_SQRT2F), _CMP_GT_OQ);
    f = _mm256_blendv_ps(f, _mm256_mul_ps(f, _mm256_set1_ps(0.5f)), big);
    e = _mm256_sub_epi32(e, _mm256_castps_si256(big)); /* true lanes are -1 */
    const __m256 y = _mm256_sub_ps(f, _mm256_set1_ps(1.0f));
    const __m256 y2 = _mm256_mul_ps(y, y);
    __m256 p;
    LK_LN_POLY(_mm256_fmadd_ps, _mm256_set1_ps, p, y);
    __m256 r = _mm256_mul_ps(_mm256_mul_ps(y, y2), p);
    const __m256 ef = _mm256_cvtepi32_ps(e);
    r = _mm256_fmadd_ps(ef, _mm256_set1_ps(LK_LN_Q1), r);
    r = _mm256_fmadd_ps(y2, _mm256_set1_ps(-0.5f), r);
    r = _mm256_add_ps(y, r);
    return _mm256_fmadd_ps(ef, _mm256_set1_ps(LK_LN_Q2), r);
}

static LK_T256 LK_ALWAYS_INLINE void pair_256(__m256i lo, __m256i hi, __m256 *zc, __m256 *zs) {
    const __m256 q = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_srli_epi32(lo, 1)),
                                     _mm256_set1_ps(0x1p-31f), _mm256_set1_ps(0x1p-32f));
    const __m256 rho = _mm256_sqrt_ps(_mm256_mul_ps(lnf_256(q), _mm256_set1_ps(-2.0f)));
    const __m256 a = _mm256_mul_ps(
        _mm256_cvtepi32_ps(_mm256_and_si256(hi, _mm256_set1_epi32(0x3FFFFFFF))),
        _mm256_set1_ps(LK_ANGLE));
    const __m256 a2 = _mm256_mul_ps(a, a), a3 = _mm256_mul_ps(a, a2);
    __m256 p;
    LK_SIN_POLY(_mm256_fmadd_ps, _mm256_set1_ps, p, a2);
    const __m256 sine = _mm256_fmadd_ps(a3, p, a);
    LK_COS_POLY(_mm256_fmadd_ps, _mm256_set1_ps, p, a2);
    const __m256 cosine = _mm256_fmadd_ps(a2, p, _mm256_set1_ps(1.0f));
    const __m256 swap = _mm256_castsi256_ps(_mm256_slli_epi32(hi, 1)); /* bit 30 as sign */
    const __m256 c = _mm256_blendv_ps(cosine, sine, swap);
    const __m256 s = _mm256_blendv_ps(sine, cosine, swap);
    const __m256i top = _mm256_set1_epi32((int)0x80000000u);
    const __m256 csign = _mm256_castsi256_ps(
        _mm256_and_si256(_mm256_xor_si256(hi, _mm256_slli_epi32(hi, 1)), top));
    const __m256 ssign = _mm256_castsi256_ps(_mm256_and_si256(hi, top));
    *zc = _mm256_mul_ps(rho, _mm256_xor_ps(c, csign));
    *zs = _mm256_mul_ps(rho, _mm256_xor_ps(s, ssign));
}

LK_T256 void lk_normals_avx2(uint64_t key, int64_t i0, int64_t n, float *z) {
    if (n > 0 && (i0 & 1)) {
        lk_normals_scalar(key, i0, 1, z);
        i0++, z++, n--;
    }
    const __m256i lanes = _mm256_set_epi64x((long long)(3 * LK_GOLDEN_RATIO64),
                                            (long long)(2 * LK_GOLDEN_RATIO64),
                                            (long long)LK_GOLDEN_RATIO64, 0);
    const __m256i four = _mm256_set1_epi64x((long long)(4 * LK_GOLDEN_RATIO64));
    const __m256i pick = _mm256_set_epi32(7, 5, 3, 1, 6, 4, 2, 0); /* lo halves, hi halves */
    for (; n > 0; i0 += 16, z += 16, n -= 16) {
        const uint64_t base = key + ((uint64_t)i0 / 2 + 1) * LK_GOLDEN_RATIO64;
        const __m256i w0 = _mm256_add_epi64(_mm256_set1_epi64x((long long)base), lanes);
        /* words 0-3 and 4-7, each as [lo0 lo1 lo2 lo3 | hi0 hi1 hi2 hi3] */
        const __m256i g0 = _mm256_permutevar8x32_epi32(mix_256(w0), pick);
        const __m256i g1 = _mm256_permutevar8x32_epi32(mix_256(_mm256_add_epi64(w0, four)), pick);
        const __m256i lo = _mm256_permute2x128_si256(g0, g1, 0x20);
        const __m256i hi = _mm256_permute2x128_si256(g0, g1, 0x31);
        __m256 zc, zs;
        pair_256(lo, hi, &zc, &zs);
        /* interleave back: zc[j], zs[j] -> outputs 2j, 2j + 1 */
        const __m256 l = _mm256_unpacklo_ps(zc, zs), h = _mm256_unpackhi_ps(zc, zs);
        _Alignas(32) float tmp[16];
        _mm256_store_ps(tmp, _mm256_permute2f128_ps(l, h, 0x20));
        _mm256_store_ps(tmp + 8, _mm256_permute2f128_ps(l, h, 0x31));
        memcpy(z, tmp, (size_t)(n < 16 ? n : 16) * sizeof(float));
    }
}

#endif
