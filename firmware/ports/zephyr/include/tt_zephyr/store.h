/*
 * Plan slots and trained parameters in a flash partition, through Zephyr's flash_map.
 *
 * The partition (node label tinytrain_partition, else storage_partition) is split into three
 * equal, erase-aligned parts: plan slot 0, plan slot 1, and a parameter log. With
 * CONFIG_TINYTRAIN_PLAN_SLOTS=1 (a flash with room for one large plan) it is split in two: the
 * log (the first whole pages holding CONFIG_TINYTRAIN_LOG_SIZE), then one plan slot, which an
 * upload overwrites (tt_device unloads the running plan at PLAN_BEGIN). Uploads go through
 * tt_device's plan store hooks: PLAN_BEGIN erases the pages the upload needs in the target slot,
 * chunks are programmed as they arrive, and the plan then runs from flash in place (the slots must
 * be memory-mapped: on-chip flash, or the flash simulator's buffer). A commit appends a log
 * record (slot, length, plan hash, step count, trained parameters); tt_zstore_save appends
 * another when the parameters changed. At boot tt_zstore_restore loads the newest intact record's
 * plan and parameters. Records are only appended; the log part is erased when full. A record is
 * written header first and carries CRCs, so one torn by a reset is skipped, and the one before it
 * is used.
 */
#ifndef TT_ZEPHYR_STORE_H
#define TT_ZEPHYR_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <zephyr/storage/flash_map.h>

#include "tt/tt_device.h"

#define TT_ZSTORE_WBS_MAX 32u /* largest flash write block supported */

#ifdef CONFIG_TINYTRAIN_PLAN_SLOTS
#define TT_ZSTORE_SLOTS CONFIG_TINYTRAIN_PLAN_SLOTS
#else
#define TT_ZSTORE_SLOTS 2
#endif

typedef struct {
    off_t base;   /* partition offset of the region being written */
    size_t done;  /* bytes accepted so far */
    size_t total; /* bytes announced (plan uploads) */
    uint8_t pend[TT_ZSTORE_WBS_MAX];
    size_t pend_len;
} tt_zstore_writer;

typedef struct {
    uint32_t seq, slot, plan_len, steps, params_len, params_crc;
    uint8_t plan_hash[TT_SHA256_SIZE];
} tt_zstore_record;

typedef struct {
    const struct flash_area *fa;
    const uint8_t *mapped; /* the partition, readable in place */
    off_t slot_off;        /* partition offset of slot 0 (slot 1 follows it) */
    size_t slot_size;      /* bytes in each plan slot */
    off_t log_off;         /* partition offset of the parameter log */
    size_t log_size;
    size_t wbs;            /* flash write block */
    uint8_t erase_value;
    tt_device *dev;
    tt_zstore_writer upload, log;
    off_t log_next;        /* offset in the log part for the next record; -1: erase it first */
    bool have_last;
    tt_zstore_record last; /* the newest intact record */
    off_t last_at;         /* its offset in the log part */
    uint32_t records_skipped, log_erases, saves;
} tt_zstore;

/* Opens the partition and scans the parameter log. 0 or a negative errno: -ENOSPC fewer than
 * three erase pages (one slot: no page left after the log), -ENOTSUP a write block over
 * TT_ZSTORE_WBS_MAX, -EFAULT the partition is not 16-byte aligned in memory (the flash
 * simulator's buffer needs a memory-region for that). */
int tt_zstore_open(tt_zstore *st);
/* Plan slot i (0 or 1), memory-mapped (NULL for slot 1 with one slot), and each slot's capacity. */
uint8_t *tt_zstore_slot(tt_zstore *st, int i);
size_t tt_zstore_slot_capacity(const tt_zstore *st);
/* Routes dev's plan uploads into the slots (after tt_device_init with tt_zstore_slot(st, 0/1)). */
void tt_zstore_attach(tt_zstore *st, tt_device *dev);
/* Loads the newest saved plan and its parameters into the attached device. 1: plan and
 * parameters restored, 0: nothing saved, negative: the saved plan did not load (err says why). */
int tt_zstore_restore(tt_zstore *st, tt_error *err);
/* Appends a record when the running plan's parameters or step count differ from the newest
 * record's. 1: saved, 0: nothing to save, negative errno: flash error. */
int tt_zstore_save(tt_zstore *st);

/* Plans that are not in a slot: built into the application's image, read in place, loaded with
 * tt_model_init by the application itself (firmware/samples/sensor_learning). Their records name
 * this slot; tt_zstore_restore refuses them (the attached device has no such plan). */
#define TT_ZSTORE_SLOT_IMAGE 0xFFFFFFFFu

/* Appends a record of m (its plan of plan_len bytes in the image) when its parameters or step
 * count differ from the newest record's. 1: saved, 0: nothing to save, negative errno. */
int tt_zstore_save_model(tt_zstore *st, const tt_model *m, size_t plan_len);
/* Puts back the parameters and step count of the newest record when it is of m's plan (same
 * hash and length, in the image). 1: restored, 0: nothing saved for this plan, negative: the
 * record did not fit the plan (err says why). */
int tt_zstore_restore_model(tt_zstore *st, tt_model *m, size_t plan_len, tt_error *err);
/* Erases the parameter log: nothing is restored at the next boot. 0 or a negative errno. */
int tt_zstore_clear(tt_zstore *st);

#endif
