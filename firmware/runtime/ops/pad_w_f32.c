/* Zero padding and cropping of each row along W (the causal Conv1d's F.pad(x, (k - 1, 0)) and
 * conv(x)[..., :-(k - 1)]): y[r][j] = x[r][j - lead + skip] where that is inside the row, else 0.
 * Its own gradient with in_w/out_w and skip/lead swapped. */
#include <stddef.h>

#include "ops_common.h"
#include "tt/tt_op.h"

tt_status tt_pad_w_f32(int32_t rows, int32_t in_w, int32_t out_w, int32_t skip, int32_t lead,
                       const float *x, float *y)
{
    if (rows <= 0 || in_w <= 0 || out_w <= 0 || skip < 0 || lead < 0 || x == NULL || y == NULL) {
        return TT_ERR_ARG;
    }
    for (int32_t r = 0; r < rows; r++) {
        const float *xr = x + (size_t)r * (size_t)in_w;
        float *yr = y + (size_t)r * (size_t)out_w;
        for (int32_t j = 0; j < out_w; j++) {
            const int64_t i = (int64_t)j - lead + skip;
            yr[j] = (i >= 0 && i < in_w) ? xr[i] : 0.0f;
        }
    }
    return TT_OK;
}

/* --- the PAD_W_F32 op: plan check and run (tt/tt_op.h) --- */

tt_status tt_op_pad_w_f32_check(const tt_op_ctx *c, tt_error *err)
{
    const uint64_t rows = (uint64_t)c->a[TT_ATTR_PAD_W_F32_ROWS];
    const uint64_t x = tt_numel4(rows, (uint64_t)c->a[TT_ATTR_PAD_W_F32_IN_W], 1, 1);
    const uint64_t y = tt_numel4(rows, (uint64_t)c->a[TT_ATTR_PAD_W_F32_OUT_W], 1, 1);
    if (x == UINT64_MAX || y == UINT64_MAX) {
        return tt_op_impossible(c, err);
    }
    const uint64_t numel[] = {[TT_OPND_PAD_W_F32_X] = x, [TT_OPND_PAD_W_F32_Y] = y};
    return tt_op_check_operands(c, numel, err);
}

tt_status tt_op_pad_w_f32_run(const tt_op_ctx *c, float lr)
{
    (void)lr;
    const int32_t *a = c->a;
    return tt_pad_w_f32(a[TT_ATTR_PAD_W_F32_ROWS], a[TT_ATTR_PAD_W_F32_IN_W],
                        a[TT_ATTR_PAD_W_F32_OUT_W], a[TT_ATTR_PAD_W_F32_SKIP],
                        a[TT_ATTR_PAD_W_F32_LEAD], tt_opnd_f32(c, TT_OPND_PAD_W_F32_X),
                        tt_opnd_f32(c, TT_OPND_PAD_W_F32_Y));
}
