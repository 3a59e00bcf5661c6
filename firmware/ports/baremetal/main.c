/*
 * The tinytrain firmware on an Arm MPS2 AN386 (Cortex-M4F) as QEMU's mps2-an386 models it: the
 * runtime behind CMSDK UART0, polled. At boot it prints one banner line on the UART
 * ("tinytrain-an386: firmware ..., ...\n"), then serves the link protocol (docs/protocol.md).
 *
 * Semihosting command line (QEMU: -semihosting-config enable=on,target=native,arg=...):
 *   --selftest-fault   read from an address outside the MPU regions (the fault path test)
 *   --selftest-stack   recurse until the stack overflows (out of RAM: an MPU fault)
 *   --bench-mac        print what one request MAC costs (cost counter units, instructions under
 *                      QEMU -icount) for payloads of 0 to 4096 bytes, then exit (bench/auth.py)
 *   --key HEX          provision the device with this 32-byte key (64 hex digits) for this run,
 *                      as `tinyhost --port qemu --key FILE` does; ignored when the image has a
 *                      key built in (cmake -DTT_AN386_KEY_FILE=FILE: that one wins)
 * Provisioned, every request but HELLO needs the key's MAC (docs/security.md).
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "cmsdk_uart.h"
#include "cortex_m4.h"
#include "semihost.h"
#include "stack_usage.h"
#include "state.h"
#include "tt/tt_auth.h"
#include "tt/tt_device.h"
#include "tt/tt_version.h"
#ifdef TT_AN386_KEY_HEADER
#include TT_AN386_KEY_HEADER /* TT_AN386_KEY_HEX: the key built in (CMake TT_AN386_KEY_FILE) */
#endif

#define BOARD_NAME "mps2-an386"
#define PCLK_HZ 25000000u
#define BAUD 115200u

/* From the linker script: the arena is all RAM that .data, .bss and the stack leave free; the
 * plan slots are the "flash" plan store. */
extern uint8_t __arena_start[], __arena_end[], __plan_slot0[], __plan_slot1[];
extern uint8_t __plan_capacity[];
extern uint8_t __state_start[], __state_end[];

static tt_device device;
static tt_state state; /* checkpoints: survive a warm reset (state.h) */

static void uart0_write(void *ctx, const uint8_t *data, size_t len)
{
    (void)ctx;
    uart_write(CMSDK_UART0_BASE, data, len);
}

static void uart0_puts(const char *s)
{
    uart_puts(CMSDK_UART0_BASE, s);
}

/* INFO's stack_peak: the painted stack's high-water mark since boot. */
static uint32_t stack_peak(void *ctx)
{
    (void)ctx;
    return stack_peak_bytes();
}

/* Entropy for the session nonces (tt_auth.h). This board has no TRNG: the instruction counter
 * when HELLO arrives and how many times the UART was polled empty before it depend on when the
 * host's bytes came, which varies from run to run but is guessable to within a few bits. Nonces
 * never repeat within a boot (tt_auth counts them); across cold boots they rest on this jitter
 * only (docs/security.md): a board with a TRNG feeds it here instead. */
static volatile uint32_t idle_polls;

static int jitter_entropy(void *ctx, uint8_t *out, size_t len)
{
    (void)ctx;
    uint32_t words[2] = {cost_counter_read(NULL), idle_polls};
    memset(out, 0, len);
    memcpy(out, words, len < sizeof words ? len : sizeof words);
    return 0;
}

/* The key: the one built in, else a semihosting `--key HEX`; false: none (an open device). */
static bool provisioned_key(const char *cmdline, uint8_t key[TT_AUTH_KEY_SIZE])
{
#ifdef TT_AN386_KEY_HEX
    (void)cmdline;
    return tt_auth_key_from_hex(TT_AN386_KEY_HEX, key) == 0;
#else
    const char *p = strstr(cmdline, "--key ");
    if (p == NULL || (p != cmdline && p[-1] != ' ')) {
        return false;
    }
    char hex[2 * TT_AUTH_KEY_SIZE + 1];
    size_t n = 0;
    for (p += 6; n < sizeof hex - 1u && p[n] != '\0' && p[n] != ' '; n++) {
        hex[n] = p[n];
    }
    hex[n] = '\0';
    bool ok = (p[n] == '\0' || p[n] == ' ') && tt_auth_key_from_hex(hex, key) == 0;
    tt_auth_wipe(hex, sizeof hex);
    return ok;
#endif
}

/* --bench-mac: the cost of tt_auth_tag (what a provisioned device adds to every request and
 * reply) over payloads of the arena's bytes. */
static void bench_mac(uint8_t *data)
{
    static const uint8_t key[TT_AUTH_KEY_SIZE] = {1};
    static const size_t sizes[] = {0, 64, 256, 1024, 4096};
    tt_auth a;
    uint8_t tag[TT_AUTH_TAG_SIZE];
    char line[96];
    tt_auth_init(&a, key, NULL, NULL);
    tt_auth_new_session(&a);
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        uint32_t start = cost_counter_read(NULL);
        tt_auth_tag(&a, 'Q', 1, 6, 1, data, sizes[i], tag);
        uint32_t cost = cost_counter_read(NULL) - start;
        snprintf(line, sizeof line, "tinytrain-an386: bench-mac %u bytes: %lu %s\n",
                 (unsigned)sizes[i], (unsigned long)cost, cost_counter_unit());
        uart0_puts(line);
        semihost_write0(line);
    }
}

/* Recursion deeper than the stack (limit is volatile: the compiler cannot bound it). */
static volatile uint32_t recurse_limit = UINT32_MAX;
static uint32_t recurse(uint32_t n)
{
    volatile uint8_t frame[256];
    frame[0] = (uint8_t)n;
    return n < recurse_limit ? recurse(n + 1u) + frame[0] : 0u;
}

static bool has_arg(const char *cmdline, const char *arg)
{
    size_t n = strlen(arg);
    for (const char *p = cmdline; (p = strstr(p, arg)) != NULL; p += n) {
        if ((p == cmdline || p[-1] == ' ') && (p[n] == '\0' || p[n] == ' ')) {
            return true;
        }
    }
    return false;
}

int main(void)
{
    uart_init(CMSDK_UART0_BASE, PCLK_HZ, BAUD);
    fault_set_console(uart0_puts);
    mpu_init();

    char cmdline[192] = "";
    semihost_cmdline(cmdline, sizeof cmdline); /* also finds out whether semihosting works */
    if (has_arg(cmdline, "--selftest-fault")) {
        uart0_puts("tinytrain-an386: self test: reading 0x10000000, outside every MPU region\n");
        (void)*(volatile uint32_t *)0x10000000u; /* RAZ/WI "reserved" space in QEMU */
        uart0_puts("tinytrain-an386: self test FAILED: no fault\n");
        return 1;
    }
    if (has_arg(cmdline, "--selftest-stack")) {
        uart0_puts("tinytrain-an386: self test: overflowing the stack\n");
        return (int)recurse(0);
    }

    cost_counter_init();
    if (has_arg(cmdline, "--bench-mac")) {
        bench_mac(__arena_start);
        return 0;
    }
    size_t arena_capacity = (size_t)(__arena_end - __arena_start);
    size_t plan_capacity = (size_t)(uintptr_t)__plan_capacity;
    tt_port port = {BOARD_NAME, cost_counter_unit(), cost_counter_read, uart0_write, NULL};
    tt_device_init(&device, &port, __arena_start, arena_capacity, __plan_slot0, __plan_slot1,
                   plan_capacity);
    tt_device_set_stack_probe(&device, stack_peak);
    tt_state_attach(&state, &device, __state_start, (size_t)(__state_end - __state_start));
    tt_device_set_checkpoint(&device, tt_state_save, &state);
    uint8_t key[TT_AUTH_KEY_SIZE];
    bool keyed = provisioned_key(cmdline, key);
    if (keyed) {
        tt_device_set_auth(&device, key, jitter_entropy, NULL);
        tt_auth_wipe(key, sizeof key);
    }
    tt_auth_wipe(cmdline, sizeof cmdline);
    tt_error err = {TT_OK, ""};
    int restored = tt_state_restore(&state, &err);

    char banner[240];
    snprintf(banner, sizeof banner,
             "tinytrain-an386: firmware %s, board %s, arena %u bytes, plan store 2 x %u bytes, "
             "max payload %u, cost unit %s, %s%s%.60s\n",
             TT_FIRMWARE_VERSION, BOARD_NAME, (unsigned)arena_capacity, (unsigned)plan_capacity,
             (unsigned)TT_MAX_PAYLOAD, cost_counter_unit(),
             keyed ? "provisioned with a key, " : "",
             restored > 0   ? "restored the checkpoint"
             : restored < 0 ? "checkpoint not restored: "
                            : "no checkpoint",
             restored < 0 ? err.msg : "");
    uart0_puts(banner);
    semihost_write0(banner);

    /* Read promptly: QEMU holds further bytes back until the one-byte RX buffer is read, and a
     * frame is handled (and answered) inside tt_device_receive when its delimiter arrives. */
    uint8_t buf[64];
    for (;;) {
        size_t n = 0;
        while (n < sizeof buf && uart_try_read(CMSDK_UART0_BASE, &buf[n])) {
            if (buf[n++] == 0) {
                break; /* a frame is complete: handle it now */
            }
        }
        if (n > 0) {
            tt_device_receive(&device, buf, n);
        } else {
            idle_polls++;
        }
    }
}
