/*
 * Link framing (docs/protocol.md): a frame is COBS(type, seq, payload, crc32le) followed by 0x00.
 * The CRC is IEEE CRC-32 (zlib's) over type, seq and payload.
 */
#ifndef TT_FRAME_H
#define TT_FRAME_H

#include <stddef.h>
#include <stdint.h>
#include "tt/tt_status.h"

#define TT_FRAME_OVERHEAD 6u /* type, seq, crc32 */
/* Worst-case COBS size of n raw bytes, plus the 0x00 delimiter. */
#define TT_COBS_MAX(n) ((n) + (n) / 254u + 2u)

uint32_t tt_crc32(uint32_t crc, const uint8_t *data, size_t len);

/* Encodes len bytes; out must hold TT_COBS_MAX(len) bytes. Returns the encoded length,
 * including the trailing 0x00 delimiter. */
size_t tt_cobs_encode(const uint8_t *in, size_t len, uint8_t *out);
/* Decodes in place-safe (out may equal in). Returns TT_ERR_PROTO on malformed input. */
tt_status tt_cobs_decode(const uint8_t *in, size_t len, uint8_t *out, size_t *out_len);

typedef struct {
    uint8_t type;
    uint8_t seq;
    const uint8_t *payload;
    size_t payload_len;
    uint32_t crc; /* the frame's CRC: tells a retransmission from a new request */
} tt_frame;

/* Decodes one received frame (without its delimiter) in place; checks length and CRC. */
tt_status tt_frame_decode(uint8_t *buf, size_t len, tt_frame *frame);
/* Builds the raw frame around a payload already at raw + 2 (payload_len bytes), then COBS-encodes
 * it into out (TT_COBS_MAX(payload_len + TT_FRAME_OVERHEAD) bytes). Returns the encoded length. */
size_t tt_frame_encode(uint8_t *raw, uint8_t type, uint8_t seq, size_t payload_len, uint8_t *out);

/* Where encoded bytes go: a port's write callback. */
typedef void (*tt_write_fn)(void *ctx, const uint8_t *data, size_t len);
/* Writes what tt_cobs_encode would produce for len bytes (delimiter included) through write, in
 * pieces of at most 64 bytes: no buffer of the encoded frame's size. */
void tt_cobs_write(const uint8_t *in, size_t len, tt_write_fn write, void *ctx);
/* tt_frame_encode's frame around the payload at raw + 2 (raw gets type, seq and CRC, so it must
 * hold payload_len + TT_FRAME_OVERHEAD bytes), written out with tt_cobs_write. */
void tt_frame_send(uint8_t *raw, uint8_t type, uint8_t seq, size_t payload_len, tt_write_fn write,
                   void *ctx);

#endif
