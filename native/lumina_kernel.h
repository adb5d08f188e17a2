/* Lumina HAL twin kernel: the fused forward pass behind MockDevice (docs/physics.md, "Per call").
 *
 * Plain C11. No Python API is used, so cffi calls it with the GIL released. All arrays are
 * C-contiguous float32 owned by the caller (numpy, passed zero-copy); the kernel allocates
 * only scratch whose size depends on the batch tile and cols, never on rows x cols.
 *
 * Determinism: every output lane accumulates over j in order with one fused multiply-add per
 * term, and its Gaussian comes from a xoshiro256++ stream keyed by (seed, call_index, vector b,
 * panel p). Results are therefore bit-identical for any thread count, tiling or ISA path.
 */
#ifndef LUMINA_KERNEL_H
#define LUMINA_KERNEL_H

#include <stdint.h>

#define LK_OK 0
#define LK_EINVAL 1     /* null pointer, non-positive size, bit width outside 2..24, bad scale */
#define LK_ENONFINITE 2 /* an input is NaN or Inf; nothing was written to y */
#define LK_ENOMEM 3     /* scratch allocation failed; nothing was written to y */
#define LK_ERANGE 4     /* an input code is outside +-L_x (lk_forward_codes); nothing written */
#define LK_EALIGN 5     /* x or y is not aligned to its element size; nothing was written */
#define LK_EOVERLAP 6   /* x and y overlap in memory; nothing was written */

#define LK_PANEL 16 /* outputs per packed weight panel and per RNG stream */

#define LK_ISA_SCALAR 0
#define LK_ISA_AVX2 1
#define LK_ISA_AVX512 2
#define LK_ISA_AVX512VNNI 3 /* AVX-512 with VNNI: the variance term in one vpdpbusd per 4 cols */
#define LK_ISA_AMX 4        /* AVX-512 VNNI + AMX-INT8: the variance term as tile products */

/* A programmed array: static physics already applied (W_eff), packed by lk_pack_model. */
typedef struct lk_model {
    int64_t rows;                 /* outputs r */
    int64_t cols;                 /* inputs c (<= 65536 with noise on) */
    const float *weights;         /* packed W_eff: ceil(r/16) panels, each cols x 16 floats,
                                     element (i, j) at [(i/16)*cols*16 + j*16 + i%16]; pad = 0 */
    const float *row_envelope_sq; /* r floats: R_i^2, phase-noise amplitude envelope of row i */
    const float *col_envelope_sq; /* c floats: C_j^2, phase-noise amplitude envelope of col j */
    const uint8_t *var_codes;     /* variance codes of D = R^2 C^2 - W_eff^2 (lk_pack_model) */
    const float *row_var_inv;     /* r floats: 255 / max_j D_ij (0 for a row with D = 0) */
    const float *row_var_scale;   /* r floats: (sigma_phi^2/4) max_j D_ij / (255 * 127) */
    int32_t input_bits;           /* input DAC width, 2..24 */
    int32_t output_bits;          /* ADC width, 2..24 */
    float full_scale;             /* ADC full scale FS in normalized output units (> 0) */
    float output_scale;           /* weight scale s_w multiplied into every output (> 0) */
    float det_c0;                 /* detector variance c0 + c1 |u| + c2 u^2, normalized units */
    float det_c1;
    float det_c2;
    int32_t noise;                /* 0: no Gaussian draws at all (noise fields not read) */
} lk_model;

/* Forward pass for `batch` vectors x (batch x cols) into y (batch x rows).
 * threads: worker threads to use (>= 1); the kernel uses fewer when the problem is small.
 * clipped (may be NULL): number of outputs that hit ADC full scale. */
int lk_forward(const lk_model *model, const float *x, int64_t batch, float *y, uint64_t seed,
               uint64_t call_index, int32_t threads, int64_t *clipped);

/* lk_forward for vectors first_vector .. first_vector + batch - 1 of call call_index: vector b
 * here draws its noise as vector first_vector + b would in one call over the whole batch, so
 * a batch split over several calls (e.g. several link frames) gives the same bits. */
int lk_forward_from(const lk_model *model, const float *x, int64_t batch, uint64_t first_vector,
                    float *y, uint64_t seed, uint64_t call_index, int32_t threads,
                    int64_t *clipped);

/* Input DAC alone (the same code the forward pass uses): x_norm = rint(x * (L/s_x)) / L per
 * vector, scales[b] = max_j |x[b, j]|. For bit-exact tests against the numpy reference. */
int lk_quantize_inputs(const float *x, int64_t batch, int64_t cols, int32_t bits, float *x_norm,
                       float *scales);

/* ADC alone: codes = clip(rint(u * (L / full_scale)), -L, L); returns the clipped count via
 * *clipped (may be NULL). */
int lk_adc(const float *u, int64_t n, int32_t bits, float full_scale, float *codes,
           int64_t *clipped);

/* The standard normals of outputs first_output .. first_output + n - 1 of vector `vector` of
 * call (seed, call_index), exactly as the forward pass draws them (docs/physics.md section
 * 4), on the selected ISA path. For tests of the generator. */
int lk_normals(uint64_t seed, uint64_t call_index, int64_t vector, int64_t first_output,
               int64_t n, float *out);

/* ---- Programming (lk_program.c): docs/physics.md section 2, the numpy reference's arithmetic.
 * Work is split by rows over `threads` (>= 1); the bits do not depend on the thread count. */

/* The chip side of one programmed block at one temperature. */
typedef struct lk_program_params {
    int64_t rows;                /* programmed block r x c */
    int64_t cols;
    int32_t weight_bits;         /* heater DAC width, 2..24; codes are q | negative << bits */
    double fab_sigma;            /* relative heater-efficiency scatter (0: no draws) */
    double crosstalk;            /* kappa1, edge neighbours */
    double crosstalk_diag;       /* kappa2, diagonal neighbours */
    double drift_rad_per_um;     /* (2 pi / lambda) n_T(T) (T - T_cal), rad per um of imbalance */
    double arm_imbalance_um;     /* rms arm-length imbalance (0: no draws) */
    const double *row_envelope;  /* r doubles: R_i */
    const double *col_envelope;  /* c doubles: C_j */
    uint64_t serial_key;         /* seed of the per-cell draws (reference.serial_key) */
} lk_program_params;

/* Host side (steps 1-4): codes (r x c int32) and *scale = max|w| (1 if w = 0) of the float64
 * matrix w, with R_i = row_env[i], C_j = col_env[j]. LK_ENONFINITE if w holds NaN or Inf. */
int lk_heater_codes(const double *w, int64_t rows, int64_t cols, int32_t weight_bits,
                    const double *row_env, const double *col_env, int32_t *codes,
                    double *scale, int32_t threads);

/* lk_heater_codes of a float32 matrix: the codes of its (exact) float64 copy, without the
 * copy (each row is widened inside the kernel). */
int lk_heater_codes_f32(const float *w, int64_t rows, int64_t cols, int32_t weight_bits,
                        const double *row_env, const double *col_env, int32_t *codes,
                        double *scale, int32_t threads);

/* The smallest and largest entry of a matrix, float64 w or float32 w32 (exactly one of them
 * non-NULL), in one threaded pass: *lo = *hi = NaN if it holds a NaN (the check of a load). */
int lk_weight_range(const double *w, const float *w32, int64_t rows, int64_t cols,
                    int32_t threads, double *lo, double *hi);

/* zlib's CRC-32 (crc32(0, data, len)) of len bytes into *crc, computed in pieces over
 * `threads` and combined exactly (the weights id checksums the codes with it). */
int lk_crc32(const uint8_t *data, int64_t len, int32_t threads, uint32_t *crc);

/* Chip side (steps 4-8): W_eff of the codes, rounded to float, in the packed panel layout of
 * lk_model.weights (ceil(r/16) * c * 16 floats, padding lanes zeroed). */
int lk_program(const lk_program_params *params, const int32_t *codes, float *packed,
               int32_t threads);

/* The per-cell standard normals of a device (step 5 and 7): fab (fabrication) and arm (arm
 * imbalance), r x c doubles each, for tests and the reference. */
int lk_cell_normals(uint64_t serial_key, int64_t rows, int64_t cols, double *fab, double *arm);

/* The ziggurat's layer `layer` (0..255): width x_i 2^-23 (float) and threshold k_i. */
int lk_zig_table(int32_t layer, float *width, uint32_t *k);

/* ISA path in use (LK_ISA_*); lk_select_isa forces one (returns the one actually selected, which is the
 * best supported one not above the request). */
int lk_isa(void);
int lk_select_isa(int isa);

/* Kernel version, bumped whenever outputs for the same inputs change. */
int lk_version(void);

/* ---- Packing and integer-code entry points (docs/kernel.md "Packing", "Codes in, codes
 * out"). Kept in one block so that other additions to this header merge cleanly. ---- */

/* Sizes of the arrays lk_pack_model fills: packed weights (floats) and variance codes
 * (bytes), or -1 if rows/cols are not positive or the size overflows. */
int64_t lk_packed_floats(int64_t rows, int64_t cols);
int64_t lk_var_code_bytes(int64_t rows, int64_t cols);

/* Pack the row-major r x c matrix w (W_eff) into `weights` (lk_packed_floats) and, if
 * var_codes is not NULL, compute the variance codes (lk_var_code_bytes bytes), row_var_inv
 * and row_var_scale (r floats each) from R^2, C^2 and phase_var = sigma_phi^2 / 4.
 * LK_EINVAL for NULL arrays, sizes <= 0, cols > 65536 with codes, or non-finite / negative
 * envelopes or phase_var; LK_ENONFINITE if w holds NaN or Inf. */
int lk_pack_model(const float *w, int64_t rows, int64_t cols, const float *row_envelope_sq,
                  const float *col_envelope_sq, float phase_var, float *weights,
                  uint8_t *var_codes, float *row_var_inv, float *row_var_scale);

/* The variance codes, row_var_inv and row_var_scale of already packed weights (the second
 * half of lk_pack_model, for callers that produce the panel layout themselves), on up to
 * `threads` threads; the bytes do not depend on the thread count. */
int lk_pack_var_codes(const float *weights, int64_t rows, int64_t cols,
                      const float *row_envelope_sq, const float *col_envelope_sq,
                      float phase_var, uint8_t *var_codes, float *row_var_inv,
                      float *row_var_scale, int32_t threads);

/* lk_forward_from with the chip's integer codes on both sides, as a link carries them:
 * input DAC codes (batch x cols int32, |code| <= L_x = 2^(input_bits-1) - 1; x_n = code /
 * L_x, s_x = 1, or 0 for an all-zero vector) in, ADC codes (batch x rows int32) out; the
 * model's output_scale is not used. LK_ERANGE for a code outside +-L_x. */
int lk_forward_codes(const lk_model *model, const int32_t *codes, int64_t batch,
                     uint64_t first_vector, int32_t *out_codes, uint64_t seed,
                     uint64_t call_index, int32_t threads, int64_t *clipped);

/* ---- end of the packing and integer-code block ---- */

/* ---- Physics v2 per call (lk_v2.c, docs/physics.md section 7.6). Programming stays in
 * numpy: the caller gives the programmed block's per-cell constants. ---- */

typedef struct lk_v2_model {
    int64_t rows;               /* programmed block r (1 .. array_rows) */
    int64_t cols;               /* c (1 .. array_cols) */
    int64_t array_rows;         /* R: the array's shape, for the normal indices k */
    int64_t array_cols;         /* C: cell (i, j) draws k = i C + j, output i k = R C + i */
    const double *amp_cos;      /* r x c row-major: A_ij cos(phi_ij / 2), A = sign R_i C_j */
    const double *amp_sin;      /* r x c row-major: A_ij sin(phi_ij / 2) */
    const double *row_envelope; /* r: R_i (total photocurrent) */
    const double *col_envelope; /* c: C_j */
    const double *offset;       /* r detector offsets in normalised units, or NULL */
    double ar1;                 /* a = exp(-2 pi f_phi / f_s), 0 <= a < 1 */
    double sigma;               /* sigma_phi (rad), >= 0 */
    double innovation;          /* k = sqrt(1 - a^2) sigma_phi */
    double mean_factor;         /* white: exp(-sigma^2 / 8) (1 when noise is off) */
    double var_a;               /* white: Var = var_a R_i^2 sum x^2 C^2 - var_b sum W^2 x^2 */
    double var_b;
    double det_c0;              /* detector variance c0 + c1 I + c2 I^2, I = R_i sum |x| C_j */
    double det_c1;
    double det_c2;
    int32_t correlated;         /* 1: per-cell AR(1) phase noise; 0: white shortcut */
    int32_t noise;              /* 0: no draws at all (phase and detector noise off) */
    int32_t input_bits;         /* 2..24 */
    int32_t output_bits;        /* 2..24 */
    float full_scale;           /* ADC full scale (> 0) */
    float output_scale;         /* s_w (> 0) */
} lk_v2_model;

/* One v2 call: x (batch x cols float32) into y (batch x rows float32), vectors 0 .. batch-1
 * of call call_index (the AR(1) filter restarts at vector 0). Rows are split over up to
 * `threads` workers; the bits do not depend on the thread count. LK_EINVAL for bad sizes
 * or parameters, LK_ENONFINITE for NaN/Inf in x, LK_EALIGN / LK_EOVERLAP as lk_forward. */
int lk_v2_forward(const lk_v2_model *model, const float *x, int64_t batch, float *y,
                  uint64_t seed, uint64_t call_index, int32_t threads, int64_t *clipped);

/* ---- end of the physics v2 block ---- */

#endif
