/*
 * Arm semihosting (the host debugger or QEMU's -semihosting-config enable=on services these).
 * Every call is safe without a semihosting host: the fault handler recognises the BKPT 0xAB that
 * no one serviced, skips it and makes the call return -1 (and semihost_available() false).
 */
#ifndef TT_SEMIHOST_H
#define TT_SEMIHOST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

bool semihost_available(void);
/* Writes a NUL-terminated string to the host's console (QEMU: its stderr). */
void semihost_write0(const char *s);
/* The command line QEMU passes (-semihosting-config ...,arg=...); false when there is none. */
bool semihost_cmdline(char *buf, size_t size);
/* Ends the simulation with an exit status (SYS_EXIT_EXTENDED); spins if no one is listening. */
__attribute__((noreturn)) void semihost_exit(uint32_t status);

/* For the fault handler: marks semihosting as unavailable after a BKPT nobody serviced. */
void semihost_mark_unavailable(void);

#endif
