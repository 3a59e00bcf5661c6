/* The one status enum of the runtime: every call returns TT_OK or a negative code. */
#ifndef TT_STATUS_H
#define TT_STATUS_H

typedef enum {
    TT_OK = 0,
    TT_ERR_ARG = -1,            /* a NULL pointer or an impossible parameter */
    TT_ERR_NOMEM = -2,          /* the arena (or a fixed table) is too small */
    TT_ERR_PLAN_FORMAT = -3,    /* the plan is not well-formed CBOR of the expected shape */
    TT_ERR_PLAN_VERSION = -4,   /* the plan format version is not the one this firmware reads */
    TT_ERR_PLAN_HASH = -5,      /* the plan's content hash does not match */
    TT_ERR_PLAN_ARENA = -6,     /* the plan needs a larger arena than the device has */
    TT_ERR_PLAN_BOUNDS = -7,    /* a tensor lies outside the arena or the constant blob */
    TT_ERR_UNSUPPORTED_OP = -8, /* an opcode this firmware does not implement */
    TT_ERR_NO_PLAN = -9,        /* training or evaluation requested before a plan was loaded */
    TT_ERR_PROTO = -10,         /* a malformed or unexpected request */
    TT_ERR_TOO_LARGE = -11,     /* a payload larger than the receive buffer or plan store */
    TT_ERR_LABEL = -12,         /* a label outside [0, num_classes) */
    TT_ERR_INTERNAL = -13,
    TT_ERR_STORAGE = -14,   /* the plan store (flash) failed to erase or write */
    TT_ERR_NONFINITE = -15, /* a NaN/inf loss, or an update step refused: it would write NaN/inf */
    TT_ERR_AUTH = -16,      /* refused by a keyed device: no MAC, a bad MAC, a replay */
} tt_status;

/* A short constant name for a status ("TT_ERR_ARG"), for messages. */
const char *tt_status_name(tt_status status);

#endif
