"""Integer requantization and quantization parameters: the fixed-point arithmetic of the int8
kernels.

The definitions live in the neutral module `tinyhost.quant` (shared with the compiler, which must
not import the reference executor); this module re-exports them under their old names.
"""
from __future__ import annotations

from tinyhost.quant import (  # noqa: F401  (re-exported)
    F32,
    I32,
    I64,
    INT8_MAX,
    INT8_MIN,
    INT32_MAX,
    INT32_MIN,
    WEIGHT_ABSMAX_FLOOR,
    WEIGHT_QMAX,
    _int32_range,
    effective_scale,
    multiply_by_quantized_multiplier,
    quantize_activation_params,
    quantize_bias,
    quantize_multiplier,
    quantize_multipliers,
    quantize_per_channel_weights,
    round_half_away,
    round_half_away_array,
    rounding_divide_by_pot,
    saturating_rounding_doubling_high_mul,
    trunc_div,
)
