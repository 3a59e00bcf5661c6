/* Softmax cross-entropy of one sample (see tt_kernels_f32.h and the numpy reference).
 *
 * With pred the first maximum, m = logits[pred], e[j] = exp(logits[j] - m) (so e[pred] = 1) and
 * r = sum of e[j] over j != pred:
 *   loss = log1p(r) - (logits[label] - m)       (= logsumexp - logits[label])
 *   dlogits[j] = e[j] / (1 + r) - onehot(label)[j], and -r / (1 + r) at j = label = pred.
 * Subtracting the max avoids overflow in exp. Working with r rather than the full sum 1 + r keeps
 * the loss and gradient of a confident correct prediction (both near 0) accurate, instead of
 * rounding them to multiples of ulp(1) ~ 1.2e-7. */
#include <math.h>
#include <stddef.h>

#include "ops_common.h"
#include "tt/tt_op.h"

tt_status tt_softmax_xent_f32(int32_t num_classes, const float *logits, int32_t label, float *loss,
                              float *dlogits, int32_t *pred)
{
    if (num_classes <= 0 || logits == NULL || loss == NULL || dlogits == NULL || pred == NULL) {
        return TT_ERR_ARG;
    }
    if (label < 0 || label >= num_classes) {
        return TT_ERR_LABEL;
    }
    int32_t best = 0;
    for (int32_t j = 1; j < num_classes; j++) {
        if (logits[j] > logits[best]) {
            best = j;
        }
    }
    const float m = logits[best];
    const float z_label = logits[label] - m; /* read before dlogits is written */

    float r = 0.0f;
    for (int32_t j = 0; j < num_classes; j++) {
        /* exp in double, rounded once: every C library (and numpy) then agrees on the float
         * (float expf differs by an ulp between libraries), so training is bit-identical to the
         * reference's. */
        const float e = (float)exp((double)(logits[j] - m));
        dlogits[j] = e;
        if (j != best) {
            r += e;
        }
    }
    const float s = 1.0f + r;
    for (int32_t j = 0; j < num_classes; j++) {
        dlogits[j] /= s;
    }
    dlogits[label] = (label == best) ? -r / s : dlogits[label] - 1.0f;
    *loss = (float)log1p((double)r) - z_label;
    *pred = best;
    /* A NaN/inf loss (logits that overflowed) ends the step before any backward op runs. */
    return isfinite(*loss) ? TT_OK : TT_ERR_NONFINITE;
}

/* --- the SOFTMAX_XENT_F32 op: plan check and run (tt/tt_op.h) --- */

tt_status tt_op_softmax_xent_f32_check(const tt_op_ctx *c, tt_error *err)
{
    const uint64_t n = (uint64_t)c->a[TT_ATTR_SOFTMAX_XENT_F32_NUM_CLASSES];
    const uint64_t numel[] = {[TT_OPND_SOFTMAX_XENT_F32_LOGITS] = n,
                              [TT_OPND_SOFTMAX_XENT_F32_LABEL] = 1,
                              [TT_OPND_SOFTMAX_XENT_F32_LOSS] = 1,
                              [TT_OPND_SOFTMAX_XENT_F32_DLOGITS] = n,
                              [TT_OPND_SOFTMAX_XENT_F32_PRED] = 1};
    return tt_op_check_operands(c, numel, err);
}

tt_status tt_op_softmax_xent_f32_run(const tt_op_ctx *c, float lr)
{
    (void)lr;
    return tt_softmax_xent_f32(c->a[TT_ATTR_SOFTMAX_XENT_F32_NUM_CLASSES],
                               tt_opnd_f32(c, TT_OPND_SOFTMAX_XENT_F32_LOGITS),
                               *tt_opnd_s32(c, TT_OPND_SOFTMAX_XENT_F32_LABEL),
                               tt_opnd_f32(c, TT_OPND_SOFTMAX_XENT_F32_LOSS),
                               tt_opnd_f32(c, TT_OPND_SOFTMAX_XENT_F32_DLOGITS),
                               tt_opnd_s32(c, TT_OPND_SOFTMAX_XENT_F32_PRED));
}
