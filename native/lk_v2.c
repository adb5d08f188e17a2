/* Lumina HAL twin kernel: physics v2's per-call engine (docs/physics.md section 7.6).
 *
 * The numpy oracle is lumina_hal/twin/reference_v2.forward. Programming (the static phase
 * phi_ij of every cell) stays in numpy; this file takes A cos(phi/2), A sin(phi/2) per cell
 * and computes, per vector b of one call and per output row i,
 *   AR(1):  delta_ij[0] = sigma xi_ij[0], delta_ij[b] = a delta_ij[b-1] + k xi_ij[b],
 *           u_i = sum_j (A cos(phi/2) cos(delta/2) - A sin(phi/2) sin(delta/2)) x_j
 *   white:  u_i = sum_j (A cos(phi/2) m) x_j, Var_i = var_a R_i^2 sum x^2 C^2 - var_b sum W^2 x^2
 * plus the balanced detector noise sqrt(Var + c0 + c1 I + c2 I^2) z, the offsets and v1's
 * converters (lk_quantize_inputs, lk_adc: the same code as v1's forward pass). The normals
 * are lk_normals' (docs/physics.md section 4) with k = i C + j for xi_ij and k = R C + i for
 * output i, so they are a pure function of (seed, call_index, b, k).
 *
 * Threads take whole rows (each row runs its own filter over the batch), every sum runs over
 * j in one fixed order: the bits do not depend on the thread count.
 */
#include <float.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>

#include "lk_internal.h"

/* cos(h), sin(h) by their Taylor polynomials for |h| <= LK_V2_POLY_MAX: the first omitted
 * terms are h^14/14! < 5e-20 and h^15/15! < 1.2e-21 there (docs/physics.md section 7.6). */
#define LK_V2_POLY_MAX 0.25
#define LK_V2_ROWS_PER_CLAIM 1

static LK_ALWAYS_INLINE void v2_cos_sin(double h, double *c, double *s) {
    const double h2 = h * h;
    double pc = 1.0 / 479001600.0;
    pc = pc * h2 - 1.0 / 3628800.0;
    pc = pc * h2 + 1.0 / 40320.0;
    pc = pc * h2 - 1.0 / 720.0;
    pc = pc * h2 + 1.0 / 24.0;
    pc = pc * h2 - 0.5;
    *c = pc * h2 + 1.0;
    double ps = 1.0 / 6227020800.0;
    ps = ps * h2 - 1.0 / 39916800.0;
    ps = ps * h2 + 1.0 / 362880.0;
    ps = ps * h2 - 1.0 / 5040.0;
    ps = ps * h2 + 1.0 / 120.0;
    ps = ps * h2 - 1.0 / 6.0;
    *s = h + h * (ps * h2);
}

typedef double (*v2_row_fn)(const lk_v2_model *m, int64_t i, int64_t b, const float *xi,
                            const float *x, double *delta, double *w);

typedef struct v2_job {
    const lk_v2_model *m;
    int64_t batch;
    uint64_t seed;
    uint64_t call_index;
    const float *xn;    /* batch x cols, quantised inputs */
    const double *s1;   /* batch: sum_j |x_j| C_j */
    const double *s2;   /* batch: sum_j x_j^2 C_j^2 (white only) */
    float *u;           /* batch x rows: float32(u) before the ADC */
    double *scratch;    /* per worker: delta, w (cols doubles each), xi (cols floats) */
    int64_t scratch_doubles;
    v2_row_fn row;      /* the correlated row kernel of the ISA in use */
    atomic_llong next;
} v2_job;

/* sum_j w_j x_j in one fixed order: four interleaved partial sums, combined at the end. */
static LK_ALWAYS_INLINE double v2_dot(const double *w, const float *x, int64_t n) {
    double acc[4] = {0.0, 0.0, 0.0, 0.0};
    int64_t j = 0;
    for (; j + 4 <= n; j += 4) {
        for (int l = 0; l < 4; l++) acc[l] += w[j + l] * (double)x[j + l];
    }
    for (; j < n; j++) acc[0] += w[j] * (double)x[j];
    return (acc[0] + acc[1]) + (acc[2] + acc[3]);
}

/* u_i = sum_j A cos((phi + delta)/2) x_j of row i for vector b whose xi are given; advances
 * delta (the row's filter state). Element-wise IEEE operations, then v2_dot, so every
 * compilation of it (v2_row_generic, v2_row_avx2) computes the same bits. */
static LK_ALWAYS_INLINE double v2_row_impl(const lk_v2_model *m, int64_t i, int64_t b,
                                           const float *xi, const float *x, double *delta,
                                           double *w) {
    const int64_t cols = m->cols;
    const double *ac = m->amp_cos + i * cols, *as = m->amp_sin + i * cols;
    int big = 0;
    if (b == 0) {
        const double sigma = m->sigma;
        for (int64_t j = 0; j < cols; j++) {
            delta[j] = sigma * (double)xi[j];
            big |= fabs(0.5 * delta[j]) > LK_V2_POLY_MAX;
        }
    } else {
        const double a = m->ar1, k = m->innovation;
        for (int64_t j = 0; j < cols; j++) {
            delta[j] = a * delta[j] + k * (double)xi[j];
            big |= fabs(0.5 * delta[j]) > LK_V2_POLY_MAX;
        }
    }
    if (!big) {
        for (int64_t j = 0; j < cols; j++) {
            double c, s;
            v2_cos_sin(0.5 * delta[j], &c, &s);
            w[j] = ac[j] * c - as[j] * s;
        }
    } else {
        for (int64_t j = 0; j < cols; j++) {
            const double h = 0.5 * delta[j];
            double c, s;
            if (fabs(h) <= LK_V2_POLY_MAX) {
                v2_cos_sin(h, &c, &s);
            } else {
                c = cos(h);
                s = sin(h);
            }
            w[j] = ac[j] * c - as[j] * s;
        }
    }
    return v2_dot(w, x, cols);
}

static double v2_row_generic(const lk_v2_model *m, int64_t i, int64_t b, const float *xi,
                             const float *x, double *delta, double *w) {
    return v2_row_impl(m, i, b, xi, x, delta, w);
}

#if LK_X86
/* The same code with 4-wide double vectors (no FMA: -ffp-contract=off keeps a*b+c two
 * roundings), chosen when the kernel runs an AVX2 or wider path. */
__attribute__((target("avx2"))) static double v2_row_avx2(const lk_v2_model *m, int64_t i,
                                                          int64_t b, const float *xi,
                                                          const float *x, double *delta,
                                                          double *w) {
    return v2_row_impl(m, i, b, xi, x, delta, w);
}
#endif

static void v2_worker(void *arg, int worker) {
    v2_job *job = arg;
    const lk_v2_model *m = job->m;
    const int64_t rows = m->rows, cols = m->cols, batch = job->batch;
    double *delta = job->scratch + worker * job->scratch_doubles;
    double *w = delta + cols;
    float *xi = (float *)(w + cols);
    const int64_t det_base = m->array_rows * m->array_cols;
    for (;;) {
        const int64_t i0 = (int64_t)atomic_fetch_add(&job->next, LK_V2_ROWS_PER_CLAIM);
        if (i0 >= rows) return;
        const int64_t i1 = i0 + LK_V2_ROWS_PER_CLAIM < rows ? i0 + LK_V2_ROWS_PER_CLAIM : rows;
        for (int64_t i = i0; i < i1; i++) {
            const double r = m->row_envelope[i];
            const double *ac = m->amp_cos + i * cols;
            for (int64_t b = 0; b < batch; b++) {
                const float *x = job->xn + b * cols;
                double u, var = 0.0;
                if (m->correlated) {
                    lk_normals(job->seed, job->call_index, b, i * m->array_cols, cols, xi);
                    u = job->row(m, i, b, xi, x, delta, w);
                } else {
                    for (int64_t j = 0; j < cols; j++) w[j] = ac[j] * m->mean_factor;
                    u = v2_dot(w, x, cols);
                    if (m->noise) {
                        double s_w = 0.0; /* sum_j W_ij^2 x_j^2 */
                        for (int64_t j = 0; j < cols; j++) {
                            const double xj = (double)x[j];
                            s_w += (ac[j] * ac[j]) * (xj * xj);
                        }
                        var = m->var_a * (r * r) * job->s2[b];
                        var -= m->var_b * s_w;
                        var = var > 0.0 ? var : 0.0;
                    }
                }
                if (m->noise) {
                    const double tot = r * job->s1[b];
                    var = ((var + m->det_c0) + m->det_c1 * tot) + m->det_c2 * tot * tot;
                    float z;
                    lk_normals(job->seed, job->call_index, b, det_base + i, 1, &z);
                    u = u + sqrt(var) * (double)z;
                }
                if (m->offset != NULL) u = u + m->offset[i];
                /* Saturate before float32: the ADC clips a huge u (a huge but finite variance
                 * or offset) to full scale; NaN only comes from an infinite variance times a
                 * zero normal, which saturates too. */
                if (isnan(u)) u = FLT_MAX;
                u = u > FLT_MAX ? FLT_MAX : (u < -FLT_MAX ? -FLT_MAX : u);
                job->u[b * rows + i] = (float)u;
            }
        }
    }
}

static int finite_nonneg(double v) { return v >= 0.0 && !isinf(v); }

static int check_v2_model(const lk_v2_model *m) {
    if (m == NULL || m->amp_cos == NULL || m->amp_sin == NULL || m->row_envelope == NULL ||
        m->col_envelope == NULL) {
        return LK_EINVAL;
    }
    if (m->rows < 1 || m->cols < 1 || m->rows > m->array_rows || m->cols > m->array_cols) {
        return LK_EINVAL;
    }
    if (m->array_rows > (INT64_C(1) << 31) || m->array_cols > (INT64_C(1) << 31)) return LK_EINVAL;
    if (!lk_valid_bits(m->input_bits) || !lk_valid_bits(m->output_bits)) return LK_EINVAL;
    if (!(m->full_scale > 0.0f) || isinf(m->full_scale)) return LK_EINVAL;
    if (!(m->output_scale > 0.0f) || isinf(m->output_scale)) return LK_EINVAL;
    if (!(m->ar1 >= 0.0 && m->ar1 < 1.0)) return LK_EINVAL;
    if (!finite_nonneg(m->sigma) || !finite_nonneg(m->innovation)) return LK_EINVAL;
    if (!finite_nonneg(m->mean_factor) || !finite_nonneg(m->var_a) || !finite_nonneg(m->var_b)) {
        return LK_EINVAL;
    }
    if (!finite_nonneg(m->det_c0) || !finite_nonneg(m->det_c1) || !finite_nonneg(m->det_c2)) {
        return LK_EINVAL;
    }
    if (m->correlated != 0 && m->correlated != 1) return LK_EINVAL;
    if (m->noise != 0 && m->noise != 1) return LK_EINVAL;
    if (m->correlated && !m->noise) return LK_EINVAL;
    return LK_OK;
}

int lk_v2_forward(const lk_v2_model *model, const float *x, int64_t batch, float *y,
                  uint64_t seed, uint64_t call_index, int32_t threads, int64_t *clipped) {
    if (x == NULL || y == NULL || batch <= 0 || threads < 1) return LK_EINVAL;
    const int rc = check_v2_model(model);
    if (rc != LK_OK) return rc;
    const lk_v2_model *m = model;
    const int64_t rows = m->rows, cols = m->cols;
    if (batch > INT64_MAX / 8 / cols || batch > INT64_MAX / 8 / rows) return LK_EINVAL;
    const uintptr_t xa = (uintptr_t)x, ya = (uintptr_t)y;
    if ((xa | ya) & 3u) return LK_EALIGN;
    const uintptr_t xe = xa + (uintptr_t)(batch * cols * 4);
    const uintptr_t ye = ya + (uintptr_t)(batch * rows * 4);
    if (xa < ye && ya < xe) return LK_EOVERLAP;

    const int workers = lk_workers_for(rows * cols * batch, threads, rows);
    const int64_t scratch_doubles = 2 * cols + (cols + 1) / 2;
    float *xn = malloc(sizeof(float) * (size_t)(batch * cols));
    float *sx = malloc(sizeof(float) * (size_t)batch);
    float *u = malloc(sizeof(float) * (size_t)(batch * rows));
    double *sums = malloc(sizeof(double) * (size_t)(2 * batch));
    double *scratch = malloc(sizeof(double) * (size_t)(scratch_doubles * workers));
    int status = LK_OK;
    if (xn == NULL || sx == NULL || u == NULL || sums == NULL || scratch == NULL) {
        status = LK_ENOMEM;
        goto done;
    }
    status = lk_quantize_inputs(x, batch, cols, m->input_bits, xn, sx);
    if (status != LK_OK) goto done;
    for (int64_t b = 0; b < batch; b++) {
        const float *xb = xn + b * cols;
        double s1 = 0.0, s2 = 0.0;
        for (int64_t j = 0; j < cols; j++) {
            const double xj = (double)xb[j], cj = m->col_envelope[j];
            s1 += fabs(xj) * cj;
            s2 += (xj * xj) * (cj * cj);
        }
        sums[b] = s1;
        sums[batch + b] = s2;
    }
    v2_job job = {.m = m, .batch = batch, .seed = seed, .call_index = call_index, .xn = xn,
                  .s1 = sums, .s2 = sums + batch, .u = u, .scratch = scratch,
                  .scratch_doubles = scratch_doubles, .row = v2_row_generic};
#if LK_X86
    if (lk_isa() >= LK_ISA_AVX2) job.row = v2_row_avx2;
#endif
    atomic_init(&job.next, 0);
    lk_pool_run(workers, v2_worker, &job); /* one worker: runs on this thread */
    int64_t clip = 0;
    status = lk_adc(u, batch * rows, m->output_bits, m->full_scale, y, &clip);
    if (status != LK_OK) goto done;
    const float from_code = m->full_scale / lk_levels(m->output_bits);
    for (int64_t b = 0; b < batch; b++) {
        float *yb = y + b * rows;
        for (int64_t i = 0; i < rows; i++) {
            yb[i] = sx[b] == 0.0f ? 0.0f : ((yb[i] * from_code) * sx[b]) * m->output_scale;
        }
    }
    if (clipped != NULL) *clipped = clip;
done:
    free(xn);
    free(sx);
    free(u);
    free(sums);
    free(scratch);
    return status;
}
