# Runs in MicroPython: trains a plan on samples from files and reports every step, so the host can
# compare the run with `--port ref` bit for bit (tests/system/test_micropython.py).
#
#   micropython train_plan.py PLAN SAMPLES LABELS LR OUT
#
# SAMPLES: the plan's input tensors back to back (the bytes the device's input holds); LABELS: one
# int32 (little-endian) per sample; LR: the learning rate ("-" for the plan's default). Prints
# "step N LOSSBITS PRED" per step (the loss as its float32 bits in hex), then "accuracy A" of the
# trained model on the same samples, and writes the trained parameters (Plan.save()) to OUT.
import struct
import sys

import tinytrain


def read(path):
    with open(path, "rb") as f:
        return f.read()


def main(argv):
    plan_path, samples_path, labels_path, lr_arg, out_path = argv[1:6]
    m = tinytrain.Plan(read(plan_path))
    size = m.input_size
    samples = read(samples_path)
    raw_labels = read(labels_path)
    n = len(raw_labels) // 4
    labels = [struct.unpack_from("<i", raw_labels, 4 * i)[0] for i in range(n)]
    if len(samples) != n * size:
        raise ValueError(f"SAMPLES holds {len(samples)} bytes, not {n} samples of {size}")
    lr = None if lr_arg == "-" else float(lr_arg)
    view = memoryview(samples)
    for i in range(n):
        loss, pred = m.train(view[i * size:(i + 1) * size], labels[i], lr)
        bits = struct.unpack("<I", struct.pack("<f", loss))[0]
        print("step", i, f"{bits:08x}", pred)
    print("accuracy", m.evaluate(samples, labels))
    print("steps", m.steps)
    with open(out_path, "wb") as f:
        f.write(m.save())


main(sys.argv)
