/* Peak stack use of the bare-metal firmware, measured by painting: Reset_Handler fills the whole
 * stack (__stack_limit..__stack_top) with STACK_PAINT before any C code runs, and the deepest word
 * no longer holding the pattern marks the high-water mark. */
#ifndef TT_STACK_USAGE_H
#define TT_STACK_USAGE_H

#include <stdint.h>

/* Not a plausible address, float or small integer, so a live word rarely equals it by chance (a
 * word that does only makes the measurement smaller by the words below it that also match). */
#define STACK_PAINT 0xC5AC5AC5 /* no suffix: also pasted into assembly */

/* Bytes of stack used at most since boot (exception frames included). */
uint32_t stack_peak_bytes(void);
/* The stack the linker script reserves, bytes (the MPU guard below it excluded). */
uint32_t stack_size_bytes(void);

#endif
