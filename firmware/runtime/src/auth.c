/* Link authorization: the message layout around Monocypher's keyed BLAKE2b (tt_auth.h). */
#include "tt/tt_auth.h"

#include <string.h>

#include "monocypher.h"

static void put_u32(uint8_t *p, uint32_t v)
{
    for (unsigned i = 0; i < 4; i++) {
        p[i] = (uint8_t)(v >> (8u * i));
    }
}

void tt_auth_init(tt_auth *a, const uint8_t key[TT_AUTH_KEY_SIZE], tt_entropy_fn entropy,
                  void *ctx)
{
    memset(a, 0, sizeof *a);
    a->enabled = true;
    memcpy(a->key, key, TT_AUTH_KEY_SIZE);
    a->entropy = entropy;
    a->entropy_ctx = ctx;
}

void tt_auth_new_session(tt_auth *a)
{
    /* nonce = BLAKE2b-128(key, "N" | issued | entropy): distinct within a boot by the count,
     * across boots by the port's entropy; keyed, so a weak source leaks nothing of the key. */
    uint8_t seed[1 + 4 + 32];
    seed[0] = 'N';
    put_u32(seed + 1, a->issued++);
    memset(seed + 5, 0, 32);
    if (a->entropy != NULL) {
        (void)a->entropy(a->entropy_ctx, seed + 5, 32); /* a failure leaves zeros: the count */
    }
    crypto_blake2b_keyed(a->nonce, sizeof a->nonce, a->key, sizeof a->key, seed, sizeof seed);
    tt_auth_wipe(seed, sizeof seed);
    a->counter = 0;
    a->session = true;
}

void tt_auth_tag(const tt_auth *a, uint8_t direction, uint32_t counter, uint8_t type, uint8_t seq,
                 const uint8_t *payload, size_t len, uint8_t tag[TT_AUTH_TAG_SIZE])
{
    uint8_t head[1 + TT_AUTH_NONCE_SIZE + 4 + 2];
    head[0] = direction;
    memcpy(head + 1, a->nonce, TT_AUTH_NONCE_SIZE);
    put_u32(head + 1 + TT_AUTH_NONCE_SIZE, counter);
    head[sizeof head - 2] = type;
    head[sizeof head - 1] = seq;
    crypto_blake2b_ctx ctx;
    crypto_blake2b_keyed_init(&ctx, TT_AUTH_TAG_SIZE, a->key, TT_AUTH_KEY_SIZE);
    crypto_blake2b_update(&ctx, head, sizeof head);
    crypto_blake2b_update(&ctx, payload, len);
    crypto_blake2b_final(&ctx, tag); /* also wipes ctx */
}

bool tt_auth_tag_equal(const uint8_t a[TT_AUTH_TAG_SIZE], const uint8_t b[TT_AUTH_TAG_SIZE])
{
    return crypto_verify16(a, b) == 0;
}

static int hex_digit(char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }
    return -1;
}

/* hex (NUL-terminated) is exactly 2 * len hex digits: into out. */
static int bytes_from_hex(const char *hex, uint8_t *out, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        int hi = hex_digit(hex[2 * i]);
        int lo = hi < 0 ? -1 : hex_digit(hex[2 * i + 1]);
        if (lo < 0) {
            return -1;
        }
        out[i] = (uint8_t)(hi << 4 | lo);
    }
    return hex[2 * len] == '\0' ? 0 : -1;
}

int tt_auth_key_from_hex(const char *hex, uint8_t key[TT_AUTH_KEY_SIZE])
{
    return bytes_from_hex(hex, key, TT_AUTH_KEY_SIZE);
}

int tt_auth_hex_from_text(const char *text, const char *name, uint8_t *out, size_t len)
{
    size_t name_len = strlen(name);
    for (const char *line = text; line != NULL && *line != '\0';) {
        while (*line == ' ' || *line == '\t') {
            line++;
        }
        const char *p = line + name_len;
        if (strncmp(line, name, name_len) == 0 && (*p == ' ' || *p == '\t' || *p == '=')) {
            while (*p == ' ' || *p == '\t' || *p == '=') {
                p++;
            }
            size_t n = 0;
            while (hex_digit(p[n]) >= 0) {
                n++;
            }
            bool ends = p[n] == '\0' || p[n] == '\n' || p[n] == '\r' || p[n] == ' ';
            if (!ends || n != 2 * len) {
                return -1;
            }
            for (size_t i = 0; i < len; i++) {
                out[i] = (uint8_t)(hex_digit(p[2 * i]) << 4 | hex_digit(p[2 * i + 1]));
            }
            return 0;
        }
        line = strchr(line, '\n');
        line = line != NULL ? line + 1 : NULL;
    }
    return -1;
}

int tt_auth_key_from_text(const char *text, uint8_t key[TT_AUTH_KEY_SIZE])
{
    return tt_auth_hex_from_text(text, "mac-key", key, TT_AUTH_KEY_SIZE);
}

bool tt_auth_plan_signed(const uint8_t key[TT_PLAN_KEY_SIZE], const uint8_t sig[TT_PLAN_SIG_SIZE],
                         const uint8_t sha256[32])
{
    uint8_t msg[7 + 32];
    memcpy(msg, "TTPLAN1", 7);
    memcpy(msg + 7, sha256, 32);
    return crypto_eddsa_check(sig, key, msg, sizeof msg) == 0;
}

void tt_auth_wipe(void *secret, size_t len)
{
    crypto_wipe(secret, len);
}
