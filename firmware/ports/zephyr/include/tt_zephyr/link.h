/*
 * The link protocol on a Zephyr UART: received bytes for tt_device_receive, replies out with
 * uart_poll_out. Interrupt-driven reception into a ring buffer where the driver has the
 * interrupt API (STM32 USART, CMSDK UART); uart_poll_in otherwise (native_sim's pty UART).
 */
#ifndef TT_ZEPHYR_LINK_H
#define TT_ZEPHYR_LINK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <zephyr/device.h>
#include <zephyr/kernel.h>
#include <zephyr/sys/ring_buffer.h>

typedef struct {
    const struct device *uart;
    bool irq; /* interrupt-driven reception (else polled) */
    struct ring_buf rx_ring;
    uint8_t rx_buf[CONFIG_TINYTRAIN_UART_RX_BUF_SIZE];
    struct k_sem rx_sem;
    uint32_t overruns; /* bytes dropped because the ring was full */
} tt_zlink;

/* 0, or -ENODEV when the UART is not ready. */
int tt_zlink_init(tt_zlink *link, const struct device *uart);
/* Waits up to timeout for received bytes; returns how many were copied to buf (0: timeout). */
size_t tt_zlink_read(tt_zlink *link, uint8_t *buf, size_t cap, k_timeout_t timeout);
/* tt_port.write: ctx is the tt_zlink. */
void tt_zlink_write(void *ctx, const uint8_t *data, size_t len);

#endif
