#include "tt/tt_error.h"

#include <stdarg.h>
#include <stdio.h>

tt_status tt_fail(tt_error *err, tt_status code, const char *fmt, ...)
{
    if (err != NULL) {
        va_list args;
        va_start(args, fmt);
        err->code = code;
        vsnprintf(err->msg, sizeof err->msg, fmt, args);
        va_end(args);
    }
    return code;
}
