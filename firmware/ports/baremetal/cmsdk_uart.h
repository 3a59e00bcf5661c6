/*
 * Arm CMSDK APB UART (UART0 of the MPS2 AN385/AN386 images at 0x40004000), polled.
 *
 * The receive side has a one-byte buffer. QEMU's model applies backpressure to its chardev (a TCP
 * socket here) while that byte is unread, so no byte is lost however long the firmware is busy;
 * on hardware the host must pace itself, which the request/response protocol does (one frame of
 * at most max_payload bytes in flight) only if the firmware drains the UART faster than the line
 * rate; a real-board port would use the RX interrupt into a ring buffer.
 */
#ifndef TT_CMSDK_UART_H
#define TT_CMSDK_UART_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CMSDK_UART0_BASE 0x40004000u

void uart_init(uintptr_t base, uint32_t pclk_hz, uint32_t baud);
/* Reads one byte if one is waiting. */
bool uart_try_read(uintptr_t base, uint8_t *byte);
/* Blocks until every byte is in the transmitter. */
void uart_write(uintptr_t base, const uint8_t *data, size_t len);
void uart_puts(uintptr_t base, const char *s);

#endif
