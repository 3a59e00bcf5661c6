/*
 * libFuzzer target: bytes arriving on the link of a device that runs a plan (the one named by
 * TT_FUZZ_PLAN, loaded as a port restores its plan at boot; none: a device without a plan).
 *
 * Random bytes almost never carry a valid CRC, so the first input byte picks how the rest is
 * read: odd, as raw link bytes (framing, COBS, resync); even, as records [type, length (2 B,
 * little-endian), payload] that are framed properly with increasing sequence numbers, so the
 * fuzzer reaches every message handler with payloads of its choosing.
 * Bit 1 of the first byte provisions the device with a key and a plan key (docs/security.md):
 * PLAN_BEGIN then needs a plan signature (the fuzzer's bytes, checked by EdDSA); raw bytes then
 * meet the MAC check; records open a session (HELLO) and carry the session's counter and MAC
 * (the type's bit 7 set: the counter of the previous record again, a replay; a length's top bit
 * set: a flipped tag), so the handlers are reached through the authorization path too.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tt/tt_auth.h"
#include "tt/tt_device.h"
#include "tt/tt_frame.h"

#define ARENA_BYTES (256u * 1024u)
#define SLOT_BYTES (128u * 1024u)

static _Alignas(16) uint8_t arena_mem[ARENA_BYTES];
static _Alignas(16) uint8_t slots[2][SLOT_BYTES];
static uint8_t plan_file[SLOT_BYTES];
static size_t plan_len;
static tt_device dev;
static uint8_t raw[TT_RAW_MAX];
static uint8_t wire[TT_ENCODED_MAX];
static size_t written; /* reply bytes: read so that every byte a reply carries is touched */

static void port_write(void *ctx, const uint8_t *data, size_t len)
{
    (void)ctx;
    for (size_t i = 0; i < len; i++) {
        written += data[i];
    }
}

static uint32_t no_cost(void *ctx)
{
    (void)ctx;
    return 0;
}

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    const char *path = getenv("TT_FUZZ_PLAN");
    FILE *f = path != NULL ? fopen(path, "rb") : NULL;
    if (f != NULL) {
        plan_len = fread(plan_file, 1, sizeof plan_file, f);
        fclose(f);
    } else if (path != NULL) {
        fprintf(stderr, "fuzz_device: cannot read TT_FUZZ_PLAN=%s\n", path);
        exit(2);
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    tt_port port = {"fuzz", "none", no_cost, port_write, NULL};
    memset(arena_mem, 0, sizeof arena_mem);
    tt_device_init(&dev, &port, arena_mem, sizeof arena_mem, slots[0], slots[1], SLOT_BYTES);
    if (plan_len > 0) {
        memcpy(slots[0], plan_file, plan_len);
        tt_error err = {TT_OK, ""};
        if (tt_device_restore(&dev, 0, plan_len, &err) != TT_OK) {
            fprintf(stderr, "fuzz_device: TT_FUZZ_PLAN does not load: %s\n", err.msg);
            abort();
        }
    }
    if (size == 0) {
        return 0;
    }
    bool keyed = (data[0] & 2u) != 0;
    static const uint8_t key[TT_AUTH_KEY_SIZE] = {1, 2, 3, 4, 5, 6, 7, 8};
    if (keyed) { /* signed plans too: PLAN_BEGIN's signature meets crypto_eddsa_check */
        tt_device_set_auth(&dev, key, NULL, NULL);
        tt_device_set_plan_key(&dev, key);
    }
    if (data[0] & 1u) {
        tt_device_receive(&dev, data + 1, size - 1);
        return 0;
    }
    uint8_t seq = 1;
    uint32_t counter = 0;
    if (keyed) { /* a session: HELLO, as a host starts one */
        size_t n = tt_frame_encode(raw, TT_MSG_HELLO, seq++, 0, wire);
        tt_device_receive(&dev, wire, n);
    }
    for (size_t i = 1; i + 3 <= size;) {
        uint8_t type = data[i];
        size_t len = (size_t)data[i + 1] | (size_t)data[i + 2] << 8;
        bool flip = (len & 0x8000u) != 0;
        len &= 0x7FFFu;
        i += 3;
        len = len < size - i ? len : size - i;
        len = len < TT_MAX_PAYLOAD ? len : TT_MAX_PAYLOAD;
        memcpy(raw + 2, data + i, len);
        i += len;
        if (keyed) {
            bool replay = (type & 0x80u) != 0 && counter > 0;
            type &= 0x7Fu;
            counter = replay ? counter : counter + 1u;
            uint8_t *trailer = raw + 2 + len;
            for (unsigned b = 0; b < 4; b++) {
                trailer[b] = (uint8_t)(counter >> (8u * b));
            }
            tt_auth_tag(&dev.auth, 'Q', counter, type, seq, raw + 2, len, trailer + 4);
            trailer[4] ^= flip ? 1u : 0u;
            len += TT_AUTH_TRAILER;
        }
        size_t n = tt_frame_encode(raw, type, seq++, len, wire);
        tt_device_receive(&dev, wire, n);
    }
    return 0;
}
