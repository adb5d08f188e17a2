/* Lumina HAL twin kernel: the C engine behind MockDevice.
 *
 * Plain C99. No Python API is used, so cffi calls it with the GIL released.
 * All arrays are C-contiguous float32 owned by the caller (numpy, passed zero-copy).
 */
#ifndef LUMINA_KERNEL_H
#define LUMINA_KERNEL_H

#include <stdint.h>

#define LK_OK 0
#define LK_EINVAL 1 /* a null pointer, a non-positive size or a bit width outside 2..24 */
#define LK_ENONFINITE 2 /* an input contains NaN or Inf; nothing was written */

/* A programmed weight array and its converters (see docs/physics.md, "Ideal model"). */
typedef struct lk_layer {
    int64_t rows;             /* outputs (detectors) in use */
    int64_t cols;             /* inputs (modulators) in use */
    const float *weights;     /* rows x cols, row-major, normalized to [-1, 1] */
    int32_t input_bits;       /* input DAC width, 2..24 */
    int32_t output_bits;      /* ADC width, 2..24 */
    float output_full_scale;  /* ADC full scale in normalized output units (> 0) */
} lk_layer;

/* y[b, r] for b < batch: input DAC per vector, matmul, ADC with clipping.
 * y is batch x rows, in units of (max|x_b| * weight scale = 1), i.e. the caller multiplies
 * by its weight scale. *clipped (may be NULL) receives the number of outputs that hit full
 * scale. Returns LK_OK or an LK_E* code. */
int lk_forward(const lk_layer *layer, const float *x, int64_t batch, float *y, int64_t *clipped);

/* Kernel version, bumped whenever outputs for the same inputs change. */
int lk_version(void);

#endif
