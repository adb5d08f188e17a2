/* Lumina HAL twin kernel: the fused forward pass (docs/physics.md section 3, "Per call").
 *
 * This file holds the API entry points, argument validation, ISA dispatch, the work split
 * over threads and the driver of the per-panel epilogue. The per-ISA code (tiles,
 * epilogues, converters) lives in lk_scalar.c and lk_x86.c, the random numbers in
 * lk_rng.c, the helper threads in lk_pool.c; docs/kernel.md describes the design.
 */
#define _POSIX_C_SOURCE 200809L

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lk_internal.h"
#include "lumina_kernel.h"

#define LK_VERSION 5 /* 3: per-cell draws from one hash (lk_program.c); 4: + 8-bit variance
                       * codes; 5: counter-based per-call normals (inverse erf, SIMD) */

/* Rows of x per batch block (the unit of input quantization and of per-thread scratch):
 * 48, or fewer (down to 12) for very wide inputs so that a block's (x_n, x_n^2) pairs stay
 * within LK_BLOCK_FLOATS. Multiples of every ISA's tile height (6, 4 and 2). */
#define LK_BLOCK_ROWS 48
#define LK_BLOCK_ROWS_MIN 12
#define LK_BLOCK_FLOATS (INT64_C(1) << 20)
/* Panels per work unit are a multiple of this, so panel groups of 1, 2 or 4 align. */
#define LK_CHUNK_ALIGN 4
/* Threading gate: each thread must get at least this many multiply-accumulates (2^18 MACs
 * are ~5 us of single-thread AVX-512 work). Below 2^19 MACs a call runs on the calling
 * thread alone and never touches the pool. */
#define LK_MACS_PER_THREAD (INT64_C(1) << 18)
#define LK_MAX_THREADS 64
/* Scratch (in floats) that a single-threaded call keeps on the stack instead of malloc. */
#define LK_STACK_SCRATCH 4096
/* Columns per k-block: a panel group's weights for one k-block (2 panels x 128 x 64 bytes)
 * stay in L1 while every tile of the batch block goes over them. */
#define LK_KC 128
/* Narrow blocks of a matrix with more packed bytes than this compute the variance codes on
 * the fly (memory-bound GEMV: the codes would be 25 % more traffic). */
#define LK_FLY_BYTES (INT64_C(8) << 20)
#define LK_MAX_COLS_NOISE 65536 /* s_i = sum dq x2q < 2^31 */
#define LK_AMX_MIN_COLS 64      /* narrower rows: variance sums in the tile (VNNI), not AMX */

/* ------------------------------------------------------------------------------------ */
/* ISA dispatch                                                                          */
/* ------------------------------------------------------------------------------------ */

typedef struct lk_isa_desc {
    lk_tile_fn tile;
    lk_tile_fn fly; /* narrow tile computing the variance codes on the fly, or NULL */
    lk_epi_fn epilogue;
    lk_adc_fn adc;
    lk_dac_fn dac;
    lk_x2_fn x2;
    lk_nonfinite_fn nonfinite;
    int mr;          /* tile height (batch rows) */
    int np;          /* panels per tile for ordinary blocks */
    int narrow_rows; /* blocks with at most this many rows use np_narrow panels per tile */
    int np_narrow;
    int amx; /* wide blocks: u by the tile, s by AMX tile products (lk_amx_block) */
    int mr_quiet, np_quiet; /* tile shape of ordinary blocks when the tile sums no variance
                               codes (noise off, or s by AMX): no sq accumulators */
    lk_normals_fn normals;
    lk_epi_rows_fn epi_rows; /* fused normals + epilogue of a panel group, or NULL */
} lk_isa_desc;

#define LK_SCALAR_DESC                                                                      \
    {lk_tile_scalar, NULL, lk_epi_scalar, lk_adc_scalar, lk_dac_scalar, lk_x2_scalar,       \
     lk_nonfinite_scalar, 4, 1, 1, 2, 0, 4, 1, lk_normals_scalar, NULL}

static const lk_isa_desc lk_isa_table[5] = {
    LK_SCALAR_DESC,
#if LK_X86
    {lk_tile_avx2, NULL, lk_epi_avx2, lk_adc_avx2, lk_dac_avx2, lk_x2_scalar, lk_nonfinite_avx2,
     2, 1, 1, 2, 0, 2, 1, lk_normals_avx2, NULL},
    {lk_tile_avx512, lk_tile_avx512_fly, lk_epi_avx512, lk_adc_avx512, lk_dac_avx512,
     lk_x2_avx512, lk_nonfinite_avx512, 6, 2, 2, 4, 0, 6, 4, lk_normals_avx512,
     lk_epi_rows_avx512},
    {lk_tile_avx512vnni, lk_tile_avx512vnni_fly, lk_epi_avx512, lk_adc_avx512, lk_dac_avx512,
     lk_x2_avx512, lk_nonfinite_avx512, 6, 2, 2, 4, 0, 6, 4, lk_normals_avx512,
     lk_epi_rows_avx512},
    {lk_tile_avx512vnni, lk_tile_avx512vnni_fly, lk_epi_avx512, lk_adc_avx512, lk_dac_avx512,
     lk_x2_avx512, lk_nonfinite_avx512, 6, 2, 2, 4, 1, 6, 4, lk_normals_avx512,
     lk_epi_rows_avx512},
#else /* never selected: lk_best_isa stays scalar */
    LK_SCALAR_DESC,
    LK_SCALAR_DESC,
    LK_SCALAR_DESC,
    LK_SCALAR_DESC,
#endif
};

static int lk_best_isa = LK_ISA_SCALAR;
static atomic_int lk_current_isa = LK_ISA_SCALAR;
static pthread_once_t lk_isa_once = PTHREAD_ONCE_INIT;

static int clamp_isa(int isa) {
    if (isa < LK_ISA_SCALAR) return LK_ISA_SCALAR;
    return isa > lk_best_isa ? lk_best_isa : isa;
}

/* Best ISA the CPU (and OS) supports. Callers lower it with lk_select_isa (the Python
 * wrapper does so for $LUMINA_SIMD); the kernel itself reads no environment. */
static void isa_init(void) {
    int best = LK_ISA_SCALAR;
#if LK_X86
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) best = LK_ISA_AVX2;
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512dq")) {
        best = LK_ISA_AVX512;
        if (__builtin_cpu_supports("avx512vnni")) {
            best = LK_ISA_AVX512VNNI;
            if (lk_amx_available()) best = LK_ISA_AMX;
        }
    }
#endif
    lk_best_isa = best;
    atomic_store(&lk_current_isa, best);
}

int lk_isa(void) {
    pthread_once(&lk_isa_once, isa_init);
    return atomic_load(&lk_current_isa);
}

int lk_select_isa(int isa) {
    pthread_once(&lk_isa_once, isa_init);
    const int chosen = clamp_isa(isa);
    atomic_store(&lk_current_isa, chosen);
    return chosen;
}

int lk_version(void) { return LK_VERSION; }

/* ------------------------------------------------------------------------------------ */
/* Validation helpers                                                                    */
/* ------------------------------------------------------------------------------------ */

/* 1 if all n floats are finite and >= 0. */
static int all_finite_nonneg(const float *a, int64_t n) {
    for (int64_t i = 0; i < n; i++) {
        if (!(a[i] >= 0.0f) || isinf(a[i])) return 0;
    }
    return 1;
}

static int finite_positive(float v) { return v > 0.0f && !isinf(v); }

static int finite_nonneg(float v) { return v >= 0.0f && !isinf(v); }

/* ADC constants L / FS and FS / L, both rounded once to float; 0 if a scale is unusable
 * (FS so small or so large that either ratio leaves the float range). */
static int adc_constants(int32_t bits, float full_scale, float *to_code, float *from_code) {
    if (!lk_valid_bits(bits) || !finite_positive(full_scale)) return 0;
    const float levels = lk_levels(bits);
    *to_code = levels / full_scale;
    *from_code = full_scale / levels;
    return !isinf(*to_code) && *to_code > 0.0f && *from_code > 0.0f && !isinf(*from_code);
}

/* ------------------------------------------------------------------------------------ */
/* Forward pass                                                                          */
/* ------------------------------------------------------------------------------------ */

typedef struct fwd_ctx {
    const float *x;    /* float inputs, or NULL when xc is set */
    const int32_t *xc; /* integer input codes (lk_forward_codes), or NULL */
    float *y;          /* outputs (int32 codes stored in their place when epi.codes) */
    const float *weights;
    const uint8_t *dcodes;
    const float *r2, *c2, *vinv, *vscale;
    int64_t batch, rows, cols, c4, npanels, pstride, dstride;
    uint64_t seed, call_index, first_vector;
    float in_levels;
    int fly; /* narrow blocks compute the variance codes on the fly */
    lk_epi epi;
    const lk_isa_desc *isa;
    int64_t block_rows, nblocks, chunk_panels, nchunks, nunits;
    atomic_llong next_unit;
} fwd_ctx;

typedef struct worker {
    _Alignas(64) fwd_ctx *c; /* a cache line per worker at least: no false sharing */
    float *xn;               /* block_rows * cols: quantized inputs x_n, row by row */
    uint8_t *x2;             /* block_rows * c4 bytes: variance input codes, zero padded */
    float *sx;               /* block_rows: s_x per vector of the block */
    uint64_t *key;           /* block_rows: RNG vector keys (noise only, else 0) */
    int64_t block;           /* block currently prepared, -1 if none */
    int64_t clipped;         /* outputs at full scale so far */
} worker;

/* Floats of scratch one worker needs. */
static int64_t worker_floats(int64_t block_rows, int64_t cols, int64_t c4) {
    const int64_t n = block_rows * cols + block_rows * c4 / 4 + block_rows + 2 * block_rows + 2;
    return (n + 15) & ~(int64_t)15; /* keep each worker's slice 64-byte aligned */
}

static void worker_bind(worker *w, fwd_ctx *c, float *scratch) {
    w->c = c;
    w->xn = scratch;
    w->x2 = (uint8_t *)(void *)(scratch + c->block_rows * c->cols);
    w->sx = scratch + c->block_rows * c->cols + c->block_rows * c->c4 / 4;
    float *after = w->sx + c->block_rows;
    after += (after - scratch) & 1; /* 8-byte alignment for the keys */
    w->key = (uint64_t *)(void *)after;
    w->block = -1;
    w->clipped = 0;
}

/* Integer input codes of one vector to x_n = code / L_x; returns s_x (1, or 0 if all zero). */
static float codes_to_xn(const int32_t *codes, int64_t cols, float levels, float *xn) {
    int any = 0;
    for (int64_t j = 0; j < cols; j++) {
        any |= codes[j] != 0;
        xn[j] = (float)codes[j] / levels;
    }
    return any ? 1.0f : 0.0f;
}

/* Quantize the vectors of batch block k: x_n row by row, s_x, and with noise the
 * variance input codes and the RNG vector key. */
static void prepare_block(worker *w, int64_t k) {
    const fwd_ctx *c = w->c;
    const int64_t cols = c->cols;
    const int64_t b0 = k * c->block_rows;
    const int64_t nb = c->batch - b0 < c->block_rows ? c->batch - b0 : c->block_rows;
    for (int64_t r = 0; r < nb; r++) {
        float *xn = w->xn + r * cols;
        w->sx[r] = c->xc != NULL ? codes_to_xn(c->xc + (b0 + r) * cols, cols, c->in_levels, xn)
                                 : c->isa->dac(c->x + (b0 + r) * cols, cols, c->in_levels, xn);
        w->key[r] = 0;
        if (c->epi.noise) {
            uint8_t *x2 = w->x2 + r * c->c4;
            c->isa->x2(xn, cols, x2);
            for (int64_t j = cols; j < c->c4; j++) x2[j] = 0;
            w->key[r] = lk_rng_vector_key(c->seed, c->call_index,
                                          c->first_vector + (uint64_t)(b0 + r));
        }
    }
    w->block = k;
}

/* Epilogue of one (vector b, panel p) with its normals z (noise on; outputs 16 p ..
 * 16 p + n - 1 of the vector's counter-based stream, drawn by the caller for the whole
 * panel group): runs the ISA's epilogue (lk_epi_fn) into y. Returns the number of outputs
 * at full scale. */
static int epilogue(const fwd_ctx *c, int64_t b, int64_t p, const float *u, const int32_t *s,
                    float sx, const float *z) {
    const int64_t i0 = p * LK_PANEL;
    const int n = c->rows - i0 < LK_PANEL ? (int)(c->rows - i0) : LK_PANEL;
    float *y = c->y + b * c->rows + i0;
    if (sx == 0.0f) { /* zero vector: y = 0 (code 0), no draws */
        for (int l = 0; l < n; l++) y[l] = 0.0f; /* +0.0f and int32 0 share their bits */
        return 0;
    }
    _Alignas(64) float vspad[LK_PANEL] = {0};
    const float *vs = vspad;
    if (c->epi.noise) {
        if (n == LK_PANEL) {
            vs = c->vscale + i0;
        } else {
            memcpy(vspad, c->vscale + i0, (size_t)n * sizeof(float));
        }
    }
    return c->isa->epilogue(&c->epi, u, s, vs, z, sx, y, n);
}

/* Work unit: batch block k x panel chunk ch. For each panel group the tiles of the block
 * go over the columns in k-blocks of LK_KC (the group's weights stay in L1), continuing
 * their accumulator chains in ub / sb; then the epilogues run. */
static void process_unit(worker *w, int64_t unit) {
    const fwd_ctx *c = w->c;
    const int64_t k = unit / c->nchunks, ch = unit % c->nchunks;
    if (w->block != k) prepare_block(w, k);
    const int64_t b0 = k * c->block_rows;
    const int64_t nb = c->batch - b0 < c->block_rows ? c->batch - b0 : c->block_rows;
    const int64_t p0 = ch * c->chunk_panels;
    const int64_t p1 = p0 + c->chunk_panels < c->npanels ? p0 + c->chunk_panels : c->npanels;
    const int narrow = nb <= c->isa->narrow_rows;
    const lk_tile_fn tile = narrow && c->fly ? c->isa->fly : c->isa->tile;
    /* s by AMX tile products for ordinary blocks: the tile then sums no codes and takes the
     * wider quiet shape (6 x 4), which pays for AMX's set-up and second pass over the codes
     * from 64 columns on (with the 6 x 2 shape AMX lost below 512 columns) */
    const int amx = c->isa->amx && c->epi.noise && !narrow && c->cols >= LK_AMX_MIN_COLS;
    const int quiet = !narrow && (!c->epi.noise || amx); /* no variance codes in the tile */
    const int mr = quiet ? c->isa->mr_quiet : c->isa->mr;
    const int npg = narrow ? c->isa->np_narrow : quiet ? c->isa->np_quiet : c->isa->np;
    const int64_t kc = narrow && c->fly ? c->cols : LK_KC;
    _Alignas(64) float ub[LK_BLOCK_ROWS * LK_TILE_LD];
    _Alignas(64) int32_t sb[LK_BLOCK_ROWS * LK_TILE_LD];
    _Alignas(64) float r2pad[LK_NP_MAX * LK_PANEL];
    _Alignas(64) float vipad[LK_NP_MAX * LK_PANEL];
    _Alignas(64) float zb[LK_NP_MAX * LK_PANEL] = {0}; /* normals of one row's panel group */
    for (int64_t pg = p0; pg < p1; pg += npg) {
        const int np = p1 - pg < npg ? (int)(p1 - pg) : npg;
        lk_tile_args a;
        a.w = c->weights + pg * c->pstride;
        a.pstride = c->pstride;
        a.d = c->epi.noise && !amx ? c->dcodes + pg * c->dstride : NULL;
        a.dstride = c->dstride;
        a.xs = c->cols;
        a.x2s = c->c4;
        a.cols = c->cols;
        a.c2 = c->c2;
        a.r2 = c->r2 + pg * LK_PANEL;
        a.dinv = c->vinv + pg * LK_PANEL;
        if (tile == c->isa->fly && (pg + np) * LK_PANEL > c->rows) { /* pad the last panel */
            const int64_t n = c->rows - pg * LK_PANEL;
            memset(r2pad, 0, sizeof r2pad);
            memset(vipad, 0, sizeof vipad);
            memcpy(r2pad, a.r2, (size_t)n * sizeof(float));
            memcpy(vipad, a.dinv, (size_t)n * sizeof(float));
            a.r2 = r2pad;
            a.dinv = vipad;
        }
        for (int64_t j0 = 0; j0 < c->cols; j0 += kc) {
            a.j0 = j0;
            a.j1 = j0 + kc < c->cols ? j0 + kc : c->cols;
            a.init = j0 == 0;
            for (int64_t r0 = 0; r0 < nb; r0 += mr) {
                const int mt = nb - r0 < mr ? (int)(nb - r0) : mr;
                a.xn = w->xn + r0 * c->cols;
                a.x2 = w->x2 + r0 * c->c4;
                tile(&a, np, mt, ub + r0 * LK_TILE_LD, sb + r0 * LK_TILE_LD);
            }
        }
#if LK_X86
        if (amx) {
            lk_amx_block(w->x2, c->c4, nb, c->dcodes + pg * c->dstride, c->dstride, np, c->c4,
                         sb);
        }
#endif
        const int64_t gi0 = pg * LK_PANEL; /* the group's first output */
        const int64_t gn = c->rows - gi0 < np * LK_PANEL ? c->rows - gi0 : np * LK_PANEL;
        if (c->isa->epi_rows != NULL) {
            lk_rows_args ra;
            ra.u = ub;
            ra.s = sb;
            ra.ld = LK_TILE_LD;
            ra.vs = c->epi.noise ? c->vscale + gi0 : NULL;
            ra.key = w->key;
            ra.sx = w->sx;
            ra.nb = nb;
            ra.gi0 = gi0;
            ra.gn = (int)gn;
            ra.y = c->y + b0 * c->rows + gi0;
            ra.ys = c->rows;
            w->clipped += c->isa->epi_rows(&c->epi, &ra);
            continue;
        }
        for (int64_t r = 0; r < nb; r++) {
            if (c->epi.noise && w->sx[r] != 0.0f) c->isa->normals(w->key[r], gi0, gn, zb);
            for (int p = 0; p < np; p++) {
                w->clipped += epilogue(c, b0 + r, pg + p, ub + r * LK_TILE_LD + p * LK_PANEL,
                                       sb + r * LK_TILE_LD + p * LK_PANEL, w->sx[r],
                                       zb + p * LK_PANEL);
            }
        }
    }
}

static void run_worker(worker *w) {
    fwd_ctx *c = w->c;
    for (;;) {
        const int64_t unit = atomic_fetch_add(&c->next_unit, 1);
        if (unit >= c->nunits) break;
        process_unit(w, unit);
    }
}

/* Pool job: worker i of the array arg. */
static void pool_job(void *arg, int i) { run_worker((worker *)arg + i); }

/* 1 if all n floats are finite and >= 0 (n may be 0). */
static int all_ok(const float *a, int64_t n) { return a != NULL && all_finite_nonneg(a, n); }

/* Validate the model for a forward pass; returns LK_OK or LK_EINVAL. */
static int check_model(const lk_model *m) {
    if (m == NULL || m->weights == NULL) return LK_EINVAL;
    if (m->rows <= 0 || m->cols <= 0) return LK_EINVAL;
    if (m->rows > INT64_MAX / LK_PANEL / m->cols / 4) return LK_EINVAL; /* bytes of weights */
    if (!lk_valid_bits(m->input_bits) || !lk_valid_bits(m->output_bits)) return LK_EINVAL;
    float to_code, from_code;
    if (!adc_constants(m->output_bits, m->full_scale, &to_code, &from_code)) return LK_EINVAL;
    if (!finite_positive(m->output_scale)) return LK_EINVAL;
    if (m->noise) {
        if (m->var_codes == NULL || m->cols > LK_MAX_COLS_NOISE) return LK_EINVAL;
        if (!finite_nonneg(m->det_c0) || !finite_nonneg(m->det_c1) ||
            !finite_nonneg(m->det_c2)) {
            return LK_EINVAL;
        }
        /* The row and column arrays come from lk_pack_model, which checked them; like the
         * weights they are not rescanned per call (O(r + c) per call, the largest fixed
         * cost of a small call). */
        if (m->row_envelope_sq == NULL || m->col_envelope_sq == NULL ||
            m->row_var_inv == NULL || m->row_var_scale == NULL) {
            return LK_EINVAL;
        }
    }
    return LK_OK;
}

/* Threads worth using: at least LK_MACS_PER_THREAD multiply-accumulates each. */
static int plan_threads(int32_t threads, int64_t batch, int64_t rows, int64_t cols) {
    const double macs = (double)batch * (double)rows * (double)cols;
    double t = floor(macs / (double)LK_MACS_PER_THREAD);
    if (t > threads) t = threads;
    if (t > LK_MAX_THREADS) t = LK_MAX_THREADS;
    return t < 1 ? 1 : (int)t;
}

/* Scratch kept per calling thread and reused by its next call: a fresh allocation of more
 * than glibc's mmap threshold (128 KB: 1024 columns x 48 vectors) costs a munmap and the
 * kernel's zeroing of every page on each call (10 % of a 1024x1024 batch-256 call). Freed
 * when the thread exits. */
typedef struct scratch_cache {
    void *buf;
    size_t bytes;
} scratch_cache;

static pthread_key_t scratch_key;
static pthread_once_t scratch_once = PTHREAD_ONCE_INIT;

static void scratch_free(void *p) {
    scratch_cache *c = p;
    free(c->buf);
    free(c);
}

static void scratch_init(void) {
    if (pthread_key_create(&scratch_key, scratch_free) != 0) scratch_key = 0;
}

/* 64-byte aligned scratch of at least `bytes`, owned by the calling thread's cache (or, if
 * the cache is unavailable, freshly allocated: *owned = 1 and the caller frees it). */
static void *thread_scratch(size_t bytes, int *owned) {
    pthread_once(&scratch_once, scratch_init);
    bytes = (bytes + 63) & ~(size_t)63;
    *owned = 0;
    scratch_cache *c = pthread_getspecific(scratch_key);
    if (c == NULL) {
        c = calloc(1, sizeof *c);
        if (c == NULL || pthread_setspecific(scratch_key, c) != 0) {
            free(c);
            *owned = 1;
            return aligned_alloc(64, bytes);
        }
    }
    if (c->bytes < bytes) {
        void *fresh = aligned_alloc(64, bytes);
        if (fresh == NULL) return NULL;
        free(c->buf);
        c->buf = fresh;
        c->bytes = bytes;
    }
    return c->buf;
}

/* The forward pass behind lk_forward_from and lk_forward_codes (inputs already checked). */
static int forward(const lk_model *model, const float *x, const int32_t *xc, int64_t batch,
                   uint64_t first_vector, float *y, int codes_out, uint64_t seed,
                   uint64_t call_index, int32_t threads, int64_t *clipped) {
    const int64_t rows = model->rows, cols = model->cols;
    const lk_isa_desc *isa = &lk_isa_table[lk_isa()];
    fwd_ctx c;
    memset(&c, 0, sizeof c);
    c.x = x;
    c.xc = xc;
    c.y = y;
    c.weights = model->weights;
    c.dcodes = model->var_codes;
    c.r2 = model->row_envelope_sq;
    c.c2 = model->col_envelope_sq;
    c.vinv = model->row_var_inv;
    c.vscale = model->row_var_scale;
    c.batch = batch;
    c.rows = rows;
    c.cols = cols;
    c.c4 = (cols + LK_DPAD - 1) / LK_DPAD * LK_DPAD;
    c.npanels = (rows + LK_PANEL - 1) / LK_PANEL;
    c.pstride = cols * LK_PANEL;
    c.dstride = c.c4 * LK_PANEL;
    c.seed = seed;
    c.call_index = call_index;
    c.first_vector = first_vector;
    c.in_levels = lk_levels(model->input_bits);
    c.epi.levels = lk_levels(model->output_bits);
    adc_constants(model->output_bits, model->full_scale, &c.epi.to_code, &c.epi.from_code);
    c.epi.out_scale = model->output_scale;
    c.epi.codes = codes_out;
    c.epi.noise = model->noise != 0;
    if (c.epi.noise) {
        c.epi.c0 = model->det_c0;
        c.epi.c1 = model->det_c1;
        c.epi.c2 = model->det_c2;
    }
    c.isa = isa;
    c.fly = c.epi.noise && isa->fly != NULL && rows * cols * 4 > LK_FLY_BYTES;

    /* Work split: batch blocks x panel chunks. Any split gives the same bits. */
    int nthreads = plan_threads(threads, batch, rows, cols);
    int64_t block_rows = LK_BLOCK_FLOATS / (2 * cols) / LK_BLOCK_ROWS_MIN * LK_BLOCK_ROWS_MIN;
    if (block_rows > LK_BLOCK_ROWS) block_rows = LK_BLOCK_ROWS;
    if (block_rows < LK_BLOCK_ROWS_MIN) block_rows = LK_BLOCK_ROWS_MIN;
    c.block_rows = batch < block_rows ? batch : block_rows;
    c.nblocks = (batch + c.block_rows - 1) / c.block_rows;
    c.nchunks = 1;
    if (nthreads > 1) {
        const int64_t want = (4 * (int64_t)nthreads + c.nblocks - 1) / c.nblocks;
        const int64_t most = (c.npanels + LK_CHUNK_ALIGN - 1) / LK_CHUNK_ALIGN;
        c.nchunks = want < most ? want : most;
    }
    c.chunk_panels = (c.npanels + c.nchunks - 1) / c.nchunks;
    c.chunk_panels = (c.chunk_panels + LK_CHUNK_ALIGN - 1) / LK_CHUNK_ALIGN * LK_CHUNK_ALIGN;
    c.nchunks = (c.npanels + c.chunk_panels - 1) / c.chunk_panels;
    c.nunits = c.nblocks * c.nchunks;
    if (nthreads > c.nunits) nthreads = (int)c.nunits;
    atomic_init(&c.next_unit, 0);

    /* Scratch for every worker, allocated before anything is written. */
    const int64_t per_worker = worker_floats(c.block_rows, cols, c.c4);
    _Alignas(64) float stack_scratch[LK_STACK_SCRATCH];
    float *scratch = stack_scratch;
    int owned = 0;
    worker stack_workers[1];
    worker *workers = stack_workers;
    if (nthreads > 1 || per_worker > LK_STACK_SCRATCH) {
        scratch = thread_scratch((size_t)per_worker * (size_t)nthreads * sizeof(float), &owned);
        if (scratch == NULL) return LK_ENOMEM;
    }
    if (nthreads > 1) {
        workers = aligned_alloc(64, sizeof(worker) * (size_t)nthreads);
        if (workers == NULL) {
            if (owned) free(scratch);
            return LK_ENOMEM;
        }
    }
    for (int t = 0; t < nthreads; t++) worker_bind(&workers[t], &c, scratch + t * per_worker);

    /* Worker 0 is the calling thread, the others run on pool helpers; any of them may
     * end up with no units (the unit counter is shared), which changes no result. */
    lk_pool_run(nthreads, pool_job, workers);
    int64_t total = 0;
    for (int t = 0; t < nthreads; t++) total += workers[t].clipped;
    if (owned) free(scratch);
    if (workers != stack_workers) free(workers);
    if (clipped != NULL) *clipped = total;
    return LK_OK;
}

int lk_forward(const lk_model *model, const float *x, int64_t batch, float *y, uint64_t seed,
               uint64_t call_index, int32_t threads, int64_t *clipped) {
    return lk_forward_from(model, x, batch, 0, y, seed, call_index, threads, clipped);
}

/* Checks shared by the two forward entry points. */
static int check_call(const lk_model *model, const void *x, int64_t batch, const void *y,
                      int32_t threads) {
    if (x == NULL || y == NULL || batch <= 0 || threads < 1) return LK_EINVAL;
    const int rc = check_model(model);
    if (rc != LK_OK) return rc;
    if (batch > INT64_MAX / 4 / model->cols || batch > INT64_MAX / 4 / model->rows) {
        return LK_EINVAL;
    }
    const uintptr_t xa = (uintptr_t)x, ya = (uintptr_t)y;
    if ((xa | ya) & 3u) return LK_EALIGN;
    const uintptr_t xe = xa + (uintptr_t)(batch * model->cols * 4);
    const uintptr_t ye = ya + (uintptr_t)(batch * model->rows * 4);
    if (xa < ye && ya < xe) return LK_EOVERLAP;
    return LK_OK;
}

int lk_forward_from(const lk_model *model, const float *x, int64_t batch, uint64_t first_vector,
                    float *y, uint64_t seed, uint64_t call_index, int32_t threads,
                    int64_t *clipped) {
    const int rc = check_call(model, x, batch, y, threads);
    if (rc != LK_OK) return rc;
    if (lk_isa_table[lk_isa()].nonfinite(x, batch * model->cols)) return LK_ENONFINITE;
    return forward(model, x, NULL, batch, first_vector, y, 0, seed, call_index, threads,
                   clipped);
}

int lk_forward_codes(const lk_model *model, const int32_t *codes, int64_t batch,
                     uint64_t first_vector, int32_t *out_codes, uint64_t seed,
                     uint64_t call_index, int32_t threads, int64_t *clipped) {
    const int rc = check_call(model, codes, batch, out_codes, threads);
    if (rc != LK_OK) return rc;
    const int32_t levels = (INT32_C(1) << (model->input_bits - 1)) - 1;
    const int64_t n = batch * model->cols;
    int bad = 0;
    for (int64_t i = 0; i < n; i++) bad |= codes[i] > levels || codes[i] < -levels;
    if (bad) return LK_ERANGE;
    return forward(model, NULL, codes, batch, first_vector, (float *)(void *)out_codes, 1, seed,
                   call_index, threads, clipped);
}

/* ------------------------------------------------------------------------------------ */
/* Packing (lk_pack_model)                                                               */
/* ------------------------------------------------------------------------------------ */

int64_t lk_packed_floats(int64_t rows, int64_t cols) {
    if (rows <= 0 || cols <= 0) return -1;
    const int64_t panels = (rows + LK_PANEL - 1) / LK_PANEL;
    if (panels > INT64_MAX / LK_PANEL / 4 / cols) return -1;
    return panels * LK_PANEL * cols;
}

int64_t lk_var_code_bytes(int64_t rows, int64_t cols) {
    if (rows <= 0 || cols <= 0) return -1;
    const int64_t c4 = (cols + LK_DPAD - 1) / LK_DPAD * LK_DPAD;
    return lk_packed_floats(rows, c4);
}

/* Below this largest D of a row, the row's phase variance is taken as 0 (255 / dmax would
 * leave the float range; 1e-30 is far below one code step of any real row). */
#define LK_DMAX_MIN 1e-30f

int lk_pack_model(const float *w, int64_t rows, int64_t cols, const float *row_envelope_sq,
                  const float *col_envelope_sq, float phase_var, float *weights,
                  uint8_t *var_codes, float *row_var_inv, float *row_var_scale) {
    if (w == NULL || weights == NULL || lk_packed_floats(rows, cols) < 0) return LK_EINVAL;
    const int with_codes = var_codes != NULL;
    if (with_codes) {
        if (row_var_inv == NULL || row_var_scale == NULL || cols > LK_MAX_COLS_NOISE) {
            return LK_EINVAL;
        }
        if (!all_ok(row_envelope_sq, rows) || !all_ok(col_envelope_sq, cols) ||
            !finite_nonneg(phase_var)) {
            return LK_EINVAL;
        }
    }
    if (lk_isa_table[lk_isa()].nonfinite(w, rows * cols)) return LK_ENONFINITE;
    const int64_t npanels = (rows + LK_PANEL - 1) / LK_PANEL;
    const int64_t pad_rows = npanels * LK_PANEL - rows;
    for (int64_t i = 0; i < rows; i++) {
        float *dst = weights + (i / LK_PANEL) * cols * LK_PANEL + i % LK_PANEL;
        const float *src = w + i * cols;
        for (int64_t j = 0; j < cols; j++) dst[j * LK_PANEL] = src[j];
    }
    for (int64_t i = rows; i < rows + pad_rows; i++) {
        float *dst = weights + (i / LK_PANEL) * cols * LK_PANEL + i % LK_PANEL;
        for (int64_t j = 0; j < cols; j++) dst[j * LK_PANEL] = 0.0f;
    }
    if (!with_codes) return LK_OK;
    return lk_pack_var_codes(weights, rows, cols, row_envelope_sq, col_envelope_sq, phase_var,
                             var_codes, row_var_inv, row_var_scale, 1);
}

/* The variance codes of a run of panels; panels are independent, so any split over threads
 * gives the same bytes. */
typedef struct pack_job {
    const float *weights;
    int64_t rows, cols, c4, npanels;
    const float *row_envelope_sq, *col_envelope_sq;
    float phase_var;
    uint8_t *var_codes;
    float *row_var_inv, *row_var_scale;
    atomic_llong next; /* next panel to claim */
} pack_job;

/* Panels a worker claims at a time (a few hundred kB of weights: few atomics, fair split). */
#define LK_PACK_PANELS_PER_CLAIM 4

static void pack_panel(const pack_job *job, int64_t p) {
    const int64_t rows = job->rows, cols = job->cols;
    const float *col_envelope_sq = job->col_envelope_sq;
    const float *wp = job->weights + p * cols * LK_PANEL;
    const int n = rows - p * LK_PANEL < LK_PANEL ? (int)(rows - p * LK_PANEL) : LK_PANEL;
    float r2[LK_PANEL], inv[LK_PANEL], dmax[LK_PANEL];
    for (int l = 0; l < n; l++) r2[l] = job->row_envelope_sq[p * LK_PANEL + l], dmax[l] = 0.0f;
    for (int64_t j = 0; j < cols; j++) {
        for (int l = 0; l < n; l++) {
            const float w = wp[j * LK_PANEL + l];
            float d = r2[l] * col_envelope_sq[j] - w * w; /* as lk_dcode */
            d = d > 0.0f ? d : 0.0f;
            dmax[l] = d > dmax[l] ? d : dmax[l];
        }
    }
    for (int l = 0; l < n; l++) {
        if (dmax[l] < LK_DMAX_MIN) dmax[l] = 0.0f;
        inv[l] = dmax[l] > 0.0f ? (float)LK_DQ_MAX / dmax[l] : 0.0f;
        job->row_var_inv[p * LK_PANEL + l] = inv[l];
        job->row_var_scale[p * LK_PANEL + l] =
            (float)((double)job->phase_var * (double)dmax[l] / (double)(LK_DQ_MAX * LK_X2_MAX));
    }
    uint8_t *dp = job->var_codes + p * job->c4 * LK_PANEL;
    memset(dp, 0, (size_t)(job->c4 * LK_PANEL));
    for (int64_t j = 0; j < cols; j++) {
        uint8_t *dj = dp + (j / LK_DGROUP) * LK_PANEL * LK_DGROUP + j % LK_DGROUP;
        for (int l = 0; l < n; l++) {
            dj[l * LK_DGROUP] =
                (uint8_t)lk_dcode(wp[j * LK_PANEL + l], r2[l], col_envelope_sq[j], inv[l]);
        }
    }
}

static void pack_worker(void *arg, int worker) {
    (void)worker;
    pack_job *job = (pack_job *)arg;
    for (;;) {
        const int64_t first = atomic_fetch_add(&job->next, LK_PACK_PANELS_PER_CLAIM);
        if (first >= job->npanels) break;
        int64_t last = first + LK_PACK_PANELS_PER_CLAIM;
        if (last > job->npanels) last = job->npanels;
        for (int64_t p = first; p < last; p++) pack_panel(job, p);
    }
}

int lk_pack_var_codes(const float *weights, int64_t rows, int64_t cols,
                      const float *row_envelope_sq, const float *col_envelope_sq,
                      float phase_var, uint8_t *var_codes, float *row_var_inv,
                      float *row_var_scale, int32_t threads) {
    if (weights == NULL || var_codes == NULL || row_var_inv == NULL || row_var_scale == NULL ||
        lk_packed_floats(rows, cols) < 0 || cols > LK_MAX_COLS_NOISE || threads < 1) {
        return LK_EINVAL;
    }
    if (!all_ok(row_envelope_sq, rows) || !all_ok(col_envelope_sq, cols) ||
        !finite_nonneg(phase_var)) {
        return LK_EINVAL;
    }
    pack_job job;
    job.weights = weights;
    job.rows = rows;
    job.cols = cols;
    job.c4 = (cols + LK_DPAD - 1) / LK_DPAD * LK_DPAD;
    job.npanels = (rows + LK_PANEL - 1) / LK_PANEL;
    job.row_envelope_sq = row_envelope_sq;
    job.col_envelope_sq = col_envelope_sq;
    job.phase_var = phase_var;
    job.var_codes = var_codes;
    job.row_var_inv = row_var_inv;
    job.row_var_scale = row_var_scale;
    atomic_init(&job.next, 0);
    const int64_t claims = (job.npanels + LK_PACK_PANELS_PER_CLAIM - 1) / LK_PACK_PANELS_PER_CLAIM;
    const int workers = lk_workers_for(rows * cols, threads, claims);
    if (workers == 1) {
        pack_worker(&job, 0);
    } else {
        lk_pool_run(workers, pack_worker, &job);
    }
    return LK_OK;
}

/* ------------------------------------------------------------------------------------ */
/* Stand-alone converters and normals (same inline code as the forward pass)            */
/* ------------------------------------------------------------------------------------ */

int lk_quantize_inputs(const float *x, int64_t batch, int64_t cols, int32_t bits, float *x_norm,
                       float *scales) {
    if (x == NULL || x_norm == NULL || scales == NULL) return LK_EINVAL;
    if (batch <= 0 || cols <= 0 || batch > INT64_MAX / 4 / cols) return LK_EINVAL;
    if (!lk_valid_bits(bits)) return LK_EINVAL;
    const lk_isa_desc *isa = &lk_isa_table[lk_isa()];
    if (isa->nonfinite(x, batch * cols)) return LK_ENONFINITE;
    const float levels = lk_levels(bits);
    const lk_dac_fn dac = isa->dac;
    for (int64_t b = 0; b < batch; b++) {
        scales[b] = dac(x + b * cols, cols, levels, x_norm + b * cols);
    }
    return LK_OK;
}

int lk_adc(const float *u, int64_t n, int32_t bits, float full_scale, float *codes,
           int64_t *clipped) {
    if (u == NULL || codes == NULL || n <= 0) return LK_EINVAL;
    float to_code, from_code;
    if (!adc_constants(bits, full_scale, &to_code, &from_code)) return LK_EINVAL;
    const lk_isa_desc *isa = &lk_isa_table[lk_isa()];
    if (isa->nonfinite(u, n)) return LK_ENONFINITE;
    const int64_t total = isa->adc(u, n, to_code, lk_levels(bits), codes);
    if (clipped != NULL) *clipped = total;
    return LK_OK;
}

int lk_normals(uint64_t seed, uint64_t call_index, int64_t vector, int64_t first_output,
               int64_t n, float *out) {
    if (out == NULL || n <= 0 || vector < 0 || first_output < 0) return LK_EINVAL;
    if (first_output > INT64_MAX - n) return LK_EINVAL;
    const uint64_t key = lk_rng_vector_key(seed, call_index, (uint64_t)vector);
    lk_isa_table[lk_isa()].normals(key, first_output, n, out);
    return LK_OK;
}
