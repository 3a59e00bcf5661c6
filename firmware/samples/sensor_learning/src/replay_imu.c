/*
 * "tinytrain,replay-imu": an emulated 6-axis IMU for boards without one (native_sim, a demo on a
 * bare nucleo): its accelerometer and gyroscope play back the recording built into the image
 * (recording.h), one row per sample_fetch, window after window, wrapping at the end. An
 * application reads it through the sensor API like any IMU driver.
 */
#define DT_DRV_COMPAT tinytrain_replay_imu

#include <errno.h>
#include <zephyr/device.h>
#include <zephyr/drivers/sensor.h>

#include "recording.h"
#include "replay_imu.h"

struct replay_imu_data {
    uint32_t window, row; /* the next row to fetch */
    float sample[6];      /* the last fetched row */
};

static int replay_imu_fetch(const struct device *dev, enum sensor_channel chan)
{
    struct replay_imu_data *d = dev->data;
    const tt_recording *r = tt_recording_get();
    if (r == NULL || r->channels != 6) {
        return -EIO;
    }
    if (chan != SENSOR_CHAN_ALL && chan != SENSOR_CHAN_ACCEL_XYZ && chan != SENSOR_CHAN_GYRO_XYZ) {
        return -ENOTSUP;
    }
    for (uint32_t c = 0; c < 6; c++) {
        d->sample[c] = tt_recording_value(r, d->window, d->row, c);
    }
    if (++d->row == r->rows) {
        d->row = 0;
        d->window = (d->window + 1u) % r->windows;
    }
    return 0;
}

static int replay_imu_get(const struct device *dev, enum sensor_channel chan,
                          struct sensor_value *val)
{
    const struct replay_imu_data *d = dev->data;
    int first, n;
    switch (chan) {
    case SENSOR_CHAN_ACCEL_X:
    case SENSOR_CHAN_ACCEL_Y:
    case SENSOR_CHAN_ACCEL_Z: first = chan - SENSOR_CHAN_ACCEL_X, n = 1; break;
    case SENSOR_CHAN_ACCEL_XYZ: first = 0, n = 3; break;
    case SENSOR_CHAN_GYRO_X:
    case SENSOR_CHAN_GYRO_Y:
    case SENSOR_CHAN_GYRO_Z: first = 3 + (chan - SENSOR_CHAN_GYRO_X), n = 1; break;
    case SENSOR_CHAN_GYRO_XYZ: first = 3, n = 3; break;
    default: return -ENOTSUP;
    }
    for (int i = 0; i < n; i++) {
        sensor_value_from_float(&val[i], d->sample[first + i]);
    }
    return 0;
}

static int replay_imu_attr_set(const struct device *dev, enum sensor_channel chan,
                               enum sensor_attribute attr, const struct sensor_value *val)
{
    struct replay_imu_data *d = dev->data;
    const tt_recording *r = tt_recording_get();
    if (chan != SENSOR_CHAN_ALL || attr != (enum sensor_attribute)TT_REPLAY_ATTR_WINDOW) {
        return -ENOTSUP;
    }
    if (r == NULL || val->val1 < 0 || (uint32_t)val->val1 >= r->windows) {
        return -EINVAL;
    }
    d->window = (uint32_t)val->val1;
    d->row = 0;
    return 0;
}

static int replay_imu_init(const struct device *dev)
{
    ARG_UNUSED(dev);
    return tt_recording_get() != NULL ? 0 : -EINVAL;
}

static DEVICE_API(sensor, replay_imu_api) = {
    .sample_fetch = replay_imu_fetch,
    .channel_get = replay_imu_get,
    .attr_set = replay_imu_attr_set,
};

#define REPLAY_IMU_DEFINE(inst)                                                                   \
    static struct replay_imu_data replay_imu_data_##inst;                                         \
    SENSOR_DEVICE_DT_INST_DEFINE(inst, replay_imu_init, NULL, &replay_imu_data_##inst, NULL,      \
                                 POST_KERNEL, CONFIG_SENSOR_INIT_PRIORITY, &replay_imu_api);

DT_INST_FOREACH_STATUS_OKAY(REPLAY_IMU_DEFINE)
