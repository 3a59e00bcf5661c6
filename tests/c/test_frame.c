/*
 * Link framing (tt_frame.h): COBS, CRC-32 and whole frames.
 *
 * Decoders get exact-size heap buffers (ASan reports a read or write past either), and random
 * input is decoded too: a decoder must reject garbage, never overrun.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tt/tt_frame.h"
#include "tt_test.h"

static uint32_t rng_state = 12345u;

static uint32_t rnd(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 17;
    rng_state ^= rng_state << 5;
    return rng_state;
}

static uint8_t *dup_exact(const uint8_t *data, size_t len)
{
    uint8_t *p = malloc(len ? len : 1);
    if (len) {
        memcpy(p, data, len);
    }
    return p;
}

/* What tt_cobs_write writes: gathered, with the largest piece it was given in. */
typedef struct {
    uint8_t *buf;
    size_t len, cap, largest_piece;
} gathered;

static void gather(void *ctx, const uint8_t *data, size_t len)
{
    gathered *g = ctx;
    if (g->len + len <= g->cap) {
        memcpy(g->buf + g->len, data, len);
    }
    g->len += len;
    g->largest_piece = len > g->largest_piece ? len : g->largest_piece;
}

/* The streamed encoder writes exactly tt_cobs_encode's bytes, in pieces of at most 64. */
static int cobs_write_matches(const uint8_t *in, size_t len, const uint8_t *enc, size_t n)
{
    gathered g = {malloc(n), 0, n, 0};
    tt_cobs_write(in, len, gather, &g);
    int ok = g.len == n && memcmp(g.buf, enc, n) == 0 && g.largest_piece <= 64;
    free(g.buf);
    return ok;
}

/* Encodes, checks the encoding (no 0x00 but the final delimiter, within TT_COBS_MAX, the same
 * bytes streamed by tt_cobs_write), decodes
 * into a separate exact-size buffer and in place; both must give the input back. */
static int cobs_round_trip(const uint8_t *in, size_t len)
{
    size_t max = TT_COBS_MAX(len);
    uint8_t *enc = malloc(max);
    size_t n = tt_cobs_encode(in, len, enc);
    int ok = n >= 2 && n <= max && enc[n - 1] == 0 && memchr(enc, 0, n - 1) == NULL &&
             cobs_write_matches(in, len, enc, n);
    if (!ok) {
        free(enc);
        return 0;
    }
    uint8_t *src = dup_exact(enc, n - 1);
    uint8_t *out = malloc(len ? len : 1);
    size_t out_len = (size_t)-1;
    ok = tt_cobs_decode(src, n - 1, out, &out_len) == TT_OK && out_len == len &&
         (len == 0 || memcmp(out, in, len) == 0);
    out_len = (size_t)-1;
    ok = ok && tt_cobs_decode(src, n - 1, src, &out_len) == TT_OK && out_len == len &&
         (len == 0 || memcmp(src, in, len) == 0);
    free(out);
    free(src);
    free(enc);
    return ok;
}

static void test_cobs_vectors(void)
{
    /* Wikipedia's examples (the encoder may add a final 0x01 code after a full 254-byte block;
     * both forms are valid COBS and decode the same). */
    static const struct {
        uint8_t in[8];
        size_t in_len;
        uint8_t out[10];
        size_t out_len;
    } v[] = {
        {{0}, 0, {0x01, 0x00}, 2},
        {{0x00}, 1, {0x01, 0x01, 0x00}, 3},
        {{0x00, 0x00}, 2, {0x01, 0x01, 0x01, 0x00}, 4},
        {{0x00, 0x11, 0x00}, 3, {0x01, 0x02, 0x11, 0x01, 0x00}, 5},
        {{0x11, 0x22, 0x00, 0x33}, 4, {0x03, 0x11, 0x22, 0x02, 0x33, 0x00}, 6},
        {{0x11, 0x22, 0x33, 0x44}, 4, {0x05, 0x11, 0x22, 0x33, 0x44, 0x00}, 6},
        {{0x11, 0x00, 0x00, 0x00}, 4, {0x02, 0x11, 0x01, 0x01, 0x01, 0x00}, 6},
    };
    int ok = 1;
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
        uint8_t enc[16];
        size_t n = tt_cobs_encode(v[i].in, v[i].in_len, enc);
        TT_CHECK_MSG(n == v[i].out_len && memcmp(enc, v[i].out, n) == 0, "COBS vector %u",
                     (unsigned)i);
        ok = ok && n == v[i].out_len && memcmp(enc, v[i].out, n) == 0;
    }
    tt_test_case("COBS known vectors", ok, NULL);

    /* 254 non-zero bytes as Python's cobs package encodes them (no trailing code). */
    uint8_t block[255], out[254];
    block[0] = 0xFF;
    for (int i = 1; i < 255; i++) {
        block[i] = (uint8_t)i;
    }
    size_t out_len = 0;
    ok = tt_cobs_decode(block, 255, out, &out_len) == TT_OK && out_len == 254 &&
         memcmp(out, block + 1, 254) == 0;
    tt_test_case("COBS decodes a full block without a trailing code (host encoder's form)", ok,
                 NULL);
}

static void test_cobs_round_trips(void)
{
    static uint8_t buf[1000];
    int ok = cobs_round_trip(buf, 0);
    tt_test_case("COBS round trip: empty", ok, NULL);

    memset(buf, 0, sizeof buf);
    ok = 1;
    for (size_t n = 1; n <= 600; n += (n < 20 ? 1 : 97)) {
        ok = ok && cobs_round_trip(buf, n);
    }
    tt_test_case("COBS round trip: all zeros", ok, NULL);

    static const size_t runs[] = {1, 2, 253, 254, 255, 256, 508, 509, 1000};
    for (size_t r = 0; r < sizeof runs / sizeof runs[0]; r++) {
        for (size_t i = 0; i < runs[r]; i++) {
            buf[i] = (uint8_t)(1 + i % 255);
        }
        char name[64];
        snprintf(name, sizeof name, "COBS round trip: %u bytes without zeros", (unsigned)runs[r]);
        ok = cobs_round_trip(buf, runs[r]);
        /* ... and with a zero on either side of the run */
        static uint8_t wrapped[1002];
        wrapped[0] = 0;
        memcpy(wrapped + 1, buf, runs[r]);
        wrapped[runs[r] + 1] = 0;
        ok = ok && cobs_round_trip(wrapped, runs[r] + 2);
        tt_test_case(name, ok, NULL);
    }
    /* Encoded size: a 1000-byte run without zeros costs ceil(1000/254) code bytes + delimiter. */
    uint8_t *enc = malloc(TT_COBS_MAX(1000));
    TT_CHECK(tt_cobs_encode(buf, 1000, enc) <= TT_COBS_MAX(1000));
    free(enc);

    ok = 1;
    for (int trial = 0; trial < 3000 && ok; trial++) {
        size_t n = rnd() % 700;
        unsigned zero_pct = rnd() % 4 == 0 ? 0 : rnd() % 50;
        for (size_t i = 0; i < n; i++) {
            buf[i] = (rnd() % 100 < zero_pct) ? 0 : (uint8_t)rnd();
        }
        ok = cobs_round_trip(buf, n);
        if (!ok) {
            printf("     trial %d, %u bytes\n", trial, (unsigned)n);
        }
    }
    tt_test_case("COBS round trip: 3000 random buffers", ok, NULL);
}

static void test_cobs_malformed(void)
{
    static const struct {
        const char *what;
        uint8_t in[6];
        size_t len;
    } bad[] = {
        {"a zero code byte", {0x00}, 1},
        {"a zero code after a block", {0x02, 0x11, 0x00}, 3},
        {"a code past the end", {0x05, 0x11, 0x22}, 3},
        {"a full block past the end", {0xFF, 0x11}, 2},
        {"a zero inside a block", {0x03, 0x11, 0x00}, 3},
        {"a zero inside a later block", {0x02, 0x11, 0x03, 0x22, 0x00, 0x33}, 6},
    };
    int ok = 1;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        uint8_t *in = dup_exact(bad[i].in, bad[i].len);
        uint8_t *out = malloc(bad[i].len);
        size_t out_len = 0;
        tt_status st = tt_cobs_decode(in, bad[i].len, out, &out_len);
        TT_CHECK_MSG(st == TT_ERR_PROTO, "COBS decode accepted %s", bad[i].what);
        ok = ok && st == TT_ERR_PROTO;
        free(out);
        free(in);
    }
    tt_test_case("COBS decode rejects malformed input", ok, NULL);

    /* Random garbage: never writes more than its input's length, never reads past it. */
    int accepted = 0;
    for (int trial = 0; trial < 20000; trial++) {
        size_t n = 1 + rnd() % 300;
        uint8_t *in = malloc(n), *out = malloc(n);
        for (size_t i = 0; i < n; i++) {
            in[i] = (rnd() % 8 == 0) ? (uint8_t)(rnd() % 4) : (uint8_t)rnd();
        }
        size_t out_len = 0;
        if (tt_cobs_decode(in, n, out, &out_len) == TT_OK) {
            accepted++;
            TT_CHECK(out_len <= n);
        }
        free(out);
        free(in);
    }
    printf("     (%d of 20000 random buffers were valid COBS)\n", accepted);
    tt_test_case("COBS decode of 20000 random buffers stays in bounds", 1, NULL);
}

static void test_crc32(void)
{
    const uint8_t *digits = (const uint8_t *)"123456789";
    const uint8_t *fox = (const uint8_t *)"The quick brown fox jumps over the lazy dog";
    TT_CHECK(tt_crc32(0, digits, 9) == 0xCBF43926u);
    TT_CHECK(tt_crc32(0, NULL, 0) == 0u);
    TT_CHECK(tt_crc32(0, (const uint8_t *)"a", 1) == 0xE8B7BE43u);
    TT_CHECK(tt_crc32(0, fox, strlen((const char *)fox)) == 0x414FA339u);
    /* Incremental: crc32(crc32(a), b) == crc32(a b), as zlib's. */
    TT_CHECK(tt_crc32(tt_crc32(0, digits, 4), digits + 4, 5) == 0xCBF43926u);
    tt_test_case("CRC-32 known vectors", 1, NULL);
}

/* Encodes a frame around payload; returns the encoded length (with the delimiter). */
static size_t make_frame(uint8_t type, uint8_t seq, const uint8_t *payload, size_t len,
                         uint8_t *out)
{
    uint8_t *raw = malloc(len + TT_FRAME_OVERHEAD);
    if (len) {
        memcpy(raw + 2, payload, len);
    }
    size_t n = tt_frame_encode(raw, type, seq, len, out);
    free(raw);
    return n;
}

static void test_frames(void)
{
    /* The bytes host/tinyhost/link/framing.py:encode_frame gives for the same frames. */
    static const uint8_t payload[] = {0x83, 0x01, 0xfa, 0x3d, 0xcc, 0xcc, 0xcd, 0x40};
    static const uint8_t want[] = {0x0f, 0x06, 0x2a, 0x83, 0x01, 0xfa, 0x3d, 0xcc, 0xcc,
                                   0xcd, 0x40, 0xc0, 0x09, 0x96, 0xc3, 0x00};
    static const uint8_t want_hello[] = {0x02, 0x01, 0x05, 0xbe, 0x23, 0xc2, 0x58, 0x00};
    uint8_t enc[TT_COBS_MAX(2000 + TT_FRAME_OVERHEAD)];
    size_t n = make_frame(0x06, 0x2A, payload, sizeof payload, enc);
    TT_CHECK(n == sizeof want && memcmp(enc, want, n) == 0);
    n = make_frame(0x01, 0x00, NULL, 0, enc);
    TT_CHECK(n == sizeof want_hello && memcmp(enc, want_hello, n) == 0);
    tt_test_case("frames are byte-identical to the host's encode_frame", 1, NULL);

    /* tt_frame_send (the device's replies) writes the same bytes. */
    uint8_t reply[sizeof payload + TT_FRAME_OVERHEAD], sent[sizeof want];
    memcpy(reply + 2, payload, sizeof payload);
    gathered g = {sent, 0, sizeof sent, 0};
    tt_frame_send(reply, 0x06, 0x2A, sizeof payload, gather, &g);
    tt_test_case("tt_frame_send writes tt_frame_encode's bytes",
                 g.len == sizeof want && memcmp(sent, want, sizeof want) == 0, NULL);

    /* Round trips, including payloads with zeros and past one COBS block. */
    static uint8_t data[2000];
    int ok = 1;
    for (size_t len = 0; len <= 2000 && ok; len += (len < 16 ? 1 : 251)) {
        for (size_t i = 0; i < len; i++) {
            data[i] = (uint8_t)(i % 5 == 0 ? 0 : rnd());
        }
        uint8_t type = (uint8_t)rnd(), seq = (uint8_t)rnd();
        n = make_frame(type, seq, data, len, enc);
        uint8_t *buf = dup_exact(enc, n - 1);
        tt_frame f;
        ok = tt_frame_decode(buf, n - 1, &f) == TT_OK && f.type == type && f.seq == seq &&
             f.payload_len == len && (len == 0 || memcmp(f.payload, data, len) == 0);
        free(buf);
    }
    tt_test_case("frame encode/decode round trip", ok, NULL);

    /* Any single-bit error is caught (the CRC catches what COBS does not). */
    for (size_t i = 0; i < 40; i++) {
        data[i] = (uint8_t)(i * 7 + 1);
    }
    uint8_t raw[64];
    memcpy(raw + 2, data, 40);
    tt_frame_encode(raw, 0x06, 9, 40, enc);
    ok = 1;
    for (size_t byte = 0; byte < 46; byte++) {
        for (unsigned bit = 0; bit < 8; bit++) {
            uint8_t bad[46];
            memcpy(bad, raw, 46);
            bad[byte] ^= (uint8_t)(1u << bit);
            uint8_t benc[TT_COBS_MAX(46)];
            size_t bn = tt_cobs_encode(bad, 46, benc);
            uint8_t *buf = dup_exact(benc, bn - 1);
            tt_frame f;
            ok = ok && tt_frame_decode(buf, bn - 1, &f) == TT_ERR_PROTO;
            free(buf);
        }
    }
    tt_test_case("frame decode rejects every single-bit error (CRC mismatch)", ok, NULL);

    /* Too short: fewer than type + seq + crc bytes, even with a matching CRC. */
    uint8_t shortraw[5] = {0x01};
    uint32_t crc = tt_crc32(0, shortraw, 1);
    for (unsigned i = 0; i < 4; i++) {
        shortraw[1 + i] = (uint8_t)(crc >> (8 * i));
    }
    uint8_t senc[TT_COBS_MAX(5)];
    size_t sn = tt_cobs_encode(shortraw, 5, senc);
    tt_frame f;
    uint8_t *buf = dup_exact(senc, sn - 1);
    TT_CHECK_STATUS(tt_frame_decode(buf, sn - 1, &f), TT_ERR_PROTO);
    free(buf);
    buf = dup_exact(senc, 1);
    TT_CHECK_STATUS(tt_frame_decode(buf, 0, &f), TT_ERR_PROTO);
    free(buf);

    /* Random garbage frames: rejected or decoded, never out of bounds. */
    for (int trial = 0; trial < 5000; trial++) {
        size_t len = rnd() % 80;
        buf = malloc(len ? len : 1);
        for (size_t i = 0; i < len; i++) {
            buf[i] = (uint8_t)(1 + rnd() % 255);
        }
        if (tt_frame_decode(buf, len, &f) == TT_OK) {
            TT_CHECK(f.payload_len + TT_FRAME_OVERHEAD <= len);
        }
        free(buf);
    }
    tt_test_case("frame decode of short and random frames", 1, NULL);
}

int main(void)
{
    test_cobs_vectors();
    test_cobs_round_trips();
    test_cobs_malformed();
    test_crc32();
    test_frames();
    return tt_test_summary("test_frame");
}
