/*
 * CMSIS-NN's int8 convolutions on the layer shapes of bench/kernels_s8.c (kernel_layers.h), timed
 * the same way on the Cortex-M4F under QEMU (-icount shift=0: instructions), for bench/kernels.py
 * --cmsis-nn DIR. Built only against a CMSIS-NN tree outside this repository
 * (firmware/ports/baremetal/kernel_tests.cmake, CMSIS_NN_DIR).
 *
 * CMSIS-NN is NHWC (ours CHW) and its weights OHWI; the MACs, the requantization and the
 * clamping are the same work, so instructions per MAC compare. The functions, as the issue
 * names them: arm_convolve_s8 (k > 1), arm_convolve_1x1_s8_fast (1x1, stride 1, no padding),
 * arm_depthwise_conv_s8 (the generic depthwise) and arm_depthwise_conv_wrapper_s8 (its pick on a
 * DSP core: the 3x3 fast path for 3x3 with padding <= 1, else arm_depthwise_conv_s8_opt).
 *
 * One line per layer and function: "cmsis NAME FUNCTION MACS COST".
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "arm_nnfunctions.h"
#include "cortex_m4.h"
#include "kernel_layers.h"

typedef struct {
    cmsis_nn_dims in, filter, bias, out;
    cmsis_nn_per_channel_quant_params q;
    int8_t *x, *w, *y;
    int32_t *b;
    cmsis_nn_activation act;
    int32_t macs;
} tensors;

static void make(const layer *l, tensors *t)
{
    const tt_conv2d_params *p = &l->p;
    t->in = (cmsis_nn_dims){1, p->in_h, p->in_w, p->in_c};
    t->out = (cmsis_nn_dims){1, p->out_h, p->out_w, p->out_c};
    t->filter = l->depthwise ? (cmsis_nn_dims){1, p->k_h, p->k_w, p->out_c}
                             : (cmsis_nn_dims){p->out_c, p->k_h, p->k_w, p->in_c};
    t->bias = (cmsis_nn_dims){1, 1, 1, p->out_c};
    const int32_t nx = p->in_c * p->in_h * p->in_w, ny = p->out_c * p->out_h * p->out_w;
    const int32_t k = (l->depthwise ? 1 : p->in_c) * p->k_h * p->k_w;
    t->macs = ny * k;
    t->x = xmalloc((size_t)nx);
    t->w = xmalloc((size_t)(p->out_c * k));
    t->y = xmalloc((size_t)ny);
    t->b = xmalloc((size_t)p->out_c * 4);
    t->q.multiplier = xmalloc((size_t)p->out_c * 4);
    t->q.shift = xmalloc((size_t)p->out_c * 4);
    for (int32_t i = 0; i < nx; i++) {
        t->x[i] = (int8_t)(rng() & 0xFF);
    }
    for (int32_t i = 0; i < p->out_c * k; i++) {
        t->w[i] = (int8_t)((int32_t)(rng() % 255u) - 127);
    }
    for (int32_t o = 0; o < p->out_c; o++) {
        t->b[o] = (int32_t)(rng() % 20001u) - 10000;
        t->q.multiplier[o] = (int32_t)(0x40000000u + (rng() & 0x3FFFFFFFu));
        t->q.shift[o] = -9 - (int32_t)(rng() % 3u);
    }
    t->act = (cmsis_nn_activation){-128, 127};
}

static void release(tensors *t)
{
    free(t->x);
    free(t->w);
    free(t->y);
    free(t->b);
    free(t->q.multiplier);
    free(t->q.shift);
}

static void report(const layer *l, const char *fn, const tensors *t, uint32_t cost,
                   arm_cmsis_nn_status st)
{
    if (st != ARM_CMSIS_NN_SUCCESS) {
        printf("cmsis %s %s refused (%d)\n", l->name, fn, (int)st);
        return;
    }
    printf("cmsis %s %s %ld %lu\n", l->name, fn, (long)t->macs, (unsigned long)cost);
}

static void run_conv(const layer *l, tensors *t)
{
    const tt_conv2d_params *p = &l->p;
    cmsis_nn_conv_params cp = {3, -5, {p->stride_w, p->stride_h}, {p->pad_w, p->pad_h}, {1, 1},
                               t->act};
    int one_by_one = p->k_h == 1 && p->k_w == 1 && p->stride_h == 1 && p->stride_w == 1 &&
                     p->pad_h == 0 && p->pad_w == 0;
    int32_t need = one_by_one ? arm_convolve_1x1_s8_fast_get_buffer_size(&t->in)
                              : arm_convolve_s8_get_buffer_size(&t->in, &t->filter);
    cmsis_nn_context ctx = {xmalloc((size_t)need + 4), need};
    uint32_t t0 = cost_counter_read(NULL);
    arm_cmsis_nn_status st =
        one_by_one ? arm_convolve_1x1_s8_fast(&ctx, &cp, &t->q, &t->in, t->x, &t->filter, t->w,
                                              &t->bias, t->b, &t->out, t->y)
                   : arm_convolve_s8(&ctx, &cp, &t->q, &t->in, t->x, &t->filter, t->w, &t->bias,
                                     t->b, NULL, &t->out, t->y);
    uint32_t t1 = cost_counter_read(NULL);
    report(l, one_by_one ? "arm_convolve_1x1_s8_fast" : "arm_convolve_s8", t, t1 - t0, st);
    free(ctx.buf);
}

static void run_depthwise(const layer *l, tensors *t)
{
    const tt_conv2d_params *p = &l->p;
    cmsis_nn_dw_conv_params dp = {3, -5, 1, {p->stride_w, p->stride_h}, {p->pad_w, p->pad_h},
                                  {1, 1}, t->act};
    int32_t need = arm_depthwise_conv_wrapper_s8_get_buffer_size(&dp, &t->in, &t->filter, &t->out);
    cmsis_nn_context ctx = {xmalloc((size_t)need + 4), need};
    uint32_t t0 = cost_counter_read(NULL);
    arm_cmsis_nn_status st = arm_depthwise_conv_s8(&ctx, &dp, &t->q, &t->in, t->x, &t->filter,
                                                   t->w, &t->bias, t->b, &t->out, t->y);
    uint32_t t1 = cost_counter_read(NULL);
    report(l, "arm_depthwise_conv_s8", t, t1 - t0, st);
    t0 = cost_counter_read(NULL);
    st = arm_depthwise_conv_wrapper_s8(&ctx, &dp, &t->q, &t->in, t->x, &t->filter, t->w,
                                       &t->bias, t->b, &t->out, t->y);
    t1 = cost_counter_read(NULL);
    int fast3x3 = p->k_h == 3 && p->k_w == 3 && p->pad_h <= 1 && p->pad_w <= 1;
    report(l, fast3x3 ? "wrapper:arm_depthwise_conv_3x3_s8" : "wrapper:arm_depthwise_conv_s8_opt",
           t, t1 - t0, st);
    free(ctx.buf);
}

int main(void)
{
    printf("bench_cmsis_nn_s8: cost unit %s\n", cost_counter_unit());
    for (size_t i = 0; i < N_LAYERS; i++) {
        tensors t;
        make(&LAYERS[i], &t);
        if (LAYERS[i].depthwise) {
            run_depthwise(&LAYERS[i], &t);
        } else {
            run_conv(&LAYERS[i], &t);
        }
        release(&t);
    }
    return 0;
}
