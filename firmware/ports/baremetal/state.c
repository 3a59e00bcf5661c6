#include "state.h"

#include <string.h>

#include "tt/tt_frame.h"

#define STATE_MAGIC 0x54545331u /* "TTS1" */

typedef struct {
    uint32_t magic, seq, slot, plan_len, steps, params_len, crc;
} record_header;

typedef struct {
    uint8_t *at;
    size_t room;
    uint32_t crc;
} record_writer;

static record_header *header(const tt_state *st, int i)
{
    return (record_header *)(st->region + (size_t)i * st->half);
}

static uint32_t header_crc(const record_header *h, uint32_t params_crc)
{
    uint32_t fields[5] = {h->seq, h->slot, h->plan_len, h->steps, h->params_len};
    return tt_crc32(params_crc, (const uint8_t *)fields, sizeof fields);
}

static int valid(const tt_state *st, int i)
{
    const record_header *h = header(st, i);
    if (h->magic != STATE_MAGIC || h->params_len > st->half - sizeof *h) {
        return 0;
    }
    uint32_t crc = tt_crc32(0, (const uint8_t *)(h + 1), h->params_len);
    return header_crc(h, crc) == h->crc;
}

void tt_state_attach(tt_state *st, tt_device *dev, uint8_t *region, size_t size)
{
    st->dev = dev;
    st->region = region;
    st->half = size / 2u & ~(size_t)15u;
    st->seq = 0;
    st->newest = 0;
    for (int i = 0; i < 2; i++) {
        if (valid(st, i) && header(st, i)->seq > st->seq) {
            st->seq = header(st, i)->seq;
            st->newest = i;
        }
    }
}

static void put(void *ctx, const uint8_t *data, size_t len)
{
    record_writer *w = ctx;
    if (len <= w->room) {
        memcpy(w->at, data, len);
        w->crc = tt_crc32(w->crc, data, len);
    }
    w->at += len;
    w->room = len <= w->room ? w->room - len : 0;
}

int tt_state_save(void *ctx)
{
    tt_state *st = ctx;
    const tt_device *dev = st->dev;
    int target = st->seq == 0 ? 0 : 1 - st->newest;
    record_header *h = header(st, target);
    size_t room = st->half - sizeof *h;
    if (tt_device_params(dev, NULL, NULL) > room) {
        return -1; /* the parameters do not fit a record */
    }
    h->magic = 0; /* torn from here until the magic is written back */
    record_writer w = {(uint8_t *)(h + 1), room, 0};
    size_t params = tt_device_params(dev, put, &w);
    record_header fresh = {0, st->seq + 1u, (uint32_t)dev->active, (uint32_t)dev->active_len,
                           dev->steps, (uint32_t)params, 0};
    fresh.crc = header_crc(&fresh, w.crc);
    memcpy((uint8_t *)h + sizeof h->magic, (const uint8_t *)&fresh + sizeof fresh.magic,
           sizeof fresh - sizeof fresh.magic);
    __asm__ volatile("" ::: "memory"); /* everything above is stored before the magic */
    h->magic = STATE_MAGIC;
    st->seq = fresh.seq;
    st->newest = target;
    return 0;
}

int tt_state_restore(tt_state *st, tt_error *err)
{
    if (st->seq == 0) {
        return 0;
    }
    const record_header *h = header(st, st->newest);
    if (tt_device_restore(st->dev, (int)h->slot, h->plan_len, err) != TT_OK ||
        tt_device_restore_params(st->dev, (const uint8_t *)(h + 1), h->params_len, h->steps,
                                 err) != TT_OK) {
        st->dev->loaded = false;
        return -1;
    }
    return 1;
}
