/* The emulated IMU's own attribute: seek to the start of a recorded window (val1). */
#ifndef TT_SAMPLE_REPLAY_IMU_H
#define TT_SAMPLE_REPLAY_IMU_H

#include <zephyr/drivers/sensor.h>

#define TT_REPLAY_ATTR_WINDOW SENSOR_ATTR_PRIV_START

#endif
