/* Arm semihosting calls (Arm "Semihosting for AArch32 and AArch64", v2): BKPT 0xAB, r0 = op. */
#include "semihost.h"

enum {
    SYS_WRITE0 = 0x04,
    SYS_GET_CMDLINE = 0x15,
    SYS_EXIT = 0x18,
    SYS_EXIT_EXTENDED = 0x20,
    ADP_STOPPED_APPLICATION_EXIT = 0x20026,
};

static volatile bool unavailable;

bool semihost_available(void)
{
    return !unavailable;
}

void semihost_mark_unavailable(void)
{
    unavailable = true;
}

static int32_t call(uint32_t op, void *arg)
{
    if (unavailable) {
        return -1;
    }
    register uint32_t r0 __asm__("r0") = op;
    register void *r1 __asm__("r1") = arg;
    __asm__ volatile("bkpt 0xab" : "+r"(r0) : "r"(r1) : "memory");
    return (int32_t)r0;
}

void semihost_write0(const char *s)
{
    call(SYS_WRITE0, (void *)s);
}

bool semihost_cmdline(char *buf, size_t size)
{
    uint32_t block[2] = {(uint32_t)buf, (uint32_t)size};
    if (size == 0 || call(SYS_GET_CMDLINE, block) != 0) {
        return false;
    }
    buf[block[1] < size ? block[1] : size - 1] = '\0';
    return true;
}

void semihost_exit(uint32_t status)
{
    uint32_t block[2] = {ADP_STOPPED_APPLICATION_EXIT, status};
    call(SYS_EXIT_EXTENDED, block);
    /* Hosts without the extended call: reason code only (QEMU exits 0 for ApplicationExit). */
    call(SYS_EXIT, (void *)(status == 0 ? ADP_STOPPED_APPLICATION_EXIT : 0x20023u /* RunTimeErrorUnknown */));
    for (;;) {
        __asm__ volatile("wfi");
    }
}
