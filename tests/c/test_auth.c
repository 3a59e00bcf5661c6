/*
 * The link's MAC layout (tt_auth.h) against known answers computed on the host with Python's
 * hashlib.blake2b(key=..., digest_size=16) through tinyhost.link.auth.tag (tests/host/test_link_auth.py
 * computes the same three values): Monocypher's keyed BLAKE2b and the host's agree. And the key
 * file's line as the simulated device and the bare-metal build read it.
 */
#include <stdint.h>
#include <string.h>

#include "monocypher.h"
#include "tt/tt_auth.h"
#include "tt_test.h"

static void hex(const uint8_t *b, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[b[i] >> 4];
        out[2 * i + 1] = digits[b[i] & 15u];
    }
    out[2 * n] = '\0';
}

static void test_known_answers(void)
{
    uint8_t key[32], payload[200], tag[16];
    char got[33];
    for (unsigned i = 0; i < sizeof key; i++) {
        key[i] = (uint8_t)i;
    }
    for (unsigned i = 0; i < sizeof payload; i++) {
        payload[i] = (uint8_t)i;
    }
    tt_auth a;
    tt_auth_init(&a, key, NULL, NULL);
    for (unsigned i = 0; i < sizeof a.nonce; i++) {
        a.nonce[i] = (uint8_t)(100u + i);
    }
    tt_auth_tag(&a, 'Q', 0x01020304u, 6, 0xFE, payload, sizeof payload, tag);
    hex(tag, 16, got);
    TT_CHECK_MSG(strcmp(got, "e8fa9c54e11836e00665b060df817e7a") == 0, "request tag %s", got);
    tt_auth_tag(&a, 'R', 7, 0x86, 9, payload, 0, tag);
    hex(tag, 16, got);
    TT_CHECK_MSG(strcmp(got, "903e4b80d48612628d8714b74ae8f2ee") == 0, "reply tag %s", got);
    crypto_blake2b_keyed(tag, 16, key, 32, (const uint8_t *)"abc", 3);
    hex(tag, 16, got);
    TT_CHECK_MSG(strcmp(got, "1a64be47e4729d951c302ee543f97cf3") == 0, "blake2b %s", got);
    tt_test_case("keyed BLAKE2b tags equal the host's (hashlib)", 1, NULL);

    /* Sessions: each nonce differs, even without entropy (the count). */
    uint8_t first[16];
    tt_auth_new_session(&a);
    memcpy(first, a.nonce, 16);
    tt_auth_new_session(&a);
    TT_CHECK(memcmp(first, a.nonce, 16) != 0);
    TT_CHECK(a.counter == 0 && a.session);
    TT_CHECK(tt_auth_tag_equal(first, first) && !tt_auth_tag_equal(first, a.nonce));
    tt_test_case("fresh nonce per session", 1, NULL);
}

static void test_key_text(void)
{
    uint8_t key[32];
    const char *good = "# comment\n  mac-key = 000102030405060708090a0b0c0d0e0f"
                       "101112131415161718191A1B1C1D1E1F\n";
    TT_CHECK(tt_auth_key_from_text(good, key) == 0);
    for (unsigned i = 0; i < 32; i++) {
        TT_CHECK(key[i] == i);
    }
    TT_CHECK(tt_auth_key_from_text("mac-key = 0011\n", key) == -1); /* short */
    TT_CHECK(tt_auth_key_from_text("# nothing here\n", key) == -1); /* no line */
    TT_CHECK(tt_auth_key_from_text("mac-key = zz", key) == -1);     /* not hex */
    char longer[128] = "mac-key = ";
    for (int i = 0; i < 66; i++) {
        strcat(longer, "a");
    }
    TT_CHECK(tt_auth_key_from_text(longer, key) == -1); /* 66 digits */
    tt_test_case("key file line", 1, NULL);
}

int main(void)
{
    test_known_answers();
    test_key_text();
    return tt_test_summary("test_auth");
}
