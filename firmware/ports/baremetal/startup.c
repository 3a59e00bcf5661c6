/*
 * Vector table and reset for the Cortex-M4F: enable the FPU, copy .data (and picolibc's TLS
 * template) from CODE, zero .bss, point picolibc's thread pointer at its TLS block, run main.
 */
#include <picolibc.h> /* defines PICOLIBC_TLS, which picotls.h needs */
#include <picotls.h>
#include <stdint.h>
#include <string.h>

#include "cortex_m4.h"
#include "semihost.h"
#include "stack_usage.h"

#define STR_(x) #x
#define STR(x) STR_(x)

extern uint8_t __data_start[], __data_end[], __data_load[], __bss_start[], __bss_end[];
extern uint8_t __tls_base[], __stack_top[];

int main(void);
void Reset_Handler(void);
void Fault_Handler(void);
void Default_Handler(void);
void SysTick_Handler(void);
void reset_c(void);

/* The core's exceptions, then the AN386's 32 interrupts (none used: the port polls). */
__attribute__((section(".vectors"), used)) static void (*const vectors[16 + 32])(void) = {
    (void (*)(void))(uintptr_t)__stack_top,
    Reset_Handler,
    Fault_Handler, /* NMI */
    Fault_Handler, /* HardFault */
    Fault_Handler, /* MemManage */
    Fault_Handler, /* BusFault */
    Fault_Handler, /* UsageFault */
    0, 0, 0, 0,
    Default_Handler, /* SVCall */
    Fault_Handler,   /* DebugMonitor: a BKPT without a debugger may land here */
    0,
    Default_Handler, /* PendSV */
    SysTick_Handler,
    [16 ... 47] = Default_Handler,
};

/* The FPU must be on before any compiled code runs (-mfloat-abi=hard may use s-registers
 * anywhere), so this part is assembly. CPACR: full access to CP10 and CP11. Then the whole stack
 * is painted with STACK_PAINT, while nothing lives on it yet, for stack_peak_bytes(). */
__attribute__((naked, noreturn)) void Reset_Handler(void)
{
    __asm__ volatile(
        "ldr r0, =0xE000ED88\n"
        "ldr r1, [r0]\n"
        "orr r1, r1, #(0xF << 20)\n"
        "str r1, [r0]\n"
        "dsb\n"
        "isb\n"
        "ldr r0, =__stack_limit\n"
        "ldr r1, =__stack_top\n"
        "ldr r2, =" STR(STACK_PAINT) "\n"
        "1: str r2, [r0], #4\n"
        "cmp r0, r1\n"
        "blo 1b\n"
        "mov sp, r1\n"
        "b reset_c\n");
}

__attribute__((noreturn)) void reset_c(void)
{
    memcpy(__data_start, __data_load, (size_t)(__data_end - __data_start));
    memset(__bss_start, 0, (size_t)(__bss_end - __bss_start));
    _set_tls(__tls_base);
    int status = main();
    semihost_exit((uint32_t)status);
}

/* Passes the exception frame (from MSP or PSP), EXC_RETURN and IPSR to fault_entry. If the stack
 * pointer ran out of the stack (below RAM), reporting continues on a fresh stack. */
__attribute__((naked)) void Fault_Handler(void)
{
    __asm__ volatile(
        "tst lr, #4\n"
        "ite eq\n"
        "mrseq r0, msp\n"
        "mrsne r0, psp\n"
        "mov r1, lr\n"
        "mrs r2, ipsr\n"
        "ldr r3, =__stack_limit + 64\n"
        "cmp sp, r3\n"
        "bhs 1f\n"
        "ldr r3, =__stack_top\n"
        "mov sp, r3\n"
        "1: b fault_entry\n");
}

void Default_Handler(void)
{
    static const char msg[] = "tinytrain: unexpected interrupt\n";
    semihost_write0(msg);
    semihost_exit(TT_FAULT_EXIT_STATUS);
}
