/*
 * int8 kernels: the integer forward pass (TFLite Micro / CMSIS-NN arithmetic, bit for bit), the
 * fp32 backward of the paper's quantized graph, and the QAS weight updates. docs/int8.md is the
 * specification; host/tinyhost/refexec/kernels_s8.py and requant.py are its executable form, and
 * these kernels equal them bit for bit for integer outputs (and for the elementwise fp32 ones).
 *
 * Layouts as tt_kernels_f32.h (batch 1): activations C x H x W, conv weights O x (I/groups) x
 * KH x KW, geometry in tt_conv2d_params / tt_pool2d_params. int8 tensors are int8_t, biases,
 * multipliers and shifts int32_t, gradients float. Buffers are owned by the caller and kernels
 * never allocate: a kernel that needs working memory has a `_get_buffer_size()` query and takes
 * it as a tt_scratch (first argument, as CMSIS-NN's context). Every kernel returns TT_OK, or
 * TT_ERR_ARG for a NULL pointer or an impossible parameter, without writing any output.
 *
 * Integer contract: as in the reference (which raises where C would overflow int32), inputs whose
 * exact result needs more than 32 bits (an accumulator, a left-shifted value) are outside the
 * contract. The kernels stay free of undefined behaviour there (they wrap or saturate), but the
 * values are unspecified.
 *
 * Two implementations of the conv inner loops: portable C, and (when the compiler defines
 * __ARM_FEATURE_DSP, e.g. Cortex-M4/M7/M33, and TT_S8_PORTABLE is not defined) SMLAD/SXTB16
 * loops as CMSIS-NN's. Both give identical results; the scratch sizes are the same in both, so a
 * host-side memory planner gets the device's figure. The fp32 backward kernels likewise add their
 * products with VMLA.F32 on an FPv4/FPv5 FPU (not fused: the same two roundings as `acc + a * b`,
 * which the portable build writes), in the summation order docs/int8.md section 11 specifies.
 */
#ifndef TT_KERNELS_S8_H
#define TT_KERNELS_S8_H

#include <stdint.h>

#include "tt/tt_kernels_f32.h" /* tt_conv2d_params, tt_pool2d_params */
#include "tt/tt_status.h"

/* Caller-owned working memory: buf must be 4-byte aligned and hold size bytes. */
typedef struct {
    void *buf;
    int32_t size;
} tt_scratch;

/* Requantization of a conv's int32 accumulator to int8 (per output channel):
 *   y = clamp(MultiplyByQuantizedMultiplier(acc, mult[o], shift[o]) + y_zero, act_min, act_max)
 * Zero points in [-128, 127]; -128 <= act_min <= act_max <= 127; shift[o] in [-31, 30] (left
 * shift when positive); mult[o] any int32 (QuantizeMultiplier gives [2^30, 2^31) or 0).
 *
 * mask (optional, NULL: none) receives the clamp mask the backward needs (the paper's 1-bit
 * mask): bit i % 8 of byte i / 8, i the output's C x H x W index, set where act_min <= the
 * value before the clamp <= act_max. ceil(out elements / 8) bytes; the bits past the last
 * element are unspecified. */
typedef struct {
    int32_t x_zero;
    int32_t y_zero;
    int32_t act_min;
    int32_t act_max;
    const int32_t *mult;  /* out_c entries */
    const int32_t *shift; /* out_c entries */
    uint8_t *mask;
} tt_s8_requant;

/* Trainable rows standing in for some output channels of a frozen weight (the sparse update):
 * output channel channels[j] uses rows[j] (a whole row: I/groups x KH x KW) instead of its row of
 * w. channels strictly increasing in [0, out_c); count 0 (or a NULL tt_row_subst) substitutes
 * nothing. */
typedef struct {
    const int8_t *rows;
    const int32_t *channels;
    int32_t count;
} tt_row_subst;

/* Which kernels this build runs: "dsp" (SMLAD inner loops) or "portable". */
const char *tt_kernels_s8_variant(void);

/* --- forward ------------------------------------------------------------------------------- */

/* Bytes of scratch tt_conv2d_s8 needs for p (two im2col columns of int16); negative (TT_ERR_ARG)
 * when p is invalid. The same on every target. */
int32_t tt_conv2d_s8_get_buffer_size(const tt_conv2d_params *p);
/* Per-channel int8 convolution, TFLite ConvPerChannel (any groups):
 *   acc[o] = bias[o] + sum w[o,i,ky,kx] * (x[i, ...] - x_zero)   (out-of-image taps add 0)
 * then tt_s8_requant. bias may be NULL (0); sub (NULL: none) replaces rows of w. */
tt_status tt_conv2d_s8(const tt_scratch *ctx, const tt_conv2d_params *p, const tt_s8_requant *q,
                       const int8_t *x, const int8_t *w, const tt_row_subst *sub,
                       const int32_t *bias, int8_t *y);

/* Bytes of scratch tt_depthwise_conv2d_s8 needs for p (2 k_h padded input rows and one input
 * channel's weights, as int16: 2 * (2 k_h (in_w + 2 pad_w + 2) + multiplier k_h (k_w + 1)),
 * about), negative when p is invalid or not depthwise. The same on every target. */
int32_t tt_depthwise_conv2d_s8_get_buffer_size(const tt_conv2d_params *p);
/* tt_conv2d_s8 for groups == in_c (out_c = in_c * channel multiplier; output channel o reads input
 * channel o / multiplier), TFLite DepthwiseConvPerChannel. y may be x (in place, TinyEngine's
 * trick; host/tinyhost/compiler/inplace.py) when out_c == in_c, out_h == in_h, out_w == in_w and
 * stride_h == 1: every input row is copied into the scratch's ring before the output row with the
 * same index is written, and output channel c writes only plane c. */
tt_status tt_depthwise_conv2d_s8(const tt_scratch *ctx, const tt_conv2d_params *p,
                                 const tt_s8_requant *q, const int8_t *x, const int8_t *w,
                                 const tt_row_subst *sub, const int32_t *bias, int8_t *y);

/* A groups-1 conv (an inverted bottleneck's 1x1 expand conv) and the depthwise conv that reads
 * its output, fused: y = depthwise(conv(x)) bit for bit as the two kernels above give it (the
 * intermediate requantized and clamped by pw_q, read with dw_q->x_zero == pw_q->y_zero), but the
 * intermediate is made one channel at a time in the scratch, never whole. dw.in_c == pw.out_c
 * and dw.in_h x dw.in_w == pw.out_h x pw.out_w. No clamp masks (both q->mask NULL) and no row
 * substitution: the compiler fuses only frozen layers outside the backward pass. */
typedef struct {
    tt_conv2d_params pw; /* groups 1 */
    tt_conv2d_params dw; /* groups == in_c */
} tt_pw_dw_conv2d_params;
/* Bytes of scratch: one intermediate plane (rounded up to 4) plus the largest of the two kernels'
 * scratch for one channel and a row of int32 accumulators (4 pw.out_w bytes); negative when p is
 * invalid. The same on every target. */
int32_t tt_pw_dw_conv2d_s8_get_buffer_size(const tt_pw_dw_conv2d_params *p);
tt_status tt_pw_dw_conv2d_s8(const tt_scratch *ctx, const tt_pw_dw_conv2d_params *p,
                             const tt_s8_requant *pw_q, const int8_t *pw_w, const int32_t *pw_bias,
                             const tt_s8_requant *dw_q, const int8_t *dw_w, const int32_t *dw_bias,
                             const int8_t *x, int8_t *y);

/* A frozen stem streamed a row at a time: conv c (any geometry), the depthwise conv d reading
 * its output (groups == in_c) and the 1x1 conv p (stride 1, no padding, groups 1) reading d's:
 * y = p(d(c(x))) bit for bit as the three kernels give it, neither intermediate stored whole
 * (ops/conv_dw_pw_s8.c: a ring of d.k_h rows of c's output, bands with their padding written out).
 * cq->y_zero == dq->x_zero, dq->y_zero == pq->x_zero; no masks, no row substitution. */
typedef struct {
    tt_conv2d_params c, d, p;
} tt_conv_dw_pw_params;
/* Bytes of scratch (the ring, the bands, one row of each later stage, the kernels' own scratch
 * for their band geometries); negative when p is invalid. The same on every target. */
int32_t tt_conv_dw_pw_s8_get_buffer_size(const tt_conv_dw_pw_params *p);
tt_status tt_conv_dw_pw_s8(const tt_scratch *ctx, const tt_conv_dw_pw_params *p,
                           const tt_s8_requant *cq, const int8_t *cw, const int32_t *cbias,
                           const tt_s8_requant *dq, const int8_t *dw, const int32_t *dbias,
                           const tt_s8_requant *pq, const int8_t *pw, const int32_t *pbias,
                           const int8_t *x, int8_t *y);

/* int8 add, TFLite AddFunc with tflite-micro's CalculateOpDataAdd parameters (left_shift = 20,
 * multipliers < 1 so every shift is in [-31, 0]; left_shift in [0, 30]):
 *   v_i = MBQM((x_i - x_i_zero) * 2^left_shift, x_i_mult, x_i_shift)
 *   y   = clamp(MBQM(v_1 + v_2, y_mult, y_shift) + y_zero, act_min, act_max)
 * Multipliers in [0, INT32_MAX]. mask (optional) as in tt_s8_requant. */
typedef struct {
    int32_t x1_zero, x2_zero, y_zero;
    int32_t left_shift;
    int32_t x1_mult, x1_shift;
    int32_t x2_mult, x2_shift;
    int32_t y_mult, y_shift;
    int32_t act_min, act_max;
    uint8_t *mask;
} tt_add_s8_params;
/* Elementwise over size elements; y may alias x1 or x2. */
tt_status tt_add_s8(const tt_add_s8_params *p, int32_t size, const int8_t *x1, const int8_t *x2,
                    int8_t *y);

/* int8 average pool, input and output sharing one quantization (zero point x_zero, which is also
 * the padding value): y = clamp(round_half_away(window sum / (k_h*k_w)), act_min, act_max), the
 * divisor counting padding (count_include_pad). Window at most 2^23 taps. */
tt_status tt_avgpool2d_s8(const tt_pool2d_params *p, int32_t x_zero, int32_t act_min,
                          int32_t act_max, const int8_t *x, int8_t *y);

/* y = (x - zero) * scale in float; scale positive and finite. */
tt_status tt_dequantize_s8_f32(int32_t size, const int8_t *x, float scale, int32_t zero, float *y);
/* y = clamp(round_half_away(x / scale) + zero, -128, 127), the division in float (TFLite
 * AffineQuantize). Infinities saturate; a NaN anywhere in x is TT_ERR_ARG. */
tt_status tt_quantize_f32_s8(int32_t size, const float *x, float scale, int32_t zero, int8_t *y);

/* --- backward (fp32) ----------------------------------------------------------------------- */

/* Gradient through the clamp and the requantization, to the int32 accumulator:
 *   dz[c][i] = (bit c * plane + i of mask ? dy[c][i] : 0) * eff_scale[c]
 * over channels x plane elements, mask as the forward wrote it (tt_s8_requant). dz may alias dy. */
tt_status tt_requant_grad_f32(int32_t channels, int32_t plane, const uint8_t *mask,
                              const float *dy, const float *eff_scale, float *dz);

/* dx = the transposed convolution of dz with the int8 weights as floats (any groups), w with the
 * rows of sub (NULL: none) substituted, as the forward used them. */
tt_status tt_conv2d_s8_grad_input_f32(const tt_conv2d_params *p, const float *dz, const int8_t *w,
                                      const tt_row_subst *sub, float *dx);

/* A selection of weight rows (the sparse update): count distinct indices into axis 0 (output
 * channels) or axis 1 (input channels of a groups == 1 weight). index NULL (count ignored) means
 * every row of that axis. */
typedef struct {
    const int32_t *index;
    int32_t count;
    int32_t axis;
} tt_channel_select;

/* (dw, db) with respect to the integer weights and bias:
 *   dw[o,i,ky,kx] = sum_p dz[o,p] * (x - x_zero)[window]      (out-of-image taps 0)
 *   db[o]         = sum_p dz[o,p]                              (every channel; db may be NULL)
 * sel (NULL: all) picks the rows of dw, in its order: axis 0 -> dw is count x I/g x KH x KW,
 * axis 1 (groups == 1) -> O x count x KH x KW. dw NULL (then x may be NULL): db only. */
tt_status tt_conv2d_s8_grad_weight_f32(const tt_conv2d_params *p, const tt_channel_select *sel,
                                       const float *dz, const int8_t *x, int32_t x_zero, float *dw,
                                       float *db);

/* tt_conv2d_s8_grad_input_f32 of a depthwise conv with multiplier 1 (groups == in_c == out_c),
 * a channel at a time through ctx (at least 4 in_h in_w bytes: one f32 input plane), so dx may
 * be dz when the output has the input's size (in place). Bit for bit the general kernel's dx. */
tt_status tt_depthwise_conv2d_s8_grad_input_f32(const tt_scratch *ctx, const tt_conv2d_params *p,
                                                const float *dz, const int8_t *w,
                                                const tt_row_subst *sub, float *dx);

/* One row of that dw: output channel oc's I/g x KH x KW gradient, into row (same sums, same
 * order). Arguments as checked by tt_conv2d_s8_grad_weight_f32. */
void tt_conv2d_s8_grad_weight_row_f32(const tt_conv2d_params *p, const float *dz, const int8_t *x,
                                      int32_t x_zero, int32_t oc, float *row);

/* The QAS update of the trained rows straight from dz, one row at a time: each selected row's
 * weight gradient is made in row_buf (I/g x KH x KW floats) and applied at once by the update
 * rule (master NULL: rule round, tt_update_s8_round_f32; else tt_update_s8_master_f32), so no
 * whole weight gradient exists. w (and master) hold the selected rows (count x I/g x KH x KW, in
 * sel's order; sel NULL: all out_c), qas one scale per selected row. db (may be NULL) as
 * tt_conv2d_s8_grad_weight_f32's. Bit for bit that op followed by the update. */
tt_status tt_conv2d_s8_sgd_f32(const tt_conv2d_params *p, const tt_channel_select *sel,
                               const float *dz, const int8_t *x, int32_t x_zero, int8_t *w,
                               float *master, const float *qas, float lr, float *db,
                               float *row_buf);

/* (dx1, dx2) = (g * f32(s1/sy), g * f32(s2/sy)), g = dy where the add's clamp mask (NULL: none)
 * has its bit set, else 0; each factor divided in double and rounded once. dx1 or dx2 may be NULL
 * (not wanted) or alias dy. */
tt_status tt_add_s8_grad_f32(int32_t size, const uint8_t *mask, const float *dy, float s1,
                             float s2, float sy, float *dx1, float *dx2);

/* dx = dy * scale (dequantize's gradient); dx may alias dy. */
tt_status tt_dequantize_grad_f32(int32_t size, const float *dy, float scale, float *dx);

/* y = a + b elementwise (ADD_F32, gradient accumulation); y may alias a or b. */
tt_status tt_add_f32(int32_t size, const float *a, const float *b, float *y);

/* --- QAS updates --------------------------------------------------------------------------- */

/* A weight as out_c x in_c x k (conv: I/groups and KH*KW; linear: I and 1) and the selected rows
 * (sel NULL: every output channel). dw holds only the selected rows, in sel's order. qas has one
 * entry per output channel (out_c); the step is u = lr * (dw * qas[o]) in float. */
typedef struct {
    int32_t out_c;
    int32_t in_c;
    int32_t k;
} tt_weight_shape;

/* Rule A, in place on the selected rows of w: w <- clip(rint(w - u), -127, 127) (halves to even). */
tt_status tt_update_s8_round_f32(const tt_weight_shape *s, const tt_channel_select *sel, int8_t *w,
                                 const float *dw, float lr, const float *qas);
/* Rule B, a float master of the selected rows (shaped as dw): master <- master - u (no clip, no
 * rounding), and the selected rows of w <- clip(rint(master), -127, 127). */
tt_status tt_update_s8_master_f32(const tt_weight_shape *s, const tt_channel_select *sel,
                                  float *master, int8_t *w, const float *dw, float lr,
                                  const float *qas);
/* Bias update, u = lr * (db * qas) in float. master NULL: b <- sat32(b - rint(u)) (the step is
 * rounded, not the sum). Otherwise master <- master - u and b = sat32(rint(master)). */
tt_status tt_update_s32_f32(int32_t size, int32_t *b, float *master, const float *db, float lr,
                            const float *qas);

#endif
