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
    TT_OP_CONV2D_S8 = 20,
    TT_OP_DEPTHWISE_CONV2D_S8 = 21,
    TT_OP_ADD_S8 = 22,
    TT_OP_AVGPOOL2D_S8 = 23,
    TT_OP_DEQUANTIZE_S8_F32 = 24,
    TT_OP_REQUANT_GRAD_F32 = 25,
    TT_OP_CONV2D_S8_GRAD_INPUT_F32 = 26,
    TT_OP_CONV2D_S8_GRAD_WEIGHT_F32 = 27,
    TT_OP_ADD_S8_GRAD_F32 = 28,
    TT_OP_DEQUANTIZE_GRAD_F32 = 29,
    TT_OP_UPDATE_S8_F32 = 30,
    TT_OP_UPDATE_S32_F32 = 31,
    TT_OP_ADD_F32 = 32,
    TT_OP_PW_DW_CONV2D_S8 = 33, /* a frozen 1x1 expand conv + its depthwise conv, fused */
} tt_opcode;

#endif
