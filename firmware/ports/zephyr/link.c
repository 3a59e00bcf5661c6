/* The link on a Zephyr UART (tt_zephyr/link.h). */
#include "tt_zephyr/link.h"

#include <errno.h>
#include <zephyr/drivers/uart.h>

#ifdef CONFIG_UART_INTERRUPT_DRIVEN
static void uart_isr(const struct device *dev, void *user_data)
{
    tt_zlink *link = user_data;
    bool got = false;
    while (uart_irq_update(dev) > 0 && uart_irq_rx_ready(dev) > 0) {
        uint8_t buf[32];
        int n = uart_fifo_read(dev, buf, sizeof buf);
        if (n <= 0) {
            break;
        }
        uint32_t put = ring_buf_put(&link->rx_ring, buf, (uint32_t)n);
        link->overruns += (uint32_t)n - put; /* the host resends what a NAK or timeout lost */
        got = true;
    }
    if (got) {
        k_sem_give(&link->rx_sem);
    }
}
#endif

int tt_zlink_init(tt_zlink *link, const struct device *uart)
{
    if (!device_is_ready(uart)) {
        return -ENODEV;
    }
    link->uart = uart;
    link->irq = false;
    link->overruns = 0;
    ring_buf_init(&link->rx_ring, sizeof link->rx_buf, link->rx_buf);
    k_sem_init(&link->rx_sem, 0, 1);
#ifdef CONFIG_UART_INTERRUPT_DRIVEN
    /* Drivers without the interrupt API (native_sim's pty UART) say so here: poll them. */
    if (uart_irq_callback_user_data_set(uart, uart_isr, link) == 0) {
        link->irq = true;
        /* A byte that arrived before the interrupt was enabled raises none on some UARTs (the
         * CMSDK UART, in QEMU at least, and it holds back every later byte until that one is
         * read): enable, then take what is already there, interrupts masked so order is kept. */
        unsigned int key = irq_lock();
        uart_irq_rx_enable(uart);
        unsigned char c;
        while (uart_poll_in(uart, &c) == 0) {
            link->overruns += 1u - ring_buf_put(&link->rx_ring, &c, 1);
        }
        irq_unlock(key);
    }
#endif
    return 0;
}

size_t tt_zlink_read(tt_zlink *link, uint8_t *buf, size_t cap, k_timeout_t timeout)
{
    k_timepoint_t end = sys_timepoint_calc(timeout);
    if (link->irq) {
        for (;;) { /* the semaphore may be left over from bytes already taken: check again */
            uint32_t n = ring_buf_get(&link->rx_ring, buf, (uint32_t)cap);
            if (n > 0) {
                return n;
            }
            if (k_sem_take(&link->rx_sem, sys_timepoint_timeout(end)) != 0) {
                return 0;
            }
        }
    }
    /* Polled: take what is there; sleep a millisecond between empty polls (on native_sim the
     * sleep is also what lets simulated time advance). */
    for (;;) {
        size_t n = 0;
        unsigned char c;
        while (n < cap && uart_poll_in(link->uart, &c) == 0) {
            buf[n++] = c;
            if (c == 0) {
                break; /* a frame is complete: handle it now */
            }
        }
        if (n > 0 || sys_timepoint_expired(end)) {
            return n;
        }
        k_sleep(K_MSEC(1));
    }
}

void tt_zlink_write(void *ctx, const uint8_t *data, size_t len)
{
    tt_zlink *link = ctx;
    for (size_t i = 0; i < len; i++) {
        uart_poll_out(link->uart, data[i]);
    }
}
