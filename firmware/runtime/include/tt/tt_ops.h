/* Opcode numbers of the plan format. Must match host/tinyhost/ops.py and docs/plan.cddl. */
#ifndef TT_OPS_H
#define TT_OPS_H

typedef enum {
    TT_OP_LINEAR_F32 = 1,
    TT_OP_LINEAR_GRAD_INPUT_F32 = 2,
    TT_OP_LINEAR_GRAD_WEIGHT_F32 = 3,
    TT_OP_CONV2D_F32 = 4,
    TT_OP_CONV2D_GRAD_INPUT_F32 = 5,
    TT_OP_CONV2D_GRAD_WEIGHT_F32 = 6,
    TT_OP_RELU_F32 = 7,
    TT_OP_RELU_GRAD_F32 = 8,
    TT_OP_MAXPOOL2D_F32 = 9,
    TT_OP_MAXPOOL2D_GRAD_F32 = 10,
    TT_OP_AVGPOOL2D_F32 = 11,
    TT_OP_AVGPOOL2D_GRAD_F32 = 12,
    TT_OP_SOFTMAX_XENT_F32 = 13,
    TT_OP_SGD_F32 = 14,
} tt_opcode;

#endif
