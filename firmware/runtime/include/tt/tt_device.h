/*
 * The device side of the link protocol (docs/protocol.md), independent of the transport: a port
 * feeds received bytes in with tt_device_receive() and gets responses through its write callback.
 * All buffers live in the tt_device struct or are supplied by the port; nothing is allocated.
 * The running plan is a tt_model (tinytrain.h): TRAIN, EVAL, RESET and checkpoints go through
 * the public API, as an application's calls would.
 */
#ifndef TT_DEVICE_H
#define TT_DEVICE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "tt/tinytrain.h"
#include "tt/tt_auth.h"
#include "tt/tt_frame.h"

#ifndef TT_MAX_PAYLOAD
#define TT_MAX_PAYLOAD 4096u /* largest request or response payload, bytes */
#endif
/* A frame: type, seq, payload, CRC, and on a provisioned device a request's counter and tag (a
 * reply's tag is smaller). */
#define TT_RAW_MAX (TT_MAX_PAYLOAD + TT_FRAME_OVERHEAD + TT_AUTH_TRAILER)
#define TT_ENCODED_MAX TT_COBS_MAX(TT_RAW_MAX)
/* The raw bytes of a reply kept for a retransmitted request: every reply but INFO (to HELLO,
 * never replayed) and TENSOR (to READ_TENSOR, which changes nothing and is answered again) fits:
 * an ERROR is the largest, [code, message of up to TT_ERROR_MSG_MAX bytes]. */
#define TT_REPLAY_MAX (TT_FRAME_OVERHEAD + 16u + TT_ERROR_MSG_MAX + TT_AUTH_TAG_SIZE)

/* Message types. Responses to a request of type T have type T | 0x80 or are ACK/ERROR. */
enum {
    TT_MSG_HELLO = 0x01,
    TT_MSG_PLAN_BEGIN = 0x02,
    TT_MSG_PLAN_CHUNK = 0x03,
    TT_MSG_PLAN_COMMIT = 0x04,
    TT_MSG_INPUT_CHUNK = 0x05,
    TT_MSG_TRAIN = 0x06,
    TT_MSG_EVAL = 0x07,
    TT_MSG_READ_TENSOR = 0x08,
    TT_MSG_RESET = 0x09,
    TT_MSG_WRITE_TENSOR = 0x0A, /* [index, offset, bytes] into a trainable parameter */
    TT_MSG_CHECKPOINT = 0x0B,   /* [] save the trained parameters and step count now */
    TT_MSG_ACK = 0x80,
    TT_MSG_INFO = 0x81,
    TT_MSG_STEP = 0x86,
    TT_MSG_PRED = 0x87,
    TT_MSG_TENSOR = 0x88,
    TT_MSG_NAK = 0x7E,
    TT_MSG_ERROR = 0x7F,
};

typedef struct {
    const char *board;
    const char *cost_unit;               /* unit of cost_counter: "us", "instructions", ... */
    uint32_t (*cost_counter)(void *ctx); /* free-running counter; NULL: costs report 0 */
    void (*write)(void *ctx, const uint8_t *data, size_t len);
    void *ctx;
} tt_port;

/* A plan store that is not plain RAM (flash), set with tt_device_set_plan_store. With one,
 * PLAN_BEGIN calls erase (if set) for the slot the upload goes to (0 with one slot) with offset 0
 * and the announced size, and each PLAN_CHUNK calls write instead of memcpy; a non-zero return is
 * answered with ERROR TT_ERR_STORAGE and ends the upload.
 * Each erase(slot, offset, size) starts a run: [offset, offset + size) of the slot must become
 * writable, then write fills the run in order (offsets relative to the slot start); every byte of
 * a run must be readable when the write of its last byte returns. Runs: the plan (offset 0,
 * chunks as they arrive), then at PLAN_COMMIT, once the plan is hashed and decoded, its tables
 * (offset: the plan's size rounded up to TT_PLAN_TABLES_ALIGN; tt_plan.h). An erase at an offset
 * past 0 must leave the plan's bytes before it alone: the erase at 0 left the rest of the page
 * holding the plan's last byte erased, so only pages after it need erasing.
 * The slots stay readable in place (memory-mapped flash): the plan is hashed, decoded and run
 * from there, and its tables read there. committed (optional) is told when a committed upload
 * in `slot` (len bytes) has become the running plan. */
typedef struct {
    int (*erase)(void *ctx, int slot, size_t offset, size_t size);
    int (*write)(void *ctx, int slot, size_t offset, const uint8_t *data, size_t len);
    void (*committed)(void *ctx, int slot, size_t len);
    void *ctx;
} tt_plan_store;

typedef struct {
    tt_port port;
    tt_plan_store store; /* write == NULL: the slots are RAM, written with memcpy */
    tt_model model;      /* the running plan, its arena, step count and statistics */
    /* Plan storage: two slots, uploads go to the inactive one and a commit swaps them; or one
     * slot (plan_slots == 1, for flash too small for two), which an upload overwrites, so the
     * running plan is unloaded at PLAN_BEGIN and nothing runs until a commit passes. */
    uint8_t *plan_slot[2];
    int plan_slots;
    size_t plan_capacity;
    bool slot_overwritten; /* one slot: an upload began since the last plan was loaded */
    int active;
    size_t active_len;
    /* Upload in progress. */
    bool uploading;
    uint32_t upload_size, upload_next;
    uint8_t upload_hash[TT_SHA256_SIZE];
    /* Link state. One buffer holds a frame as it arrives (COBS), then decoded in place, then the
     * reply, built over the request once it is handled and COBS-encoded as it is written out
     * (tt_frame_send): the link's RAM is one frame, not three (docs/int8.md section 10). */
    uint8_t link[TT_ENCODED_MAX];
    size_t rx_len;
    bool rx_overflow;
    bool have_last;
    uint8_t last_seq, last_type;
    uint32_t last_crc; /* the last request's frame CRC: a retransmission repeats it exactly */
    uint8_t last_reply[TT_REPLAY_MAX]; /* the last reply's raw frame (type, seq, payload, CRC) */
    size_t last_reply_len;             /* 0: too large to keep; a retransmission is handled anew */
    uint32_t bad_frames;
    uint32_t (*stack_peak)(void *ctx); /* NULL: INFO has no stack_peak */
    int (*checkpoint)(void *ctx);      /* NULL: the device keeps no checkpoints */
    void *checkpoint_ctx;
    tt_auth auth;          /* auth.enabled: provisioned with a key (tt_device_set_auth) */
    bool last_authed;      /* the request being answered passed its MAC: its reply gets a tag */
    uint32_t last_counter; /* ... and its counter */
    /* Signed plans (tt_device_set_plan_key): NULL, or the check PLAN_BEGIN's signature passes. */
    bool (*plan_signed)(const uint8_t key[TT_PLAN_KEY_SIZE], const uint8_t sig[TT_PLAN_SIG_SIZE],
                        const uint8_t sha256[32]);
    uint8_t plan_key[TT_PLAN_KEY_SIZE];
} tt_device;

/* plan slots: two buffers of plan_capacity bytes each, 16-byte aligned; plan_slot1 == NULL: one
 * slot (uploads replace the running plan: INFO's plan_slots says so). A slot holds a plan and,
 * after it, the tables the device decodes from it (tt_plan_load_slot): plan_capacity bounds both
 * together. */
void tt_device_init(tt_device *dev, const tt_port *port, uint8_t *arena, size_t arena_capacity,
                    uint8_t *plan_slot0, uint8_t *plan_slot1, size_t plan_capacity);
/* Routes plan uploads through store (copied) instead of memcpy into the slots; call after init. */
void tt_device_set_plan_store(tt_device *dev, const tt_plan_store *store);
/* A port that measures its stack (e.g. by painting it at boot) reports the peak bytes used since
 * boot through stack_peak(port ctx); INFO then carries it as `stack_peak`. Call after init. */
void tt_device_set_stack_probe(tt_device *dev, uint32_t (*stack_peak)(void *ctx));
/* A port that can keep the trained parameters and the step count (a file, flash) saves them
 * when CHECKPOINT asks, through checkpoint(ctx): 0 when they are stored and will survive a
 * reset (a torn save must leave the previous checkpoint), non-zero otherwise. INFO then says
 * `checkpoints: true`. The port writes what tt_device_params() walks, and gives it back at boot
 * with tt_device_restore_params(). Call after init. */
void tt_device_set_checkpoint(tt_device *dev, int (*checkpoint)(void *ctx), void *ctx);
/* Provisions the device with a 32-byte key (docs/security.md): from now on every request but
 * HELLO must carry a MAC of the session HELLO opened, with a rising counter, or it is refused
 * with ERROR TT_ERR_AUTH before anything runs; replies carry a MAC too, and INFO says `auth`
 * and gives the session's nonce. entropy (NULL: none) seeds each nonce (tt_auth.h). The key is
 * copied; the caller may wipe its copy. Call after init. */
void tt_device_set_auth(tt_device *dev, const uint8_t key[TT_AUTH_KEY_SIZE], tt_entropy_fn entropy,
                        void *entropy_ctx);
/* Makes the device take only signed plans (docs/security.md): PLAN_BEGIN must carry, as its
 * fourth element, the EdDSA signature that key (its public half) checks (tt_auth_plan_signed),
 * or it is refused with ERROR TT_ERR_AUTH; INFO says `plan_signatures`. Call after init. */
void tt_device_set_plan_key(tt_device *dev, const uint8_t key[TT_PLAN_KEY_SIZE]);
/* Calls put(ctx, bytes, n) with each trainable parameter's bytes in tensor order (what a
 * checkpoint keeps besides the step count); returns their total size. put NULL: only the size.
 * (tt_model_params_walk on the device's model.) */
size_t tt_device_params(const tt_device *dev, void (*put)(void *ctx, const uint8_t *, size_t),
                        void *ctx);
/* Puts back what tt_device_params() gave, and the step count, into the loaded plan: refused
 * (nothing changed) when no plan is loaded or len is not the plan's parameter size.
 * (tt_model_params_restore on the device's model.) */
tt_status tt_device_restore_params(tt_device *dev, const uint8_t *params, size_t len,
                                   uint32_t steps, tt_error *err);
/* Feeds received bytes; complete frames are handled and answered before it returns. */
void tt_device_receive(tt_device *dev, const uint8_t *data, size_t len);
/* Makes the len-byte plan already in slot (0 or 1; 0 with one slot) the running plan with its
 * initial parameters, as a committed upload would (a port restoring the plan it kept in flash at
 * boot). Every check of tt_plan_load applies; on failure no plan is loaded. A store's slot
 * (flash) must hold the tables its upload wrote after the plan; when they are not this
 * firmware's (another build: its arena elsewhere), the tables go to the arena's tail instead
 * (INFO arena_used counts them) until the next upload. */
tt_status tt_device_restore(tt_device *dev, int slot, size_t len, tt_error *err);

#endif
