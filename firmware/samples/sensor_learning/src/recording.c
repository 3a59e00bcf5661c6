/* The recording built into the image (recording.h). */
#include "recording.h"

#include <string.h>
#include <zephyr/logging/log.h>

LOG_MODULE_REGISTER(tt_recording, LOG_LEVEL_INF);

static const uint8_t data[] = {
#include "tt_recording.inc"
};

static uint32_t u32_at(size_t at)
{
    return (uint32_t)data[at] | (uint32_t)data[at + 1] << 8 | (uint32_t)data[at + 2] << 16 |
           (uint32_t)data[at + 3] << 24;
}

static float f32_at(size_t at)
{
    uint32_t bits = u32_at(at);
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

const tt_recording *tt_recording_get(void)
{
    static tt_recording rec;
    static int state; /* 0 unchecked, 1 good, -1 bad */
    if (state != 0) {
        return state > 0 ? &rec : NULL;
    }
    state = -1;
    if (sizeof data < 24 || memcmp(data, "TTRC", 4) != 0 || (data[4] | data[5] << 8) != 1) {
        LOG_ERR("recording: not a version-1 TTRC file");
        return NULL;
    }
    rec.channels = (uint32_t)(data[6] | data[7] << 8);
    rec.rows = u32_at(8);
    rec.windows = u32_at(12);
    rec.train_windows = u32_at(16);
    rec.scale = f32_at(20);
    if (rec.channels == 0 || rec.channels > TT_REC_MAX_CHANNELS || rec.rows == 0 ||
        rec.windows == 0 || rec.train_windows > rec.windows) {
        LOG_ERR("recording: bad header (%u channels, %u rows, %u windows, %u for training)",
                rec.channels, rec.rows, rec.windows, rec.train_windows);
        return NULL;
    }
    size_t at = 24;
    for (uint32_t c = 0; c < rec.channels; c++, at += 4) {
        rec.mean[c] = f32_at(at);
    }
    for (uint32_t c = 0; c < rec.channels; c++, at += 4) {
        rec.std[c] = f32_at(at);
    }
    rec.labels = data + at;
    at += (rec.windows + 3u) & ~3u;
    rec.raw = data + at;
    uint64_t need = (uint64_t)at + 2ull * rec.windows * rec.rows * rec.channels;
    if (need != sizeof data) {
        LOG_ERR("recording: %u bytes, its header says %llu", (unsigned)sizeof data,
                (unsigned long long)need);
        return NULL;
    }
    state = 1;
    return &rec;
}

float tt_recording_value(const tt_recording *r, uint32_t w, uint32_t row, uint32_t c)
{
    size_t i = 2u * (((size_t)w * r->rows + row) * r->channels + c);
    int16_t raw = (int16_t)(uint16_t)(r->raw[i] | r->raw[i + 1] << 8);
    return (float)raw * r->scale;
}
