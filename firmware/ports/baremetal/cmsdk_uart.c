#include "cmsdk_uart.h"

typedef struct {
    volatile uint32_t data;     /* 0x000 */
    volatile uint32_t state;    /* 0x004: bit0 TX full, bit1 RX full, bit2/3 TX/RX overrun */
    volatile uint32_t ctrl;     /* 0x008: bit0 TX enable, bit1 RX enable */
    volatile uint32_t intstatus;/* 0x00C: write 1 to clear */
    volatile uint32_t bauddiv;  /* 0x010: >= 16 */
} cmsdk_uart;

#define STATE_TX_FULL (1u << 0)
#define STATE_RX_FULL (1u << 1)
#define STATE_OVERRUNS (3u << 2)
#define CTRL_TX_EN (1u << 0)
#define CTRL_RX_EN (1u << 1)

static cmsdk_uart *regs(uintptr_t base)
{
    return (cmsdk_uart *)base;
}

void uart_init(uintptr_t base, uint32_t pclk_hz, uint32_t baud)
{
    cmsdk_uart *u = regs(base);
    u->ctrl = 0;
    u->bauddiv = pclk_hz / baud; /* QEMU refuses to move bytes with a divider below 16 */
    u->state = STATE_OVERRUNS;   /* write 1 to clear */
    u->intstatus = 0xFu;
    u->ctrl = CTRL_TX_EN | CTRL_RX_EN;
}

bool uart_try_read(uintptr_t base, uint8_t *byte)
{
    cmsdk_uart *u = regs(base);
    if (!(u->state & STATE_RX_FULL)) {
        return false;
    }
    *byte = (uint8_t)u->data;
    return true;
}

void uart_write(uintptr_t base, const uint8_t *data, size_t len)
{
    cmsdk_uart *u = regs(base);
    for (size_t i = 0; i < len; i++) {
        while (u->state & STATE_TX_FULL) {
        }
        u->data = data[i];
    }
}

void uart_puts(uintptr_t base, const char *s)
{
    while (*s != '\0') {
        uart_write(base, (const uint8_t *)s++, 1);
    }
}
