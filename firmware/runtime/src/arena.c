#include "tt/tt_arena.h"

void tt_arena_init(tt_arena *arena, uint8_t *base, size_t capacity)
{
    /* Keep the tail end 8-byte aligned so every tail allocation is. */
    size_t misalign = ((uintptr_t)(base + capacity)) % 8u;
    arena->base = base;
    arena->capacity = capacity - misalign;
    arena->tail_used = 0;
}

void tt_arena_reset(tt_arena *arena)
{
    arena->tail_used = 0;
}

void *tt_arena_alloc_tail(tt_arena *arena, size_t size, size_t head_bytes)
{
    size_t rounded = (size + 7u) & ~(size_t)7u;
    if (rounded < size || head_bytes > arena->capacity ||
        rounded > arena->capacity - head_bytes - arena->tail_used) {
        return NULL;
    }
    arena->tail_used += rounded;
    return arena->base + arena->capacity - arena->tail_used;
}
