/* Which implementation of the int8 conv inner loops this build compiled (ops_common_s8.h). */
#include "ops_common_s8.h"

const char *tt_kernels_s8_variant(void)
{
    return TT_S8_DSP ? "dsp" : "portable";
}
