/*
 * fp32 kernels: forward, backward and update. One op per source file under runtime/ops/.
 *
 * Layouts (batch 1): activations C x H x W row-major; conv weights O x (I/groups) x KH x KW;
 * linear weights O x I. Buffers are owned by the caller; kernels never allocate. Bias pointers
 * may be NULL (no bias). Gradient kernels overwrite (not accumulate) their outputs.
 * Accumulation is in float, in the loop order of the portable code, so results are reproducible.
 */
#ifndef TT_KERNELS_F32_H
#define TT_KERNELS_F32_H

#include <stdbool.h>
#include <stdint.h>
#include "tt/tt_status.h"

typedef struct {
    int32_t in_features;
    int32_t out_features;
} tt_linear_params;

typedef struct {
    int32_t in_c, in_h, in_w;
    int32_t out_c, out_h, out_w;
    int32_t k_h, k_w;
    int32_t stride_h, stride_w;
    int32_t pad_h, pad_w; /* zero padding on each side */
    int32_t groups;       /* in_c and out_c are multiples of groups */
} tt_conv2d_params;

typedef struct {
    int32_t c, in_h, in_w;
    int32_t out_h, out_w;
    int32_t k_h, k_w;
    int32_t stride_h, stride_w;
    int32_t pad_h,
        pad_w; /* max pool pads with -inf; avg pool counts padding (count_include_pad) */
} tt_pool2d_params;

/* y[o] = b[o] + sum_i w[o][i] x[i] */
tt_status tt_linear_f32(const tt_linear_params *p, const float *x, const float *w, const float *b,
                        float *y);
/* dx[i] = sum_o dy[o] w[o][i] */
tt_status tt_linear_grad_input_f32(const tt_linear_params *p, const float *dy, const float *w,
                                   float *dx);
/* dw[o][i] = dy[o] x[i]; db[o] = dy[o]. dw or db may be NULL (not both); x only matters for dw. */
tt_status tt_linear_grad_weight_f32(const tt_linear_params *p, const float *dy, const float *x,
                                    float *dw, float *db);
/* The SGD step of that gradient, in place, never storing dw: w[o][i] -= lr * (dy[o] x[i]);
 * b[o] -= lr * dy[o] (the same float operations as the two ops apart). w or b may be NULL (not
 * both); x only matters for w. */
tt_status tt_linear_sgd_f32(const tt_linear_params *p, const float *dy, const float *x, float *w,
                            float *b, float lr);

tt_status tt_conv2d_f32(const tt_conv2d_params *p, const float *x, const float *w, const float *b,
                        float *y);
tt_status tt_conv2d_grad_input_f32(const tt_conv2d_params *p, const float *dy, const float *w,
                                   float *dx);
/* dw and db as for linear: either may be NULL (a bias-only layer needs neither dw nor x). */
tt_status tt_conv2d_grad_weight_f32(const tt_conv2d_params *p, const float *dy, const float *x,
                                    float *dw, float *db);

/* y = max(x, 0); y may alias x */
tt_status tt_relu_f32(int32_t size, const float *x, float *y);
/* dx = dy where y > 0, else 0; dx may alias dy */
tt_status tt_relu_grad_f32(int32_t size, const float *y, const float *dy, float *dx);

tt_status tt_maxpool2d_f32(const tt_pool2d_params *p, const float *x, float *y);
/* Routes each dy to the first maximum of its window (PyTorch's choice); dx is overwritten. */
tt_status tt_maxpool2d_grad_f32(const tt_pool2d_params *p, const float *x, const float *dy,
                                float *dx);
tt_status tt_avgpool2d_f32(const tt_pool2d_params *p, const float *x, float *y);
tt_status tt_avgpool2d_grad_f32(const tt_pool2d_params *p, const float *dy, float *dx);

/* Softmax cross-entropy of one sample: loss = logsumexp(logits) - logits[label];
 * dlogits = softmax(logits) - onehot(label); pred = argmax(logits) (first maximum).
 * Returns TT_ERR_LABEL when label is outside [0, num_classes). */
tt_status tt_softmax_xent_f32(int32_t num_classes, const float *logits, int32_t label, float *loss,
                              float *dlogits, int32_t *pred);

/* w -= lr * g */
tt_status tt_sgd_f32(int32_t size, float *w, const float *g, float lr);

/* The optimizer state of one trained tensor (OPTIM_STEP_F32, issue 18): accumulate > 1 sums
 * that many samples' gradients in acc (the update applies their mean at phase accumulate - 1);
 * with has_momentum the velocity v = momentum * v + mean gradient is applied. */
typedef struct {
    int32_t size;       /* elements of g, acc, v */
    int32_t accumulate; /* samples per update (1: none) */
    int32_t phase;      /* this step's place in the cycle, 0 .. accumulate - 1 */
    bool has_momentum;
    float momentum; /* in [0, 1) */
} tt_optim_params;

/* g (in place) becomes what the update op after it applies: 0 while accumulating, else the mean
 * gradient, through the velocity with momentum; acc (accumulate > 1) and v (has_momentum) are
 * NULL exactly when unused. TT_ERR_NONFINITE, nothing written, when a new acc or v value would
 * not be finite. */
tt_status tt_optim_step_f32(const tt_optim_params *p, float *g, float *acc, float *v);

/* The activation functions of tt_act_f32 (host/tinyhost/ops.py ActFunc: the same numbers). */
typedef enum {
    TT_ACT_RELU6 = 0,      /* min(max(x, 0), 6) */
    TT_ACT_LEAKY_RELU = 1, /* x > 0 ? x : alpha * x */
    TT_ACT_SIGMOID = 2,    /* 1 / (1 + exp(-x)), in double, rounded once */
    TT_ACT_TANH = 3,       /* tanh(x), in double, rounded once */
    TT_ACT_HARDSWISH = 4,  /* x * min(max(x + 3, 0), 6) / 6 */
} tt_act_func;

/* y = func(x), elementwise; y may alias x. alpha is read only for TT_ACT_LEAKY_RELU. */
tt_status tt_act_f32(tt_act_func func, int32_t size, const float *x, float alpha, float *y);
/* dx = dy * func'(x), from v = the forward output y (relu6, sigmoid, tanh) or its input x
 * (leaky_relu, hardswish); dx may alias dy. */
tt_status tt_act_grad_f32(tt_act_func func, int32_t size, const float *v, const float *dy,
                          float alpha, float *dx);
/* y = [a, b] (channel concatenation of C x H x W tensors is that of their buffers). */
tt_status tt_concat_f32(int32_t size_a, int32_t size_b, const float *a, const float *b, float *y);
/* da = dy[0, size_a), db = dy[size_a, size_a + size_b); either may be NULL (not both). */
tt_status tt_concat_grad_f32(int32_t size_a, int32_t size_b, const float *dy, float *da,
                             float *db);

/* rows rows of in_w values -> rows of out_w: y[r][j] = x[r][j - lead + skip] where
 * 0 <= j - lead + skip < in_w, else 0 (zero padding by lead, cropping by skip). */
tt_status tt_pad_w_f32(int32_t rows, int32_t in_w, int32_t out_w, int32_t skip, int32_t lead,
                       const float *x, float *y);

#endif
