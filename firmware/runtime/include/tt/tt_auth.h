/*
 * Link authorization (docs/security.md): a device provisioned with a 32-byte key accepts a
 * request other than HELLO only when it carries a MAC of this session, and MACs its replies.
 *
 *   session nonce  16 bytes the device issues in INFO at each HELLO (fresh: the port's entropy
 *                  and a count of nonces since boot, hashed with the key)
 *   request        payload | counter:u32le | tag:16, tag = BLAKE2b-128 keyed with the key over
 *                  "Q" | nonce | counter | type | seq | payload; the counter rises with every
 *                  request of the session (a replay or an older one is refused)
 *   reply          payload | tag:16 over "R" | nonce | counter (of the request) | type | seq |
 *                  payload
 *
 * The MAC is Monocypher's keyed BLAKE2b (RFC 7693): the same function as Python's
 * hashlib.blake2b(key=..., digest_size=16). No crypto is written here, only the message layout.
 */
#ifndef TT_AUTH_H
#define TT_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define TT_AUTH_KEY_SIZE 32u
#define TT_AUTH_NONCE_SIZE 16u
#define TT_AUTH_TAG_SIZE 16u
#define TT_AUTH_TRAILER (4u + TT_AUTH_TAG_SIZE) /* a request's counter and tag */
#define TT_PLAN_KEY_SIZE 32u /* the public key plans are signed for (EdDSA, BLAKE2b) */
#define TT_PLAN_SIG_SIZE 64u

/* Fills out[len] with what the port has of unpredictable bytes (a TRNG, the OS); 0 on success.
 * A port without a source may pass NULL: nonces then differ within a boot (a count) but may
 * repeat across boots (docs/security.md says where that matters). */
typedef int (*tt_entropy_fn)(void *ctx, uint8_t *out, size_t len);

typedef struct {
    bool enabled; /* a key is set: requests other than HELLO need a MAC */
    bool session; /* a HELLO has issued the nonce below */
    uint8_t key[TT_AUTH_KEY_SIZE];
    uint8_t nonce[TT_AUTH_NONCE_SIZE];
    uint32_t counter; /* the last accepted request's counter in this session */
    uint32_t issued;  /* nonces issued since boot */
    tt_entropy_fn entropy;
    void *entropy_ctx;
} tt_auth;

void tt_auth_init(tt_auth *a, const uint8_t key[TT_AUTH_KEY_SIZE], tt_entropy_fn entropy,
                  void *ctx);
/* A new session: a fresh nonce, counters from 0. */
void tt_auth_new_session(tt_auth *a);
/* The tag of a request ('Q') or a reply ('R') of this session. */
void tt_auth_tag(const tt_auth *a, uint8_t direction, uint32_t counter, uint8_t type, uint8_t seq,
                 const uint8_t *payload, size_t len, uint8_t tag[TT_AUTH_TAG_SIZE]);
/* Constant-time comparison of two tags. */
bool tt_auth_tag_equal(const uint8_t a[TT_AUTH_TAG_SIZE], const uint8_t b[TT_AUTH_TAG_SIZE]);
/* The key from 64 hex digits (a key file's `mac-key = ...` value); 0 on success, -1 otherwise. */
int tt_auth_key_from_hex(const char *hex, uint8_t key[TT_AUTH_KEY_SIZE]);
/* The key from a key file's text (tinyhost keygen): its line `mac-key = <64 hex digits>`. */
int tt_auth_key_from_text(const char *text, uint8_t key[TT_AUTH_KEY_SIZE]);
/* Any `NAME = <2 x len hex digits>` line of a key file's text (e.g. "sign-public-key", 32
 * bytes); 0 found and well-formed, -1 otherwise. */
int tt_auth_hex_from_text(const char *text, const char *name, uint8_t *out, size_t len);
/* A signed plan (tinyhost compile --sign-key): sig is Monocypher's EdDSA (BLAKE2b) signature of
 * "TTPLAN1" | sha256 of the plan file, by the secret key whose public half is key. */
bool tt_auth_plan_signed(const uint8_t key[TT_PLAN_KEY_SIZE], const uint8_t sig[TT_PLAN_SIG_SIZE],
                         const uint8_t sha256[32]);
/* Overwrites a key (or any secret) so the compiler cannot drop the stores. */
void tt_auth_wipe(void *secret, size_t len);

#endif
