/* QAS update of an int32 bias, u = lr * (db * qas) in float (docs/int8.md 5):
 * - int32 state (master NULL): b <- sat32(b - rint(u)), the step rounded (halves to even), not
 *   the sum, so the integer arithmetic is exact for any bias;
 * - float master: master <- master - u, b = sat32(rint(master)). */
#include <math.h>
#include <stddef.h>

#include "ops_common_s8.h"

#define TWO_31 2147483648.0f
#define STEP_LIMIT 8589934592.0f /* 2^33 */

static int32_t sat32(int64_t v)
{
    return v > INT32_MAX ? INT32_MAX : v < INT32_MIN ? INT32_MIN : (int32_t)v;
}

tt_status tt_update_s32_f32(int32_t size, int32_t *b, float *master, const float *db, float lr,
                            const float *qas)
{
    if (size <= 0 || b == NULL || db == NULL || qas == NULL) {
        return TT_ERR_ARG;
    }
    for (int32_t i = 0; i < size; i++) {
        const float u = lr * (db[i] * qas[i]);
        if (master == NULL) {
            /* A step beyond +-2^32 saturates whatever b is; limiting it keeps the conversion
             * defined (a NaN step, outside the contract, counts as -2^33). */
            float r = rintf(u);
            r = r > STEP_LIMIT ? STEP_LIMIT : !(r >= -STEP_LIMIT) ? -STEP_LIMIT : r;
            b[i] = sat32((int64_t)b[i] - (int64_t)r);
        } else {
            master[i] = master[i] - u;
            const float r = rintf(master[i]);
            b[i] = r >= TWO_31 ? INT32_MAX : !(r >= -TWO_31) ? INT32_MIN : (int32_t)r;
        }
    }
    return TT_OK;
}
