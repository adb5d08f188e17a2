/* Lumina HAL twin kernel. See lumina_kernel.h for the API and docs/physics.md for the model. */
#include "lumina_kernel.h"

#include <math.h>
#include <stddef.h>

#define LK_VERSION 1

int lk_version(void) { return LK_VERSION; }

static float levels(int32_t bits) { return (float)((1L << (bits - 1)) - 1); }

static int valid_bits(int32_t bits) { return bits >= 2 && bits <= 24; }

int lk_forward(const lk_layer *layer, const float *x, int64_t batch, float *y, int64_t *clipped) {
    if (layer == NULL || x == NULL || y == NULL || layer->weights == NULL) return LK_EINVAL;
    if (layer->rows <= 0 || layer->cols <= 0 || batch <= 0) return LK_EINVAL;
    if (!valid_bits(layer->input_bits) || !valid_bits(layer->output_bits)) return LK_EINVAL;
    if (!(layer->output_full_scale > 0.0f) || !isfinite(layer->output_full_scale)) return LK_EINVAL;

    const int64_t rows = layer->rows, cols = layer->cols;
    for (int64_t i = 0; i < batch * cols; i++) {
        if (!isfinite(x[i])) return LK_ENONFINITE;
    }

    const float in_levels = levels(layer->input_bits);
    const float out_levels = levels(layer->output_bits);
    const float fs = layer->output_full_scale;
    const float to_code = out_levels / fs;
    const float from_code = fs / out_levels;
    int64_t n_clipped = 0;

    for (int64_t b = 0; b < batch; b++) {
        const float *xb = x + b * cols;
        float *yb = y + b * rows;
        float scale = 0.0f;
        for (int64_t j = 0; j < cols; j++) {
            float a = fabsf(xb[j]);
            if (a > scale) scale = a;
        }
        if (scale == 0.0f) {
            for (int64_t r = 0; r < rows; r++) yb[r] = 0.0f;
            continue;
        }
        const float to_in = in_levels / scale;
        for (int64_t r = 0; r < rows; r++) {
            const float *w = layer->weights + r * cols;
            double acc = 0.0;
            for (int64_t j = 0; j < cols; j++) {
                float xq = rintf(xb[j] * to_in) / in_levels; /* input DAC, normalized */
                acc += (double)xq * (double)w[j];
            }
            float code = rintf((float)acc * to_code);
            if (code > out_levels) { code = out_levels; n_clipped++; }
            else if (code < -out_levels) { code = -out_levels; n_clipped++; }
            yb[r] = code * from_code * scale;
        }
    }
    if (clipped != NULL) *clipped = n_clipped;
    return LK_OK;
}
