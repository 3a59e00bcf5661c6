#include "cortex_m4.h"

#include <stddef.h>

#include "semihost.h"

#define REG(addr) (*(volatile uint32_t *)(addr))

/* System control block */
#define SCB_ICSR REG(0xE000ED04u)
#define SCB_CCR REG(0xE000ED14u)
#define SCB_SHCSR REG(0xE000ED24u)
#define SCB_CFSR REG(0xE000ED28u)
#define SCB_HFSR REG(0xE000ED2Cu)
#define SCB_DFSR REG(0xE000ED30u)
#define SCB_MMFAR REG(0xE000ED34u)
#define SCB_BFAR REG(0xE000ED38u)
#define ICSR_PENDSTSET (1u << 26)
#define CCR_DIV_0_TRP (1u << 4)
#define SHCSR_FAULTS_ENA (7u << 16) /* MemManage, BusFault, UsageFault */
#define DFSR_BKPT (1u << 1)

/* SysTick */
#define SYST_CSR REG(0xE000E010u)
#define SYST_RVR REG(0xE000E014u)
#define SYST_CVR REG(0xE000E018u)
#define SYST_ENABLE (1u << 0)
#define SYST_TICKINT (1u << 1)
#define SYST_CLKSOURCE_CPU (1u << 2)
#define SYST_PERIOD (1u << 24)
#define SYST_MAX (SYST_PERIOD - 1u)

/* MPU (ARMv7-M PMSA) */
#define MPU_TYPE REG(0xE000ED90u)
#define MPU_CTRL REG(0xE000ED94u)
#define MPU_RNR REG(0xE000ED98u)
#define MPU_RBAR REG(0xE000ED9Cu)
#define MPU_RASR REG(0xE000EDA0u)
#define MPU_CTRL_ENABLE (1u << 0) /* HFNMIENA = 0: faults handlers run without the MPU */
#define RASR_XN (1u << 28)
#define RASR_AP_RW (3u << 24)
#define RASR_AP_RO (6u << 24)
#define RASR_NORMAL_WBWA ((1u << 19) | (1u << 17) | (1u << 16)) /* TEX=1 C=1 B=1 */
#define RASR_NORMAL_WT (1u << 17)                               /* TEX=0 C=1 B=0 */
#define RASR_DEVICE ((1u << 18) | (1u << 16))                   /* shareable device */
#define RASR_SRD(mask) ((uint32_t)(mask) << 8)
#define RASR_SIZE(log2) ((uint32_t)((log2) - 1) << 1) /* region of 2^log2 bytes */
#define RASR_ENABLE 1u

/* From the linker script. */
extern uint8_t __stack_limit[], __stack_top[];

static void mpu_region(uint32_t n, uint32_t base, uint32_t rasr)
{
    MPU_RNR = n;
    MPU_RBAR = base;
    MPU_RASR = rasr;
}

void mpu_init(void)
{
    if (((MPU_TYPE >> 8) & 0xFFu) < 4u) {
        return; /* no MPU, or too few regions (never on a Cortex-M4 with MPU) */
    }
    MPU_CTRL = 0;
    __asm__ volatile("dsb\n isb" ::: "memory");
    /* 0: 0x00000000, 4 MB in 8 subregions of 512 KB: the plan store at 1..3 MB and the
     * checkpoints at 3..3.5 MB are read-write data (subregions 2-6); 0..1 MB (code) is region 1;
     * 3.5..4 MB is disabled. */
    mpu_region(0, 0x00000000u, RASR_XN | RASR_AP_RW | RASR_NORMAL_WT | RASR_SRD(0x83) |
                                   RASR_SIZE(22) | RASR_ENABLE);
    /* 1: code and constants, 1 MB: read-only, executable (writes fault, as to flash). */
    mpu_region(1, 0x00000000u, RASR_AP_RO | RASR_NORMAL_WT | RASR_SIZE(20) | RASR_ENABLE);
    /* 2: RAM, 256 KB: read-write, never executed. */
    mpu_region(2, 0x20000000u, RASR_XN | RASR_AP_RW | RASR_NORMAL_WBWA | RASR_SIZE(18) |
                                   RASR_ENABLE);
    /* 3: the CMSDK APB peripherals (timers, UARTs, watchdog), 64 KB: device memory. */
    mpu_region(3, 0x40000000u, RASR_XN | RASR_AP_RW | RASR_DEVICE | RASR_SIZE(16) | RASR_ENABLE);
    /* Nothing below RAM, where the stack starts (mps2_an386.ld): an overflow faults there. */
    MPU_CTRL = MPU_CTRL_ENABLE; /* PRIVDEFENA = 0: no background map, even when privileged */
    SCB_SHCSR |= SHCSR_FAULTS_ENA;
    SCB_CCR |= CCR_DIV_0_TRP;
    __asm__ volatile("dsb\n isb" ::: "memory");
}

/* -- cost counter ---------------------------------------------------------------------------- */

static volatile uint32_t systick_wraps;
static uint32_t insns_per_tick; /* 0: not instruction-exact; report microseconds */

void SysTick_Handler(void);
void SysTick_Handler(void)
{
    systick_wraps++;
}

static uint64_t ticks_now(void)
{
    uint32_t primask;
    __asm__ volatile("mrs %0, primask\n cpsid i" : "=r"(primask)::"memory");
    uint32_t wraps = systick_wraps;
    uint32_t val = SYST_CVR;
    if (SCB_ICSR & ICSR_PENDSTSET) { /* wrapped, interrupt not yet taken */
        val = SYST_CVR;
        wraps++;
    }
    __asm__ volatile("msr primask, %0" ::"r"(primask) : "memory");
    return (uint64_t)wraps * SYST_PERIOD + (SYST_MAX - val);
}

/* SysTick ticks taken by 2 * iterations + 1 instructions (ldr; subs/bne loop; ldr), exact under
 * -icount. Written in assembly so the instruction count does not depend on the compiler. */
static uint32_t time_loop(uint32_t iterations)
{
    uint32_t t0, t1;
    __asm__ volatile(
        "   ldr %[t0], [%[cvr]]\n"
        "1: subs %[n], %[n], #1\n"
        "   bne 1b\n"
        "   ldr %[t1], [%[cvr]]\n"
        : [t0] "=&r"(t0), [t1] "=&r"(t1), [n] "+r"(iterations)
        : [cvr] "r"(&SYST_CVR)
        : "cc", "memory");
    return (t0 - t1) & SYST_MAX;
}

void cost_counter_init(void)
{
    SYST_CSR = 0;
    SYST_RVR = SYST_MAX;
    SYST_CVR = 0;
    SYST_CSR = SYST_CLKSOURCE_CPU | SYST_ENABLE; /* no interrupt while calibrating */
    /* Three lengths (40k, 80k, 160k instructions): under -icount shift=0 they take 1000, 2000
     * and 4000 ticks of 40 ns, give or take one for the phase of the first tick. */
    static const uint32_t iterations[3] = {20000u, 40000u, 80000u};
    bool exact = true;
    for (int i = 0; i < 3; i++) {
        uint32_t want = 2u * iterations[i] / 40u;
        uint32_t got = time_loop(iterations[i]);
        exact = exact && got + 1u >= want && got <= want + 1u;
    }
    insns_per_tick = exact ? 40u : 0u;
    systick_wraps = 0;
    SYST_CSR = SYST_CLKSOURCE_CPU | SYST_TICKINT | SYST_ENABLE;
}

const char *cost_counter_unit(void)
{
    return insns_per_tick ? "instructions" : "us";
}

uint32_t cost_counter_instructions_per_tick(void)
{
    return insns_per_tick;
}

uint32_t cost_counter_read(void *ctx)
{
    (void)ctx;
    uint64_t t = ticks_now();
    /* 25 ticks per microsecond at the MPS2's 25 MHz core clock. Wraps modulo 2^32, as the
     * runtime expects of a free-running counter. */
    return insns_per_tick ? (uint32_t)(t * insns_per_tick) : (uint32_t)(t / 25u);
}

/* -- faults ------------------------------------------------------------------------------------ */

static void (*fault_console)(const char *s);

void fault_set_console(void (*puts)(const char *s))
{
    fault_console = puts;
}

static char *put_str(char *p, char *end, const char *s)
{
    while (*s != '\0' && p < end) {
        *p++ = *s++;
    }
    return p;
}

static char *put_hex(char *p, char *end, uint32_t v)
{
    p = put_str(p, end, "0x");
    for (int shift = 28; shift >= 0 && p < end; shift -= 4) {
        *p++ = "0123456789abcdef"[(v >> shift) & 0xFu];
    }
    return p;
}

static bool in_range(uint32_t addr, uint32_t size, uint32_t lo, uint32_t hi)
{
    return addr >= lo && addr <= hi && size <= hi - addr;
}

void fault_entry(uint32_t *frame, uint32_t exc_return, uint32_t ipsr);

/* A faulting access this far below the stack (at the bottom of RAM) is taken for an overflow: no
 * frame of the firmware is larger. */
#define OVERFLOW_REACH (64u * 1024u)

/* Called by Fault_Handler (startup.c) on the faulting stack, or on a fresh one when the stack
 * pointer had run out of the stack. frame is the exception frame {r0-r3, r12, lr, pc, xpsr}. */
void fault_entry(uint32_t *frame, uint32_t exc_return, uint32_t ipsr)
{
    const uint32_t ram_lo = 0x20000000u, ram_hi = (uint32_t)(uintptr_t)__stack_top;
    uint32_t fp = (uint32_t)(uintptr_t)frame;
    bool frame_ok = (fp & 3u) == 0 && in_range(fp, 32u, ram_lo, ram_hi) &&
                    fp >= (uint32_t)(uintptr_t)__stack_limit;
    uint32_t pc = frame_ok ? frame[6] : 0u;
    bool pc_ok = (pc & 1u) == 0 && in_range(pc, 2u, 0u, 0x00100000u);

    /* A semihosting call with no semihosting host: the BKPT 0xAB escalated to HardFault (QEMU
     * sets only HFSR.FORCED) or, with the debug monitor on, DebugMonitor. Skip the BKPT and
     * return -1 from the call. A BKPT cannot fault for any other reason once fetched. */
    if (frame_ok && pc_ok && *(const volatile uint16_t *)(uintptr_t)pc == 0xBEABu) {
        semihost_mark_unavailable();
        SCB_HFSR = SCB_HFSR;  /* write one to clear what is set */
        SCB_DFSR = DFSR_BKPT;
        frame[6] = pc + 2u;
        frame[0] = (uint32_t)-1;
        return;
    }

    static const char *const names[] = {"?", "?", "NMI", "HardFault", "MemManage fault",
                                        "BusFault", "UsageFault", "?", "?", "?", "?", "SVCall",
                                        "DebugMonitor"};
    uint32_t exc = ipsr & 0x1FFu;
    uint32_t cfsr = SCB_CFSR, hfsr = SCB_HFSR, mmfar = SCB_MMFAR, bfar = SCB_BFAR;
    char msg[224];
    char *p = msg, *end = msg + sizeof msg - 2;
    p = put_str(p, end, "\ntinytrain: ");
    p = put_str(p, end, exc < sizeof names / sizeof names[0] ? names[exc] : "exception");
    uint32_t limit = (uint32_t)(uintptr_t)__stack_limit;
    if ((cfsr & (1u << 7)) && mmfar < limit && limit - mmfar <= OVERFLOW_REACH) { /* MMARVALID */
        p = put_str(p, end, ": stack overflow (access to ");
        p = put_hex(p, end, mmfar);
        p = put_str(p, end, " below the stack, outside RAM)");
    } else if (cfsr & (1u << 7)) {
        p = put_str(p, end, ": access to ");
        p = put_hex(p, end, mmfar);
        p = put_str(p, end, " not permitted by the MPU");
    } else if (cfsr & (1u << 15)) { /* BFARVALID */
        p = put_str(p, end, ": bus error at ");
        p = put_hex(p, end, bfar);
    } else if (cfsr & (1u << 4)) { /* MSTKERR */
        p = put_str(p, end, ": stack overflow (exception stacking below the stack)");
    }
    p = put_str(p, end, "; pc ");
    p = put_hex(p, end, pc);
    p = put_str(p, end, " lr ");
    p = put_hex(p, end, frame_ok ? frame[5] : 0u);
    p = put_str(p, end, " CFSR ");
    p = put_hex(p, end, cfsr);
    p = put_str(p, end, " HFSR ");
    p = put_hex(p, end, hfsr);
    p = put_str(p, end, " EXC_RETURN ");
    p = put_hex(p, end, exc_return);
    *p++ = '\n';
    *p = '\0';
    if (fault_console != NULL) {
        fault_console(msg);
    }
    semihost_write0(msg);
    semihost_exit(TT_FAULT_EXIT_STATUS);
}
