#include "tt/tt_status.h"

const char *tt_status_name(tt_status status)
{
    switch (status) {
    case TT_OK: return "TT_OK";
    case TT_ERR_ARG: return "TT_ERR_ARG";
    case TT_ERR_NOMEM: return "TT_ERR_NOMEM";
    case TT_ERR_PLAN_FORMAT: return "TT_ERR_PLAN_FORMAT";
    case TT_ERR_PLAN_VERSION: return "TT_ERR_PLAN_VERSION";
    case TT_ERR_PLAN_HASH: return "TT_ERR_PLAN_HASH";
    case TT_ERR_PLAN_ARENA: return "TT_ERR_PLAN_ARENA";
    case TT_ERR_PLAN_BOUNDS: return "TT_ERR_PLAN_BOUNDS";
    case TT_ERR_UNSUPPORTED_OP: return "TT_ERR_UNSUPPORTED_OP";
    case TT_ERR_NO_PLAN: return "TT_ERR_NO_PLAN";
    case TT_ERR_PROTO: return "TT_ERR_PROTO";
    case TT_ERR_TOO_LARGE: return "TT_ERR_TOO_LARGE";
    case TT_ERR_LABEL: return "TT_ERR_LABEL";
    case TT_ERR_INTERNAL: return "TT_ERR_INTERNAL";
    case TT_ERR_STORAGE: return "TT_ERR_STORAGE";
    case TT_ERR_NONFINITE: return "TT_ERR_NONFINITE";
    case TT_ERR_AUTH: return "TT_ERR_AUTH";
    }
    return "TT_ERR_UNKNOWN";
}
