/*
 * Cost of the int8 conv kernels on MCUNet-like layer shapes; bench/kernels.py runs it and prints
 * the table.
 *
 * On the Cortex-M4F under QEMU (firmware/ports/baremetal/kernel_tests.cmake builds it, DSP and
 * portable): each call is timed with the port's SysTick cost counter, which counts instructions
 * under -icount shift=0 (exact to +-40). On the host it only runs the kernels (callgrind counts).
 *
 *   bench_kernels_s8 [LAYER]      all layers, or the one named
 *
 * One line per layer: "layer NAME MACS COST CHECKSUM" (COST 0 on the host; CHECKSUM, of the
 * output, must agree between builds).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernel_layers.h"
#include "tt/tt_kernels_s8.h"

#if defined(__arm__)
#include "cortex_m4.h"
static uint32_t cost_now(void)
{
    return cost_counter_read(NULL);
}
static const char *cost_unit(void)
{
    return cost_counter_unit();
}
#else
static uint32_t cost_now(void)
{
    return 0;
}
static const char *cost_unit(void)
{
    return "none";
}
#endif

static int run(const layer *l)
{
    const tt_conv2d_params *p = &l->p;
    const int32_t nx = p->in_c * p->in_h * p->in_w;
    const int32_t ny = p->out_c * p->out_h * p->out_w;
    const int32_t k = (p->in_c / p->groups) * p->k_h * p->k_w;
    const int32_t nw = p->out_c * k;
    const int32_t need = l->depthwise ? tt_depthwise_conv2d_s8_get_buffer_size(p)
                                      : tt_conv2d_s8_get_buffer_size(p);
    if (need < 0) {
        printf("%s: bad geometry\n", l->name);
        return 1;
    }
    int8_t *x = xmalloc((size_t)nx), *w = xmalloc((size_t)nw), *y = xmalloc((size_t)ny);
    int32_t *bias = xmalloc((size_t)p->out_c * 4), *mult = xmalloc((size_t)p->out_c * 4);
    int32_t *shift = xmalloc((size_t)p->out_c * 4);
    uint32_t *scratch = xmalloc((size_t)need + 4);
    for (int32_t i = 0; i < nx; i++) {
        x[i] = (int8_t)(rng() & 0xFF);
    }
    for (int32_t i = 0; i < nw; i++) {
        w[i] = (int8_t)((int32_t)(rng() % 255u) - 127);
    }
    for (int32_t o = 0; o < p->out_c; o++) {
        bias[o] = (int32_t)(rng() % 20001u) - 10000;
        mult[o] = (int32_t)(0x40000000u + (rng() & 0x3FFFFFFFu)); /* [2^30, 2^31) */
        shift[o] = -9 - (int32_t)(rng() % 3u);
    }
    const tt_s8_requant q = {-3, 5, -128, 127, mult, shift, NULL};
    const tt_scratch ctx = {scratch, need};
    const uint32_t t0 = cost_now();
    const tt_status st = l->depthwise ? tt_depthwise_conv2d_s8(&ctx, p, &q, x, w, NULL, bias, y)
                                      : tt_conv2d_s8(&ctx, p, &q, x, w, NULL, bias, y);
    const uint32_t t1 = cost_now();
    uint32_t sum = 2166136261u; /* FNV-1a of the output */
    for (int32_t i = 0; i < ny; i++) {
        sum = (sum ^ (uint8_t)y[i]) * 16777619u;
    }
    const uint32_t macs = (uint32_t)ny * (uint32_t)k;
    printf("layer %s %lu %lu %08lx\n", l->name, (unsigned long)macs, (unsigned long)(t1 - t0),
           (unsigned long)sum);
    free(x);
    free(w);
    free(y);
    free(bias);
    free(mult);
    free(shift);
    free(scratch);
    return st == TT_OK ? 0 : 1;
}

int main(int argc, char **argv)
{
    printf("bench_kernels_s8: %s kernels, cost unit %s\n", tt_kernels_s8_variant(), cost_unit());
    int failed = 0, ran = 0;
    for (size_t i = 0; i < N_LAYERS; i++) {
        if (argc > 1 && strcmp(argv[1], LAYERS[i].name) != 0) {
            continue;
        }
        failed |= run(&LAYERS[i]);
        ran++;
    }
    return failed || ran == 0;
}
