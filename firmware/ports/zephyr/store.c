/* Plan slots and trained parameters in a flash partition (tt_zephyr/store.h). */
#include "tt_zephyr/store.h"

#include <errno.h>
#include <string.h>
#include <zephyr/devicetree.h>
#include <zephyr/drivers/flash.h>
#include <zephyr/sys/util.h>

#include "tt/tt_frame.h" /* tt_crc32 */

#if DT_NODE_EXISTS(DT_NODELABEL(tinytrain_partition))
#define TT_PART DT_NODELABEL(tinytrain_partition)
#elif DT_NODE_EXISTS(DT_NODELABEL(storage_partition))
#define TT_PART DT_NODELABEL(storage_partition)
#else
#error "tinytrain: no flash partition labelled tinytrain_partition or storage_partition (see boards/zephyr.md)"
#endif

#if DT_NODE_HAS_COMPAT(DT_MTD_FROM_FIXED_PARTITION(TT_PART), zephyr_sim_flash)
#include <zephyr/drivers/flash/flash_simulator.h>
#define TT_PART_SIMULATED 1
#else
#define TT_PART_SIMULATED 0
#endif

#define RECORD_MAGIC 0x31535454u /* "TTS1" */
#define HEADER_SIZE 64u

/* A log record's header as stored (little-endian on every supported target). */
typedef struct {
    uint32_t magic;
    uint32_t seq;
    uint32_t slot;
    uint32_t plan_len;
    uint8_t plan_hash[TT_SHA256_SIZE];
    uint32_t steps;
    uint32_t params_len;
    uint32_t params_crc; /* over the parameter bytes that follow the header */
    uint32_t header_crc; /* over every field above */
} record_header;

BUILD_ASSERT(sizeof(record_header) == HEADER_SIZE, "record header layout");

static size_t record_align(const tt_zstore *st)
{
    return MAX(st->wbs, 8u);
}

static size_t record_size(const tt_zstore *st, uint32_t params_len)
{
    return HEADER_SIZE + ROUND_UP(params_len, record_align(st));
}

static off_t log_base(const tt_zstore *st)
{
    return st->log_off;
}

static off_t slot_base(const tt_zstore *st, int slot)
{
    return st->slot_off + (off_t)((size_t)slot * st->slot_size);
}

/* --- flash helpers ------------------------------------------------------------------------------ */

#if TT_ZSTORE_SLOTS == 2
/* True when partition offset `at` starts an erase page (or is the partition's end). */
static bool page_boundary(const tt_zstore *st, size_t at)
{
    if (at == st->fa->fa_size) {
        return true;
    }
    struct flash_pages_info info;
    if (flash_get_page_info_by_offs(st->fa->fa_dev, st->fa->fa_off + (off_t)at, &info) != 0) {
        return false;
    }
    return info.start_offset == st->fa->fa_off + (off_t)at;
}
#endif

/* Erases [at, at + len) of the partition, extended to the end of the page holding the last byte;
 * `at` must start a page. */
static int erase_range(const tt_zstore *st, off_t at, size_t len)
{
    if (len == 0) {
        return 0;
    }
    struct flash_pages_info info;
    int rc = flash_get_page_info_by_offs(st->fa->fa_dev, st->fa->fa_off + at + (off_t)len - 1,
                                         &info);
    if (rc != 0) {
        return rc;
    }
    size_t end = (size_t)(info.start_offset + (off_t)info.size - st->fa->fa_off);
    return flash_area_erase(st->fa, at, end - (size_t)at);
}

static void writer_begin(tt_zstore_writer *w, off_t base, size_t total)
{
    w->base = base;
    w->done = 0;
    w->total = total;
    w->pend_len = 0;
}

/* Writes in whole write blocks; a partial block waits in pend until more data or writer_flush. */
static int writer_put(const tt_zstore *st, tt_zstore_writer *w, const uint8_t *data, size_t len)
{
    while (len > 0) {
        if (w->pend_len == 0 && len >= st->wbs) {
            size_t n = len - len % st->wbs;
            int rc = flash_area_write(st->fa, w->base + (off_t)w->done, data, n);
            if (rc != 0) {
                return rc;
            }
            w->done += n;
            data += n;
            len -= n;
            continue;
        }
        size_t n = MIN(st->wbs - w->pend_len, len);
        memcpy(w->pend + w->pend_len, data, n);
        w->pend_len += n;
        data += n;
        len -= n;
        if (w->pend_len == st->wbs) {
            int rc = flash_area_write(st->fa, w->base + (off_t)w->done, w->pend, st->wbs);
            if (rc != 0) {
                return rc;
            }
            w->done += st->wbs;
            w->pend_len = 0;
        }
    }
    return 0;
}

/* Bytes accepted by the writer (written or pending). */
static size_t writer_accepted(const tt_zstore_writer *w)
{
    return w->done + w->pend_len;
}

static int writer_flush(const tt_zstore *st, tt_zstore_writer *w)
{
    if (w->pend_len == 0) {
        return 0;
    }
    memset(w->pend + w->pend_len, st->erase_value, st->wbs - w->pend_len);
    int rc = flash_area_write(st->fa, w->base + (off_t)w->done, w->pend, st->wbs);
    if (rc == 0) {
        w->done += st->wbs;
        w->pend_len = 0;
    }
    return rc;
}

/* --- trainable parameters ----------------------------------------------------------------------- */

static uint32_t params_info(const tt_plan *plan, uint32_t *crc)
{
    uint32_t len = 0, c = 0;
    for (uint32_t i = 0; i < plan->n_tensors; i++) {
        const tt_tensor *t = &plan->tensors[i];
        if (t->kind == TT_KIND_PARAM_TRAINABLE) {
            c = tt_crc32(c, t->data, t->nbytes);
            len += t->nbytes;
        }
    }
    *crc = c;
    return len;
}

/* --- the parameter log -------------------------------------------------------------------------- */

static uint32_t header_crc(const record_header *h)
{
    return tt_crc32(0, (const uint8_t *)h, offsetof(record_header, header_crc));
}

static bool all_erased(const tt_zstore *st, const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (p[i] != st->erase_value) {
            return false;
        }
    }
    return true;
}

static void scan_log(tt_zstore *st)
{
    const uint8_t *log = st->mapped + log_base(st);
    size_t at = 0;
    st->have_last = false;
    st->log_next = -1; /* until the scan ends at erased space */
    while (at + HEADER_SIZE <= st->log_size) {
        record_header h;
        memcpy(&h, log + at, sizeof h);
        if (all_erased(st, log + at, HEADER_SIZE)) {
            st->log_next = (off_t)at;
            return;
        }
        if (h.magic != RECORD_MAGIC || h.header_crc != header_crc(&h) ||
            record_size(st, h.params_len) > st->log_size - at) {
            return; /* a torn header: nothing after it can be trusted; the next save erases */
        }
        if (tt_crc32(0, log + at + HEADER_SIZE, h.params_len) == h.params_crc) {
            st->have_last = true;
            st->last_at = (off_t)at;
            st->last = (tt_zstore_record){h.seq, h.slot, h.plan_len, h.steps, h.params_len,
                                          h.params_crc, {0}};
            memcpy(st->last.plan_hash, h.plan_hash, TT_SHA256_SIZE);
        } else {
            st->records_skipped++; /* parameters torn by a reset: the previous record stands */
        }
        at += record_size(st, h.params_len);
    }
}

/* Appends a record of model's plan (len bytes, in `slot` or TT_ZSTORE_SLOT_IMAGE), step count and
 * parameters. */
static int append_record(tt_zstore *st, const tt_model *m, uint32_t slot, uint32_t plan_len)
{
    record_header h = {.magic = RECORD_MAGIC,
                       .seq = st->have_last ? st->last.seq + 1u : 1u,
                       .slot = slot,
                       .plan_len = plan_len,
                       .steps = tt_model_steps(m)};
    memcpy(h.plan_hash, m->plan.hash, TT_SHA256_SIZE);
    h.params_len = params_info(&m->plan, &h.params_crc);
    h.header_crc = header_crc(&h);
    size_t size = record_size(st, h.params_len);
    if (size > st->log_size) {
        return -ENOSPC;
    }
    int rc;
    if (st->log_next < 0 || (size_t)st->log_next + size > st->log_size) {
        rc = erase_range(st, log_base(st), st->log_size);
        if (rc != 0) {
            return rc;
        }
        st->log_erases++;
        st->log_next = 0;
    }
    off_t at = st->log_next;
    st->log_next = -1; /* if this fails half-way, erase before the next record */
    writer_begin(&st->log, log_base(st) + at, size);
    rc = writer_put(st, &st->log, (const uint8_t *)&h, sizeof h); /* header first (see above) */
    for (uint32_t i = 0; rc == 0 && i < m->plan.n_tensors; i++) {
        const tt_tensor *t = &m->plan.tensors[i];
        if (t->kind == TT_KIND_PARAM_TRAINABLE) {
            rc = writer_put(st, &st->log, t->data, t->nbytes);
        }
    }
    if (rc == 0) {
        rc = writer_flush(st, &st->log);
    }
    if (rc != 0) {
        return rc;
    }
    st->log_next = at + (off_t)size;
    st->have_last = true;
    st->last_at = at;
    st->last = (tt_zstore_record){h.seq, h.slot, h.plan_len, h.steps, h.params_len, h.params_crc,
                                  {0}};
    memcpy(st->last.plan_hash, h.plan_hash, TT_SHA256_SIZE);
    st->saves++;
    return 1;
}

/* True when the newest record is of model m's plan (len bytes, in `slot`) as it stands: same
 * step count and parameters. */
static bool newest_record_is(const tt_zstore *st, const tt_model *m, uint32_t slot, uint32_t len)
{
    uint32_t crc;
    uint32_t params_len = params_info(&m->plan, &crc);
    const tt_zstore_record *r = &st->last;
    return st->have_last && r->slot == slot && r->plan_len == len &&
           memcmp(r->plan_hash, m->plan.hash, TT_SHA256_SIZE) == 0 &&
           r->steps == tt_model_steps(m) && r->params_len == params_len &&
           r->params_crc == crc;
}

/* --- tt_device's plan store hooks --------------------------------------------------------------- */

/* A run of the slot (tt_plan_store): the plan at offset 0, then its tables after it. The erase
 * at 0 covers the pages up to the one holding the plan's last byte; a later run erases only the
 * pages after that one, so the plan's bytes stay (the rest of its last page is still erased, and
 * the plan's last write block was padded with erase_value: the tables start at a later block). */
static int hook_erase(void *ctx, int slot, size_t offset, size_t size)
{
    tt_zstore *st = ctx;
    off_t base = slot_base(st, slot);
    if (offset > st->slot_size || size > st->slot_size - offset) {
        return -ENOSPC;
    }
    size_t from = 0; /* slot offset of the first page to erase */
    if (offset > 0) {
        struct flash_pages_info info;
        int rc = flash_get_page_info_by_offs(st->fa->fa_dev,
                                             st->fa->fa_off + base + (off_t)offset - 1, &info);
        if (rc != 0) {
            return rc;
        }
        from = (size_t)(info.start_offset + (off_t)info.size - st->fa->fa_off - base);
    }
    writer_begin(&st->upload, base + (off_t)offset, size);
    if (offset + size <= from) {
        return 0;
    }
    return erase_range(st, base + (off_t)from, offset + size - from);
}

static int hook_write(void *ctx, int slot, size_t offset, const uint8_t *data, size_t len)
{
    tt_zstore *st = ctx;
    tt_zstore_writer *w = &st->upload;
    size_t accepted = writer_accepted(w);
    if (slot_base(st, slot) + (off_t)offset != w->base + (off_t)accepted ||
        len > w->total - accepted) {
        return -EINVAL;
    }
    int rc = writer_put(st, w, data, len);
    if (rc == 0 && writer_accepted(w) == w->total) {
        rc = writer_flush(st, w); /* the whole run (plan, tables) must be readable */
    }
    return rc;
}

static void hook_committed(void *ctx, int slot, size_t len)
{
    tt_zstore *st = ctx;
    /* a failure leaves the previous record: the old plan comes back */
    (void)append_record(st, &st->dev->model, (uint32_t)slot, (uint32_t)len);
}

/* --- API ------------------------------------------------------------------------------------------ */

int tt_zstore_open(tt_zstore *st)
{
    memset(st, 0, sizeof *st);
    int rc = flash_area_open(DT_FIXED_PARTITION_ID(TT_PART), &st->fa);
    if (rc != 0) {
        return rc;
    }
    if (!flash_area_device_is_ready(st->fa)) {
        return -ENODEV;
    }
    const struct flash_parameters *fp = flash_get_parameters(st->fa->fa_dev);
    st->wbs = flash_area_align(st->fa);
    st->erase_value = fp->erase_value;
    if (st->wbs == 0 || st->wbs > TT_ZSTORE_WBS_MAX || HEADER_SIZE % st->wbs != 0) {
        return -ENOTSUP;
    }
#if TT_PART_SIMULATED
    size_t sim_size;
    uint8_t *sim = flash_simulator_get_memory(st->fa->fa_dev, &sim_size);
    if (sim == NULL || (size_t)st->fa->fa_off + st->fa->fa_size > sim_size) {
        return -ENODEV;
    }
    st->mapped = sim + st->fa->fa_off;
#else
    st->mapped = (const uint8_t *)DT_FIXED_PARTITION_ADDR(TT_PART);
#endif
#if TT_ZSTORE_SLOTS == 1
    /* The log first, in the fewest whole pages holding CONFIG_TINYTRAIN_LOG_SIZE, then the one
     * slot in the rest: on the STM32F746 the log takes the 128 KB sector 4 and the slot the
     * three 256 KB sectors, which no equal split could use. */
    size_t log_end = 0;
    while (log_end < (size_t)CONFIG_TINYTRAIN_LOG_SIZE && log_end < st->fa->fa_size) {
        struct flash_pages_info info;
        rc = flash_get_page_info_by_offs(st->fa->fa_dev, st->fa->fa_off + (off_t)log_end, &info);
        if (rc != 0) {
            return rc;
        }
        log_end = (size_t)(info.start_offset + (off_t)info.size - st->fa->fa_off);
    }
    if (log_end >= st->fa->fa_size) {
        return -ENOSPC; /* no page left for the slot */
    }
    st->log_off = 0;
    st->log_size = log_end;
    st->slot_off = (off_t)log_end;
    st->slot_size = st->fa->fa_size - log_end;
#else
    /* The largest part size p with p, 2p and 3p on page boundaries. */
    size_t best = 0;
    for (size_t at = 0; at < st->fa->fa_size / 3u;) {
        struct flash_pages_info info;
        rc = flash_get_page_info_by_offs(st->fa->fa_dev, st->fa->fa_off + (off_t)at, &info);
        if (rc != 0) {
            return rc;
        }
        size_t end = (size_t)(info.start_offset + (off_t)info.size - st->fa->fa_off);
        if (end <= st->fa->fa_size / 3u && page_boundary(st, 2u * end) &&
            page_boundary(st, 3u * end)) {
            best = end;
        }
        at = end;
    }
    if (best == 0) {
        return -ENOSPC; /* fewer than three erase pages */
    }
    st->slot_off = 0;
    st->slot_size = best;
    st->log_off = (off_t)(2u * best);
    st->log_size = best;
#endif
    /* Plans are read in place: frozen weights need the slot (and the blob in it) 16-byte
     * aligned, as the plan format lays it out. */
    if (((uintptr_t)st->mapped | (size_t)st->slot_off | st->slot_size) % 16u != 0) {
        return -EFAULT;
    }
    scan_log(st);
    return 0;
}

uint8_t *tt_zstore_slot(tt_zstore *st, int i)
{
    if (i < 0 || i >= TT_ZSTORE_SLOTS) {
        return NULL; /* tt_device_init takes a NULL second slot as "one slot" */
    }
    /* tt_device never writes through this pointer while the store is attached. */
    return (uint8_t *)(uintptr_t)(st->mapped + slot_base(st, i));
}

size_t tt_zstore_slot_capacity(const tt_zstore *st)
{
    return st->slot_size;
}

void tt_zstore_attach(tt_zstore *st, tt_device *dev)
{
    st->dev = dev;
    tt_plan_store hooks = {hook_erase, hook_write, hook_committed, st};
    tt_device_set_plan_store(dev, &hooks);
}

int tt_zstore_restore(tt_zstore *st, tt_error *err)
{
    if (!st->have_last) {
        return 0;
    }
    const tt_zstore_record *r = &st->last;
    if (r->slot == TT_ZSTORE_SLOT_IMAGE) {
        tt_fail(err, TT_ERR_STORAGE, "the saved parameters are of a plan built into another "
                                     "application's image, not of an uploaded one");
        return -EINVAL;
    }
    if (r->slot >= (uint32_t)TT_ZSTORE_SLOTS || r->plan_len > st->slot_size) {
        tt_fail(err, TT_ERR_STORAGE, "saved record names slot %lu, %lu bytes",
                (unsigned long)r->slot, (unsigned long)r->plan_len);
        return -EINVAL;
    }
    tt_device *dev = st->dev;
    if (tt_device_restore(dev, (int)r->slot, r->plan_len, err) != TT_OK) {
        return -EINVAL; /* one slot: e.g. an upload began after this record and did not commit */
    }
    uint32_t crc;
    if (memcmp(dev->model.plan.hash, r->plan_hash, TT_SHA256_SIZE) != 0 ||
        params_info(&dev->model.plan, &crc) != r->params_len) {
        tt_model_unload(&dev->model);
        tt_fail(err, TT_ERR_STORAGE, "the plan in slot %lu is not the one the record saved",
                (unsigned long)r->slot);
        return -EINVAL;
    }
    const uint8_t *p = st->mapped + log_base(st) + st->last_at + HEADER_SIZE;
    if (tt_device_restore_params(dev, p, r->params_len, r->steps, err) != TT_OK) {
        return -EINVAL;
    }
    return 1;
}

int tt_zstore_save(tt_zstore *st)
{
    const tt_device *dev = st->dev;
    if (dev == NULL || !tt_model_loaded(&dev->model)) {
        return 0;
    }
    if (newest_record_is(st, &dev->model, (uint32_t)dev->active, (uint32_t)dev->active_len)) {
        return 0;
    }
    return append_record(st, &dev->model, (uint32_t)dev->active, (uint32_t)dev->active_len);
}

int tt_zstore_save_model(tt_zstore *st, const tt_model *m, size_t plan_len)
{
    if (!tt_model_loaded(m)) {
        return 0;
    }
    if (newest_record_is(st, m, TT_ZSTORE_SLOT_IMAGE, (uint32_t)plan_len)) {
        return 0;
    }
    return append_record(st, m, TT_ZSTORE_SLOT_IMAGE, (uint32_t)plan_len);
}

int tt_zstore_restore_model(tt_zstore *st, tt_model *m, size_t plan_len, tt_error *err)
{
    const tt_zstore_record *r = &st->last;
    if (!st->have_last || !tt_model_loaded(m) || r->slot != TT_ZSTORE_SLOT_IMAGE ||
        r->plan_len != (uint32_t)plan_len ||
        memcmp(r->plan_hash, m->plan.hash, TT_SHA256_SIZE) != 0) {
        return 0; /* nothing saved for this plan */
    }
    const uint8_t *p = st->mapped + log_base(st) + st->last_at + HEADER_SIZE;
    return tt_model_params_restore(m, p, r->params_len, r->steps, err) == TT_OK ? 1 : -EINVAL;
}

int tt_zstore_clear(tt_zstore *st)
{
    int rc = erase_range(st, log_base(st), st->log_size);
    if (rc == 0) {
        st->have_last = false;
        st->log_next = 0;
        st->log_erases++;
    }
    return rc;
}
