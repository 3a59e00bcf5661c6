/* Gradient of the int8 conv with respect to its input, carried in float: the transposed
 * convolution of dz with the int8 weights as floats (as tt_conv2d_grad_input_f32), with the
 * sparse update's trainable rows standing in for theirs.
 *
 * Summation order (part of the specification: kernels_s8.conv2d_s8_grad_input sums the same way,
 * so device and reference train bit-identically): each dx element accumulates its group's output
 * channels in ascending order and, per channel, its output positions in ascending order, starting
 * from +0. The general path loops the kernel taps (ky, kx) in descending order, which visits them
 * so, and runs along an output row with no bounds tests. The 1x1 stride-1 convs (most of a
 * MobileNet's backward) take a tiled path instead: a 4x4 tile of (input channel, position) sums
 * in registers while the output channels stream past in ascending order (GI_CHUNK at a time,
 * their weights converted to float once per pass; a pass continues from the partial sums the
 * previous one stored), each product added with one multiply-accumulate (tt_f32_mla), the same
 * roundings in the same order. */
#include <stddef.h>
#include <string.h>

#include "ops_common_s8.h"
#include "tt/tt_op.h"

/* Output channels per pass of the 1x1 path: their weights for four input channels are converted
 * to float once per pass (on the stack: GI_CHUNK x 4 floats), not once per tile. */
#define GI_CHUNK 32

/* The 4x4 tile dx[i][j] (i, j < 4; rows hw apart) over n_oc output channels in ascending order:
 * dz their first channel's planes (hw apart) at the tile's first position, wf their weights
 * for the tile's four input channels (4 per channel). The sums start from +0 (first) or from the
 * partial sums the previous pass stored in dx: the same additions in the same order. */
static void tile_4x4(const float *dz, int32_t hw, int32_t n_oc, const float *wf, int first,
                     float *dx)
{
    float *x0 = dx, *x1 = dx + hw, *x2 = dx + 2 * hw, *x3 = dx + 3 * hw;
    float a00 = 0.0f, a01 = 0.0f, a02 = 0.0f, a03 = 0.0f;
    float a10 = 0.0f, a11 = 0.0f, a12 = 0.0f, a13 = 0.0f;
    float a20 = 0.0f, a21 = 0.0f, a22 = 0.0f, a23 = 0.0f;
    float a30 = 0.0f, a31 = 0.0f, a32 = 0.0f, a33 = 0.0f;
    if (!first) {
        a00 = x0[0], a01 = x0[1], a02 = x0[2], a03 = x0[3];
        a10 = x1[0], a11 = x1[1], a12 = x1[2], a13 = x1[3];
        a20 = x2[0], a21 = x2[1], a22 = x2[2], a23 = x2[3];
        a30 = x3[0], a31 = x3[1], a32 = x3[2], a33 = x3[3];
    }
    const float *d = dz;
    for (const float *wr = wf; wr != wf + 4 * n_oc; wr += 4, d += hw) {
        const float d0 = d[0], d1 = d[1], d2 = d[2], d3 = d[3];
        const float w0 = wr[0], w1 = wr[1], w2 = wr[2], w3 = wr[3];
        a00 = tt_f32_mla(a00, d0, w0);
        a01 = tt_f32_mla(a01, d1, w0);
        a02 = tt_f32_mla(a02, d2, w0);
        a03 = tt_f32_mla(a03, d3, w0);
        a10 = tt_f32_mla(a10, d0, w1);
        a11 = tt_f32_mla(a11, d1, w1);
        a12 = tt_f32_mla(a12, d2, w1);
        a13 = tt_f32_mla(a13, d3, w1);
        a20 = tt_f32_mla(a20, d0, w2);
        a21 = tt_f32_mla(a21, d1, w2);
        a22 = tt_f32_mla(a22, d2, w2);
        a23 = tt_f32_mla(a23, d3, w2);
        a30 = tt_f32_mla(a30, d0, w3);
        a31 = tt_f32_mla(a31, d1, w3);
        a32 = tt_f32_mla(a32, d2, w3);
        a33 = tt_f32_mla(a33, d3, w3);
    }
    x0[0] = a00, x0[1] = a01, x0[2] = a02, x0[3] = a03;
    x1[0] = a10, x1[1] = a11, x1[2] = a12, x1[3] = a13;
    x2[0] = a20, x2[1] = a21, x2[2] = a22, x2[3] = a23;
    x3[0] = a30, x3[1] = a31, x3[2] = a32, x3[3] = a33;
}

/* A smaller tile at the edges: ni input channels by nq positions (each at most 4). */
static void tile_edge(const float *dz, int32_t hw, int32_t n_oc, const float *wf, int first,
                      int32_t ni, int32_t nq, float *dx)
{
    float acc[4][4] = {{0.0f}};
    for (int32_t i = 0; i < ni && !first; i++) {
        for (int32_t j = 0; j < nq; j++) {
            acc[i][j] = dx[i * hw + j];
        }
    }
    const float *d = dz;
    for (int32_t o = 0; o < n_oc; o++, d += hw) {
        for (int32_t i = 0; i < ni; i++) {
            const float wv = wf[4 * o + i];
            for (int32_t j = 0; j < nq; j++) {
                acc[i][j] = tt_f32_mla(acc[i][j], d[j], wv);
            }
        }
    }
    for (int32_t i = 0; i < ni; i++) {
        for (int32_t j = 0; j < nq; j++) {
            dx[i * hw + j] = acc[i][j];
        }
    }
}

/* dx of a 1x1, stride-1, unpadded conv: dx[ic][q] = sum over the group's oc of dz[oc][q] *
 * w[oc][ic], four input channels at a time, their output channels GI_CHUNK per pass (weights
 * converted once per pass), tile by tile. */
static void grad_input_1x1(const tt_conv2d_params *p, const float *dz, const int8_t *w,
                           const tt_row_subst *sub, float *dx)
{
    const int32_t cin_g = p->in_c / p->groups, cout_g = p->out_c / p->groups;
    const int32_t hw = p->in_h * p->in_w;
    float wf[4 * GI_CHUNK];
    for (int32_t g = 0; g < p->groups; g++) {
        float *dx_g = dx + g * cin_g * hw;
        for (int32_t i = 0; i < cin_g; i += 4) {
            const int32_t ni = cin_g - i < 4 ? cin_g - i : 4;
            for (int32_t c0 = 0; c0 < cout_g; c0 += GI_CHUNK) {
                const int32_t n_oc = cout_g - c0 < GI_CHUNK ? cout_g - c0 : GI_CHUNK;
                const int32_t oc0 = g * cout_g + c0;
                tt_row_cursor rows = tt_row_cursor_make(w, cin_g, sub, oc0);
                for (int32_t o = 0; o < n_oc; o++) {
                    const int8_t *r = tt_row_cursor_at(&rows, oc0 + o) + i;
                    for (int32_t t = 0; t < ni; t++) {
                        wf[4 * o + t] = (float)r[t];
                    }
                }
                const float *dz_c = dz + oc0 * hw;
                for (int32_t q = 0; q < hw; q += 4) {
                    const int32_t nq = hw - q < 4 ? hw - q : 4;
                    if (ni == 4 && nq == 4) {
                        tile_4x4(dz_c + q, hw, n_oc, wf, c0 == 0, dx_g + i * hw + q);
                    } else {
                        tile_edge(dz_c + q, hw, n_oc, wf, c0 == 0, ni, nq, dx_g + i * hw + q);
                    }
                }
            }
        }
    }
}

tt_status tt_conv2d_s8_grad_input_f32(const tt_conv2d_params *p, const float *dz, const int8_t *w,
                                      const tt_row_subst *sub, float *dx)
{
    if (!tt_conv2d_params_ok(p) || dz == NULL || w == NULL || dx == NULL ||
        !tt_row_subst_ok(sub, p->out_c)) {
        return TT_ERR_ARG;
    }
    const int32_t cin_g = p->in_c / p->groups;
    const int32_t cout_g = p->out_c / p->groups;
    const int32_t ksize = p->k_h * p->k_w;
    const int32_t in_hw = p->in_h * p->in_w, out_hw = p->out_h * p->out_w;
    const int32_t sw = p->stride_w;

    if (ksize == 1 && p->stride_h == 1 && sw == 1 && p->pad_h == 0 && p->pad_w == 0) {
        grad_input_1x1(p, dz, w, sub, dx);
        return TT_OK;
    }
    memset(dx, 0, (size_t)p->in_c * (size_t)in_hw * sizeof(float));
    tt_row_cursor rows = tt_row_cursor_make(w, cin_g * ksize, sub, 0);
    for (int32_t oc = 0; oc < p->out_c; oc++) {
        const int32_t ic0 = (oc / cout_g) * cin_g;
        const int8_t *w_oc = tt_row_cursor_at(&rows, oc);
        const float *dz_oc = dz + oc * out_hw;
        for (int32_t icg = 0; icg < cin_g; icg++) {
            float *dx_c = dx + (ic0 + icg) * in_hw;
            const int8_t *w_k = w_oc + icg * ksize;
            for (int32_t ky = p->k_h - 1; ky >= 0; ky--) {
                int32_t oy0 = 0;
                const int32_t n_oy = tt_valid_outputs(p->out_h, p->in_h, p->stride_h, p->pad_h, ky,
                                                      &oy0);
                for (int32_t kx = p->k_w - 1; kx >= 0; kx--) {
                    int32_t ox0 = 0;
                    const int32_t n_ox = tt_valid_outputs(p->out_w, p->in_w, sw, p->pad_w, kx,
                                                          &ox0);
                    const float wv = (float)w_k[ky * p->k_w + kx];
                    for (int32_t oy = oy0; oy < oy0 + n_oy; oy++) {
                        const int32_t iy = oy * p->stride_h - p->pad_h + ky;
                        float *dx_row = dx_c + iy * p->in_w + (ox0 * sw - p->pad_w + kx);
                        const float *dz_row = dz_oc + oy * p->out_w + ox0;
                        for (int32_t n = 0; n < n_ox; n++) {
                            dx_row[n * sw] = tt_f32_mla(dx_row[n * sw], dz_row[n], wv);
                        }
                    }
                }
            }
        }
    }
    return TT_OK;
}

/* --- the CONV2D_S8_GRAD_INPUT_F32 op: plan check and run (tt/tt_op.h) --- */

tt_status tt_op_conv2d_s8_grad_input_f32_check(const tt_op_ctx *c, tt_error *err)
{
    const tt_conv2d_params p = TT_CONV2D_ATTRS_AT(c->a + TT_ATTR_CONV2D_S8_GRAD_INPUT_F32_IN_C);
    const int32_t n_rows = c->a[TT_ATTR_CONV2D_S8_GRAD_INPUT_F32_N_ROWS];
    uint64_t x, y, w;
    if (!tt_conv_numel(&p, &x, &y, &w) || n_rows > p.out_c) {
        return tt_op_impossible(c, err);
    }
    const uint64_t numel[] = {[TT_OPND_CONV2D_S8_GRAD_INPUT_F32_DZ] = y,
                              [TT_OPND_CONV2D_S8_GRAD_INPUT_F32_W] = w,
                              [TT_OPND_CONV2D_S8_GRAD_INPUT_F32_W_ROWS] = (uint64_t)n_rows *
                                                                          (w / (uint64_t)p.out_c),
                              [TT_OPND_CONV2D_S8_GRAD_INPUT_F32_CHANNELS] = (uint64_t)n_rows,
                              [TT_OPND_CONV2D_S8_GRAD_INPUT_F32_DX] = x};
    const tt_status st = tt_op_check_operands(c, numel, err);
    if (st != TT_OK) {
        return st;
    }
    if (tt_opnd_present(c, TT_OPND_CONV2D_S8_GRAD_INPUT_F32_W_ROWS) != (n_rows > 0) ||
        tt_opnd_present(c, TT_OPND_CONV2D_S8_GRAD_INPUT_F32_CHANNELS) != (n_rows > 0)) {
        return tt_op_refuse(c, "substituted weight rows, their channels and n_rows disagree", err);
    }
    return tt_channels_ok(c, TT_OPND_CONV2D_S8_GRAD_INPUT_F32_CHANNELS, p.out_c)
               ? TT_OK
               : tt_op_refuse(c, "channel indices are not constant, increasing and below out_c",
                              err);
}

tt_status tt_op_conv2d_s8_grad_input_f32_run(const tt_op_ctx *c, float lr)
{
    (void)lr;
    const tt_conv2d_params p = TT_CONV2D_ATTRS_AT(c->a + TT_ATTR_CONV2D_S8_GRAD_INPUT_F32_IN_C);
    const tt_row_subst sub = {tt_opnd_s8(c, TT_OPND_CONV2D_S8_GRAD_INPUT_F32_W_ROWS),
                              tt_opnd_s32(c, TT_OPND_CONV2D_S8_GRAD_INPUT_F32_CHANNELS),
                              c->a[TT_ATTR_CONV2D_S8_GRAD_INPUT_F32_N_ROWS]};
    return tt_conv2d_s8_grad_input_f32(&p, tt_opnd_f32(c, TT_OPND_CONV2D_S8_GRAD_INPUT_F32_DZ),
                                       tt_opnd_s8(c, TT_OPND_CONV2D_S8_GRAD_INPUT_F32_W), &sub,
                                       tt_opnd_f32(c, TT_OPND_CONV2D_S8_GRAD_INPUT_F32_DX));
}
