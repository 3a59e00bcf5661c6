/*
 * The tinytrain firmware on Zephyr: the runtime's protocol handler (tt_device) on the UART chosen
 * as `tinytrain,uart`, plan slots and trained parameters in the flash partition
 * `tinytrain_partition` (boards/zephyr.md). At boot it restores the last committed plan and the
 * parameters saved with it, prints a banner, then serves the link; when the link has been idle for
 * CONFIG_TINYTRAIN_SAVE_IDLE_MS after some traffic, changed parameters are saved to flash.
 */
#include <stdio.h>
#include <string.h>
#include <zephyr/device.h>
#include <zephyr/devicetree.h>
#include <zephyr/kernel.h>
#include <zephyr/linker/section_tags.h>
#include <zephyr/random/random.h>
#include <zephyr/sys/printk.h>
#include <zephyr/version.h>

#include "tt/tt_auth.h"
#include "tt/tt_device.h"
#include "tt/tt_version.h"
#include "tt_zephyr/link.h"
#ifdef CONFIG_TINYTRAIN_FLASH_STORE
#include "tt_zephyr/store.h"
#endif

#if DT_HAS_CHOSEN(tinytrain_uart)
#define LINK_UART DT_CHOSEN(tinytrain_uart)
#else
#define LINK_UART DT_CHOSEN(zephyr_console)
#endif

#if DT_HAS_CHOSEN(zephyr_console) && defined(CONFIG_UART_CONSOLE)
BUILD_ASSERT(!DT_SAME_NODE(LINK_UART, DT_CHOSEN(zephyr_console)),
             "the link UART is also the console: set CONFIG_UART_CONSOLE=n or choose another "
             "tinytrain,uart");
#endif

/* The link buffer (one frame, ~TT_MAX_PAYLOAD) goes to the DTCM where there is one, leaving SRAM to the
 * arena. */
#if DT_HAS_CHOSEN(zephyr_dtcm)
#define TT_FAST_BSS __dtcm_bss_section
#else
#define TT_FAST_BSS
#endif

static TT_FAST_BSS tt_device device;
static TT_FAST_BSS tt_zlink link;
static uint8_t arena[CONFIG_TINYTRAIN_ARENA_SIZE] __aligned(16);

#ifdef CONFIG_TINYTRAIN_FLASH_STORE
static tt_zstore store;
#else
static uint8_t plan_slots[CONFIG_TINYTRAIN_PLAN_SLOTS][CONFIG_TINYTRAIN_RAM_PLAN_SLOT_SIZE]
    __aligned(16);
#endif

#ifdef CONFIG_ARCH_POSIX
/* native_sim: simulated time stands still while code runs, so there is no step cost to report. */
#define COST_UNIT "none"
#define COST_COUNTER NULL
#else
#define COST_UNIT "cycles"
static uint32_t cycles(void *ctx)
{
    ARG_UNUSED(ctx);
    return k_cycle_get_32();
}
#define COST_COUNTER cycles
#endif

static void hex8(const uint8_t *hash, char out[17])
{
    static const char digits[] = "0123456789abcdef";
    for (int i = 0; i < 8; i++) {
        out[2 * i] = digits[hash[i] >> 4];
        out[2 * i + 1] = digits[hash[i] & 15];
    }
    out[16] = '\0';
}

#ifdef CONFIG_TINYTRAIN_FLASH_STORE
/* CHECKPOINT: a parameter-log record now (tt_zstore_save appends one only when something
 * changed; a torn record is skipped at boot and the one before it used). */
static int checkpoint(void *ctx)
{
    int rc = tt_zstore_save(ctx);
    return rc < 0 ? rc : 0;
}
#endif

/* Session nonces from the kernel's CSPRNG where the board has an entropy driver (a TRNG: the
 * STM32F746's RNG); elsewhere (QEMU boards) from the kernel's random source, which tt_auth
 * whitens with the key and a count (docs/security.md says what that protects less). */
static int csrand_entropy(void *ctx, uint8_t *out, size_t len)
{
    (void)ctx;
#ifdef CONFIG_CSPRNG_ENABLED
    return sys_csrand_get(out, len);
#else
    sys_rand_get(out, len);
    return 0;
#endif
}

int main(void)
{
    const struct device *uart = DEVICE_DT_GET(LINK_UART);
    if (tt_zlink_init(&link, uart) != 0) {
        printk("tinytrain: link UART %s is not ready\n", uart->name);
        return 0;
    }

    char state[96] = "no plan";
#ifdef CONFIG_TINYTRAIN_FLASH_STORE
    int rc = tt_zstore_open(&store);
    if (rc != 0) {
        printk("tinytrain: flash plan store unusable (%d)\n", rc);
        return 0;
    }
    /* NULL with CONFIG_TINYTRAIN_PLAN_SLOTS=1: one slot, which an upload replaces. */
    uint8_t *slot0 = tt_zstore_slot(&store, 0), *slot1 = tt_zstore_slot(&store, 1);
    size_t slot_capacity = tt_zstore_slot_capacity(&store);
    const char *store_kind = "flash";
#else
    uint8_t *slot0 = plan_slots[0];
    uint8_t *slot1 = CONFIG_TINYTRAIN_PLAN_SLOTS == 2 ? plan_slots[CONFIG_TINYTRAIN_PLAN_SLOTS - 1]
                                                      : NULL;
    size_t slot_capacity = sizeof plan_slots[0];
    const char *store_kind = "RAM";
#endif
    tt_port port = {CONFIG_BOARD_TARGET, COST_UNIT, COST_COUNTER, tt_zlink_write, &link};
    tt_device_init(&device, &port, arena, sizeof arena, slot0, slot1, slot_capacity);
    if (sizeof CONFIG_TINYTRAIN_AUTH_KEY > 1) { /* provisioned (docs/security.md) */
        uint8_t key[TT_AUTH_KEY_SIZE];
        if (tt_auth_key_from_hex(CONFIG_TINYTRAIN_AUTH_KEY, key) != 0) {
            printk("tinytrain: CONFIG_TINYTRAIN_AUTH_KEY is not 64 hex digits: not serving the "
                   "link open\n");
            return 0; /* fail closed: a mistyped key must not leave the device open */
        }
        tt_device_set_auth(&device, key, csrand_entropy, NULL);
        tt_auth_wipe(key, sizeof key);
    }
#ifdef CONFIG_TINYTRAIN_FLASH_STORE
    tt_zstore_attach(&store, &device);
    tt_device_set_checkpoint(&device, checkpoint, &store);
    tt_error err = {TT_OK, ""};
    rc = tt_zstore_restore(&store, &err);
    if (rc > 0) {
        char h[17];
        hex8(device.model.plan.hash, h);
        snprintf(state, sizeof state, "restored plan %s (slot %d) at step %lu", h, device.active,
                 (unsigned long)tt_model_steps(&device.model));
    } else if (rc < 0) {
        snprintf(state, sizeof state, "no plan: saved plan not restored: %.60s", err.msg);
    }
#endif

    char banner[320];
    snprintf(banner, sizeof banner,
             "%s: firmware %s (Zephyr %s), board %s, arena %u bytes, plan store %d x %u bytes "
             "(%s%s), max payload %u, link %s (%s), %s\n",
             CONFIG_TINYTRAIN_BANNER_PREFIX, TT_FIRMWARE_VERSION, KERNEL_VERSION_STRING,
             CONFIG_BOARD_TARGET, (unsigned)sizeof arena, device.plan_slots,
             (unsigned)slot_capacity, store_kind,
             device.plan_slots == 1 ? "; an upload replaces the plan" : "",
             (unsigned)TT_MAX_PAYLOAD, uart->name, link.irq ? "interrupts" : "polled", state);
    printk("%s", banner);
#ifdef CONFIG_TINYTRAIN_LINK_BANNER
    tt_zlink_write(&link, (const uint8_t *)banner, strlen(banner));
#endif

    static uint8_t buf[256];
    bool traffic = false;
    for (;;) {
#if defined(CONFIG_TINYTRAIN_FLASH_STORE) && CONFIG_TINYTRAIN_SAVE_IDLE_MS > 0
        k_timeout_t wait = traffic ? K_MSEC(CONFIG_TINYTRAIN_SAVE_IDLE_MS) : K_FOREVER;
#else
        k_timeout_t wait = K_FOREVER;
#endif
        size_t n = tt_zlink_read(&link, buf, sizeof buf, wait);
        if (n > 0) {
            tt_device_receive(&device, buf, n);
            traffic = true;
            continue;
        }
        traffic = false;
#ifdef CONFIG_TINYTRAIN_FLASH_STORE
        rc = tt_zstore_save(&store);
        if (rc > 0) {
            printk("tinytrain: saved parameters at step %lu (record %lu)\n",
                   (unsigned long)tt_model_steps(&device.model), (unsigned long)store.last.seq);
        } else if (rc < 0) {
            printk("tinytrain: saving parameters failed (%d)\n", rc);
        }
#endif
    }
    return 0;
}
