#include "stack_usage.h"

#include <stddef.h>

extern uint32_t __stack_limit[], __stack_top[];

uint32_t stack_peak_bytes(void)
{
    /* The stack grows down from __stack_top: scan up from the bottom for the first overwritten
     * word. volatile: the compiler must not assume the paint (written in assembly) is unchanged. */
    const volatile uint32_t *p = __stack_limit;
    while (p < __stack_top && *p == STACK_PAINT) {
        p++;
    }
    return (uint32_t)((uintptr_t)__stack_top - (uintptr_t)p);
}

uint32_t stack_size_bytes(void)
{
    return (uint32_t)((uintptr_t)__stack_top - (uintptr_t)__stack_limit);
}
