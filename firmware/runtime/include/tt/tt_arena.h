/*
 * The arena: one caller-provided buffer. The plan's tensors sit at the head at the offsets the
 * compiler planned; the decoded plan tables are allocated from the tail (as TFLite Micro keeps
 * persistent data at the tail), so the two never overlap.
 */
#ifndef TT_ARENA_H
#define TT_ARENA_H

#include <stddef.h>
#include <stdint.h>
#include "tt/tt_status.h"

typedef struct {
    uint8_t *base;
    size_t capacity;
    size_t tail_used; /* bytes allocated from the tail */
} tt_arena;

void tt_arena_init(tt_arena *arena, uint8_t *base, size_t capacity);
/* Forgets every tail allocation. */
void tt_arena_reset(tt_arena *arena);
/* Allocates size bytes (aligned to 8) from the tail; NULL when head_bytes + tail would not fit. */
void *tt_arena_alloc_tail(tt_arena *arena, size_t size, size_t head_bytes);

#endif
