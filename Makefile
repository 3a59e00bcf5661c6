# One command sets up and runs the demo; one sets up and runs every test (see README.md).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
BUILD := build
BUILD_ARM := build-arm
BUILD_FUZZ := build-fuzz
FUZZ_RUNS ?= 20000
DEMO_MODEL := host/tinyhost/demo/basicmotions_model.py:make_model
DEMO_DATA := host/tinyhost/demo/basicmotions.npz
DEMO_EPOCHS ?= 12
DEMO_LR ?= 0.05

.PHONY: all setup build qemu demo test test-c test-py lint fuzz-build fuzz-smoke clean

all: build

$(BUILD)/.system-deps-base: tools/system-deps.sh
	@bash tools/system-deps.sh base
	@mkdir -p $(BUILD) && touch $@

$(BUILD)/.system-deps-arm: tools/system-deps.sh
	@bash tools/system-deps.sh arm
	@mkdir -p $(BUILD) && touch $@

$(BUILD)/.system-deps-fuzz: tools/system-deps.sh
	tools/system-deps.sh fuzz
	@mkdir -p $(BUILD) && touch $@

$(BUILD)/.system-deps-lint: tools/system-deps.sh
	@bash tools/system-deps.sh lint
	@mkdir -p $(BUILD) && touch $@

# torch is installed first and pinned: 2.13.0 is the CPU wheel; a bare `torch` would pull CUDA.
$(VENV)/.ready: pyproject.toml $(BUILD)/.system-deps-base
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e ".[test,bench,sign,fleet]"
	@touch $@

setup: $(VENV)/.ready

build: $(VENV)/.ready
	cmake -S . -B $(BUILD) -DPython3_EXECUTABLE=$(abspath $(PY)) -DCMAKE_BUILD_TYPE=RelWithDebInfo
	cmake --build $(BUILD) -j2

# The Cortex-M4F firmware for QEMU's mps2-an386 (firmware/ports/baremetal) -> build-arm/*.elf
qemu: $(VENV)/.ready $(BUILD)/.system-deps-arm
	cmake -S firmware/ports/baremetal -B $(BUILD_ARM) -DPython3_EXECUTABLE=$(abspath $(PY)) \
		-DCMAKE_TOOLCHAIN_FILE=$(abspath cmake/arm-none-eabi.cmake)
	cmake --build $(BUILD_ARM) -j2

demo: build
	$(VENV)/bin/tinyhost compile $(DEMO_MODEL) --lr $(DEMO_LR) -o $(BUILD)/demo.ttp
	$(VENV)/bin/tinyhost train --port sim --plan $(BUILD)/demo.ttp --data $(DEMO_DATA) \
		--epochs $(DEMO_EPOCHS) --log metrics.csv --plot loss.png

# CTest builds and runs the int8 kernel tests on the Cortex-M4F in QEMU only where CMake found the
# ARM toolchain and QEMU: they are installed before `build` configures.
test-c: $(BUILD)/.system-deps-arm build
	ctest --test-dir $(BUILD) --output-on-failure

test-py: build qemu
	$(PY) -m pytest -q

# ruff and mypy (settings in pyproject.toml), and the runtime's C style (.clang-format; generated
# files, whose first line says GENERATED, are left to their generator). Runs all three, then fails
# if any did.
lint: $(VENV)/.ready $(BUILD)/.system-deps-lint
	@status=0; \
	echo "ruff check host tests bench tools"; $(VENV)/bin/ruff check host tests bench tools || status=1; \
	echo "mypy"; $(VENV)/bin/mypy || status=1; \
	files=$$(find firmware/runtime -name '*.[ch]' | sort | xargs awk 'FNR == 1 && !/GENERATED/ { print FILENAME }'); \
	echo "clang-format --dry-run --Werror firmware/runtime/**/*.[ch] ($$(echo $$files | wc -w) files)"; \
	clang-format --dry-run --Werror $$files || status=1; \
	exit $$status

# The libFuzzer targets (tests/fuzz, clang) and a short run of each over fresh seeds: the plan
# decoder/checker/executor and the device's link handling (bench/fuzz.sh runs long campaigns).
fuzz-build: $(VENV)/.ready $(BUILD)/.system-deps-fuzz
	cmake -S tests/fuzz -B $(BUILD_FUZZ) -DCMAKE_C_COMPILER=clang-14 \
		-DPython3_EXECUTABLE=$(abspath $(PY))
	cmake --build $(BUILD_FUZZ) -j2
	rm -rf $(BUILD_FUZZ)/seeds && PYTHONPATH=host $(PY) tests/fuzz/make_seeds.py $(BUILD_FUZZ)/seeds

fuzz-smoke: fuzz-build
	mkdir -p $(BUILD_FUZZ)/corpus-plan $(BUILD_FUZZ)/corpus-device
	$(BUILD_FUZZ)/fuzz_plan -runs=$(FUZZ_RUNS) -dict=tests/fuzz/plan.dict \
		$(BUILD_FUZZ)/corpus-plan $(BUILD_FUZZ)/seeds/plan
	TT_FUZZ_PLAN=$(BUILD_FUZZ)/seeds/small.ttp $(BUILD_FUZZ)/fuzz_device -runs=$(FUZZ_RUNS) \
		-dict=tests/fuzz/device.dict $(BUILD_FUZZ)/corpus-device $(BUILD_FUZZ)/seeds/device

# Everything: the linters, CTest and pytest; each part runs even when an earlier one failed, and
# `make test` fails if any did. The ARM toolchain and QEMU are installed first (as root), and
# TT_REQUIRE_QEMU=1 makes a QEMU test that cannot run fail instead of skipping (CTest's
# test_kernels_s8_qemu, tests/system's QEMU tests); only Renode, which cannot be installed here,
# stays a reported skip.
test: export TT_REQUIRE_QEMU = 1
test: $(VENV)/.ready $(BUILD)/.system-deps-arm $(BUILD)/.system-deps-lint $(BUILD)/.system-deps-fuzz
	@status=0; \
	$(MAKE) --no-print-directory lint || status=1; \
	$(MAKE) --no-print-directory test-c || status=1; \
	$(MAKE) --no-print-directory test-py || status=1; \
	$(MAKE) --no-print-directory fuzz-smoke || status=1; \
	exit $$status

clean:
	rm -rf $(BUILD) $(BUILD_ARM) $(BUILD_FUZZ) metrics.csv loss.png
