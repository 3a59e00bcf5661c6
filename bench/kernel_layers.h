/*
 * The layer shapes the kernel benches time (MCUNet-like; bench/kernels_s8.c runs ours,
 * bench/cmsis_nn_s8.c CMSIS-NN's on the same shapes), and the random data and allocation both
 * use, so the two see the same inputs.
 */
#ifndef TT_BENCH_KERNEL_LAYERS_H
#define TT_BENCH_KERNEL_LAYERS_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "tt/tt_kernels_s8.h"

typedef struct {
    const char *name;
    int depthwise;
    tt_conv2d_params p;
} layer;

#define OUT(n, k, s, pad) (((n) + 2 * (pad) - (k)) / (s) + 1)
#define CONV(name, ic, h, w, oc, k, s, pad)                                                      \
    {name, 0, {ic, h, w, oc, OUT(h, k, s, pad), OUT(w, k, s, pad), k, k, s, s, pad, pad, 1}}
#define DW(name, c, h, w, k, s, pad)                                                             \
    {name, 1, {c, h, w, c, OUT(h, k, s, pad), OUT(w, k, s, pad), k, k, s, s, pad, pad, c}}

static const layer LAYERS[] = {
    CONV("conv3x3_s2_3to16_32x32", 3, 32, 32, 16, 3, 2, 1), /* a stem */
    CONV("conv3x3_16to16_16x16", 16, 16, 16, 16, 3, 1, 1),
    CONV("pointwise_16to48_16x16", 16, 16, 16, 48, 1, 1, 0), /* inverted-bottleneck expand */
    CONV("pointwise_48to16_16x16", 48, 16, 16, 16, 1, 1, 0), /* project */
    CONV("pointwise_96to160_4x4", 96, 4, 4, 160, 1, 1, 0),
    CONV("pointwise_320to10_1x1", 320, 1, 1, 10, 1, 1, 0),   /* a classifier */
    DW("depthwise3x3_48_16x16", 48, 16, 16, 3, 1, 1),
    DW("depthwise3x3_s2_48_16x16", 48, 16, 16, 3, 2, 1),
    DW("depthwise5x5_96_8x8", 96, 8, 8, 5, 1, 2),
    DW("depthwise7x7_96_8x8", 96, 8, 8, 7, 1, 3),
    DW("depthwise7x7_s2_48_16x16", 48, 16, 16, 7, 2, 3),
};
#define N_LAYERS (sizeof LAYERS / sizeof LAYERS[0])

static uint32_t rng_state = 12345u;

static uint32_t rng(void)
{
    rng_state = rng_state * 1664525u + 1013904223u;
    return rng_state >> 8;
}

static void *xmalloc(size_t n)
{
    void *p = malloc(n > 0 ? n : 1);
    if (p == NULL) {
        printf("out of memory (%u bytes)\n", (unsigned)n);
        exit(2);
    }
    return p;
}

#endif
