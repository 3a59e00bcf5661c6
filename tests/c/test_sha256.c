/* SHA-256 (tt_sha256.h) against the FIPS 180-2 / NIST example vectors. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tt/tt_sha256.h"
#include "tt_test.h"

static void hex(const uint8_t d[TT_SHA256_SIZE], char out[2 * TT_SHA256_SIZE + 1])
{
    for (int i = 0; i < TT_SHA256_SIZE; i++) {
        snprintf(out + 2 * i, 3, "%02x", d[i]);
    }
}

static void check(const char *name, const uint8_t d[TT_SHA256_SIZE], const char *want)
{
    char got[2 * TT_SHA256_SIZE + 1];
    hex(d, got);
    char detail[160];
    snprintf(detail, sizeof detail, "got %s", got);
    tt_test_case(name, strcmp(got, want) == 0, detail);
}

/* One-shot, and byte by byte through the incremental interface: both must give `want`. */
static void check_message(const char *name, const char *msg, const char *want)
{
    const size_t len = strlen(msg);
    uint8_t *exact = malloc(len ? len : 1); /* exact size: ASan sees any over-read */
    memcpy(exact, msg, len);
    uint8_t d[TT_SHA256_SIZE];
    tt_sha256(exact, len, d);
    check(name, d, want);
    tt_sha256_ctx ctx;
    tt_sha256_init(&ctx);
    for (size_t i = 0; i < len; i++) {
        tt_sha256_update(&ctx, exact + i, 1);
    }
    tt_sha256_final(&ctx, d);
    char inc[128];
    snprintf(inc, sizeof inc, "%s, one byte at a time", name);
    check(inc, d, want);
    free(exact);
}

int main(void)
{
    check_message("sha256(\"\")", "",
                  "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    check_message("sha256(\"abc\")", "abc",
                  "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    check_message("sha256(448-bit message)",
                  "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
                  "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
    check_message("sha256(896-bit message)",
                  "abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnopjklmnopq"
                  "klmnopqrlmnopqrsmnopqrstnopqrstu",
                  "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1");
    /* 55, 56 and 64 bytes: the padding boundaries. */
    check_message("sha256(55 x 'a')", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
                  "9f4390f8d30c2dd92ec9f095b65e2b9ae9b0a925a5258e241c9f1e910f734318");
    check_message("sha256(56 x 'a')", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
                  "b35439a4ac6f0948b6d6f9e3c6af0f5f590ce20f1bde7090ef7970686ec6738a");
    check_message("sha256(64 x 'a')",
                  "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
                  "ffe054fe7ae0cb6dc65c3af9b61d5209f439851db43d0ba5997337df154668eb");

    /* One million 'a', fed in odd-sized pieces (1, 3, 7, ..., 127 bytes, cycling). */
    static uint8_t a[128];
    memset(a, 'a', sizeof a);
    tt_sha256_ctx ctx;
    tt_sha256_init(&ctx);
    size_t done = 0;
    for (size_t k = 0; done < 1000000; k++) {
        size_t piece = 2 * (k % 64) + 1;
        if (piece > 1000000 - done) {
            piece = 1000000 - done;
        }
        tt_sha256_update(&ctx, a, piece);
        done += piece;
    }
    uint8_t d[TT_SHA256_SIZE];
    tt_sha256_final(&ctx, d);
    check("sha256(1,000,000 x 'a') in odd-sized pieces", d,
          "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
    return tt_test_summary("test_sha256");
}
