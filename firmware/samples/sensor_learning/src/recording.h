/*
 * The recording built into the image (data/recording.bin, made by make_data.py): windows of rows
 * of a 6-axis IMU (accelerometer x, y, z in m/s^2, gyroscope x, y, z in rad/s), what each window
 * is (the demo's known schedule of activities), and the per-channel mean and standard deviation
 * of the training windows, which the learner standardizes samples with as the plan was trained.
 *
 * Layout (little-endian): "TTRC", u16 version (1), u16 channels, u32 rows per window, u32 windows,
 * u32 training windows (the first ones; the rest are held out), f32 scale (value = raw * scale),
 * f32 mean[channels], f32 std[channels], u8 label[windows] padded to 4 bytes, then
 * i16 raw[windows][rows][channels].
 */
#ifndef TT_SAMPLE_RECORDING_H
#define TT_SAMPLE_RECORDING_H

#include <stdint.h>

#define TT_REC_MAX_CHANNELS 8

typedef struct {
    uint32_t channels, rows, windows, train_windows;
    float scale;
    float mean[TT_REC_MAX_CHANNELS], std[TT_REC_MAX_CHANNELS];
    const uint8_t *labels;
    const uint8_t *raw; /* i16 values, read with tt_recording_value (no alignment assumed) */
} tt_recording;

/* The recording, checked once: NULL (and a message logged) when it is malformed. */
const tt_recording *tt_recording_get(void);
/* Channel c of row `row` of window w, in the recording's units. */
float tt_recording_value(const tt_recording *r, uint32_t w, uint32_t row, uint32_t c);

#endif
