/* Cortex-M4 core services for the bare-metal port: MPU layout, SysTick cost counter, faults. */
#ifndef TT_CORTEX_M4_H
#define TT_CORTEX_M4_H

#include <stdbool.h>
#include <stdint.h>

/* Exit status of a fault (semihosting SYS_EXIT_EXTENDED): what a test sees from QEMU. */
#define TT_FAULT_EXIT_STATUS 3u

/* Regions: code (read-only, executable), plan store (read-write), RAM, peripherals. No background
 * region: anything else faults, below RAM (where the stack overflows to) included. */
void mpu_init(void);

/* Starts SysTick free-running on the core clock (25 MHz on MPS2) and calibrates it against a
 * loop of known length. Under QEMU's -icount shift=0 (one instruction per virtual nanosecond) the
 * loop takes exactly 40 instructions per tick and the counter reports instructions; otherwise
 * (real time) it reports microseconds. Resolution: one tick (40 instructions, or 40 ns), so a
 * measured interval is exact to +-40 instructions, depending on where in a tick it starts. */
void cost_counter_init(void);
const char *cost_counter_unit(void);
uint32_t cost_counter_read(void *ctx);
/* Instructions per SysTick tick measured by cost_counter_init (40 under -icount shift=0). */
uint32_t cost_counter_instructions_per_tick(void);

/* Where fault reports go besides semihosting (the UART); NULL for none. */
void fault_set_console(void (*puts)(const char *s));

#endif
