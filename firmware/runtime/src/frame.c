#include "tt/tt_frame.h"

#include <string.h>

uint32_t tt_crc32(uint32_t crc, const uint8_t *data, size_t len)
{
    /* Bitwise to keep flash small; frames are short. */
    crc = ~crc;
    for (size_t i = 0; i < len; i++) {
        crc ^= data[i];
        for (unsigned b = 0; b < 8; b++) {
            crc = (crc >> 1) ^ (0xEDB88320u & (0u - (crc & 1u)));
        }
    }
    return ~crc;
}

size_t tt_cobs_encode(const uint8_t *in, size_t len, uint8_t *out)
{
    size_t code_at = 0, o = 1;
    uint8_t code = 1;
    for (size_t i = 0; i < len; i++) {
        if (in[i] == 0) {
            out[code_at] = code;
            code_at = o++;
            code = 1;
        } else {
            out[o++] = in[i];
            if (++code == 0xFF) {
                out[code_at] = code;
                code_at = o++;
                code = 1;
            }
        }
    }
    out[code_at] = code;
    out[o++] = 0;
    return o;
}

tt_status tt_cobs_decode(const uint8_t *in, size_t len, uint8_t *out, size_t *out_len)
{
    size_t i = 0, o = 0;
    while (i < len) {
        uint8_t code = in[i++];
        if (code == 0 || i + code - 1u > len) {
            return TT_ERR_PROTO;
        }
        for (uint8_t k = 1; k < code; k++) {
            if (in[i] == 0) {
                return TT_ERR_PROTO;
            }
            out[o++] = in[i++];
        }
        if (code != 0xFF && i < len) {
            out[o++] = 0;
        }
    }
    *out_len = o;
    return TT_OK;
}

tt_status tt_frame_decode(uint8_t *buf, size_t len, tt_frame *frame)
{
    size_t raw_len;
    if (tt_cobs_decode(buf, len, buf, &raw_len) != TT_OK || raw_len < TT_FRAME_OVERHEAD) {
        return TT_ERR_PROTO;
    }
    size_t body = raw_len - 4u;
    uint32_t crc = (uint32_t)buf[body] | (uint32_t)buf[body + 1] << 8 |
                   (uint32_t)buf[body + 2] << 16 | (uint32_t)buf[body + 3] << 24;
    if (tt_crc32(0, buf, body) != crc) {
        return TT_ERR_PROTO;
    }
    frame->type = buf[0];
    frame->seq = buf[1];
    frame->payload = buf + 2;
    frame->payload_len = body - 2u;
    frame->crc = crc;
    return TT_OK;
}

/* Type, seq and CRC around a payload already at raw + 2; returns the raw frame's length. */
static size_t frame_seal(uint8_t *raw, uint8_t type, uint8_t seq, size_t payload_len)
{
    raw[0] = type;
    raw[1] = seq;
    size_t body = payload_len + 2u;
    uint32_t crc = tt_crc32(0, raw, body);
    for (unsigned i = 0; i < 4; i++) {
        raw[body + i] = (uint8_t)(crc >> (8u * i));
    }
    return body + 4u;
}

size_t tt_frame_encode(uint8_t *raw, uint8_t type, uint8_t seq, size_t payload_len, uint8_t *out)
{
    return tt_cobs_encode(raw, frame_seal(raw, type, seq, payload_len), out);
}

/* The bytes tt_cobs_encode would produce, block by block (a code byte, then up to 254 non-zero
 * bytes), through a small staging buffer. */
typedef struct {
    uint8_t buf[64];
    size_t len;
    tt_write_fn write;
    void *ctx;
} stage;

static void stage_put(stage *s, const uint8_t *data, size_t len)
{
    while (len > 0) {
        size_t n = sizeof s->buf - s->len < len ? sizeof s->buf - s->len : len;
        memcpy(s->buf + s->len, data, n);
        s->len += n;
        data += n;
        len -= n;
        if (s->len == sizeof s->buf) {
            s->write(s->ctx, s->buf, s->len);
            s->len = 0;
        }
    }
}

void tt_cobs_write(const uint8_t *in, size_t len, tt_write_fn write, void *ctx)
{
    stage s = {.len = 0, .write = write, .ctx = ctx};
    size_t i = 0;
    for (;;) {
        size_t run = 0;
        while (i + run < len && in[i + run] != 0 && run < 254u) {
            run++;
        }
        uint8_t code = (uint8_t)(run + 1u);
        stage_put(&s, &code, 1);
        stage_put(&s, in + i, run);
        i += run;
        if (run == 254u) {
            continue; /* a full block stands for no zero; the next block starts right here */
        }
        if (i == len) {
            break;
        }
        i++; /* the zero this block stands for */
    }
    const uint8_t delimiter = 0;
    stage_put(&s, &delimiter, 1);
    if (s.len > 0) {
        write(ctx, s.buf, s.len);
    }
}

void tt_frame_send(uint8_t *raw, uint8_t type, uint8_t seq, size_t payload_len, tt_write_fn write,
                   void *ctx)
{
    tt_cobs_write(raw, frame_seal(raw, type, seq, payload_len), write, ctx);
}
