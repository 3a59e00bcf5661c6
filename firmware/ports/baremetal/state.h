/*
 * Checkpoints of the bare-metal port: the trained parameters and step count in a region of
 * memory that a warm reset leaves alone (mps2_an386.ld .state), beside the plan slots, which it
 * leaves alone too. Two records, A and B: a save overwrites the older one, its header last (the
 * magic word the very last), so a reset in the middle of a save leaves the other record whole.
 */
#ifndef TT_BAREMETAL_STATE_H
#define TT_BAREMETAL_STATE_H

#include <stddef.h>
#include <stdint.h>

#include "tt/tt_device.h"

typedef struct {
    tt_device *dev;
    uint8_t *region;
    size_t half; /* bytes per record */
    uint32_t seq; /* the newest record's sequence number (0: none) */
    int newest;   /* its index, 0 or 1 */
} tt_state;

void tt_state_attach(tt_state *st, tt_device *dev, uint8_t *region, size_t size);
/* The device's checkpoint hook (tt_device_set_checkpoint(dev, tt_state_save, st)). 0: saved. */
int tt_state_save(void *ctx);
/* At boot: the newest whole record's plan (from its slot) and parameters into the device.
 * 1 restored, 0 no record, -1 a record whose plan no longer loads (err says why). */
int tt_state_restore(tt_state *st, tt_error *err);

#endif
