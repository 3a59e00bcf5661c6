/* A status with a human-readable message, for errors the device reports over the link. */
#ifndef TT_ERROR_H
#define TT_ERROR_H

#include "tt/tt_status.h"

#define TT_ERROR_MSG_MAX 120

typedef struct {
    tt_status code;
    char msg[TT_ERROR_MSG_MAX];
} tt_error;

/* Records code and a printf-style message in err (if not NULL); returns code. */
tt_status tt_fail(tt_error *err, tt_status code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
