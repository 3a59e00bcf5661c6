/* Versions the device reports in `info`; the plan format must match host/tinyhost/plan.py. */
#ifndef TT_VERSION_H
#define TT_VERSION_H

#define TT_FIRMWARE_VERSION "0.1.0"
#define TT_PLAN_FORMAT_VERSION 1u
#define TT_PROTOCOL_VERSION 1u

#endif
