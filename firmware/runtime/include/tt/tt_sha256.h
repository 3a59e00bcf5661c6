/* SHA-256 (FIPS 180-4), for plan identity and upload integrity. */
#ifndef TT_SHA256_H
#define TT_SHA256_H

#include <stddef.h>
#include <stdint.h>

#define TT_SHA256_SIZE 32

typedef struct {
    uint32_t state[8];
    uint64_t length; /* bytes hashed so far */
    uint8_t block[64];
    size_t fill;
} tt_sha256_ctx;

void tt_sha256_init(tt_sha256_ctx *ctx);
void tt_sha256_update(tt_sha256_ctx *ctx, const uint8_t *data, size_t len);
void tt_sha256_final(tt_sha256_ctx *ctx, uint8_t digest[TT_SHA256_SIZE]);
void tt_sha256(const uint8_t *data, size_t len, uint8_t digest[TT_SHA256_SIZE]);

#endif
