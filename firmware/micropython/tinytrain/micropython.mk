# MicroPython user C module (make-based ports: unix, qemu, stm32, ...): `import tinytrain`.
# Build with USER_C_MODULES=<repo>/firmware/micropython and ZCBOR_DIR=<dir with zcbor's src/ and
# include/> (the zcbor pip package has them: firmware/micropython/build.sh finds it).
TINYTRAIN_MOD_DIR := $(USERMOD_DIR)
TINYTRAIN_RUNTIME := $(abspath $(TINYTRAIN_MOD_DIR)/../../runtime)

ifeq ($(ZCBOR_DIR),)
$(error ZCBOR_DIR is not set: pass the directory holding zcbor's src/ and include/)
endif

SRC_USERMOD_C += $(TINYTRAIN_MOD_DIR)/modtinytrain.c
# The runtime and zcbor: compiled into the module, not scanned for qstrs.
SRC_USERMOD_LIB_C += $(sort $(wildcard $(TINYTRAIN_RUNTIME)/src/*.c $(TINYTRAIN_RUNTIME)/ops/*.c))
SRC_USERMOD_LIB_C += $(ZCBOR_DIR)/src/zcbor_common.c $(ZCBOR_DIR)/src/zcbor_decode.c \
                     $(ZCBOR_DIR)/src/zcbor_encode.c
CFLAGS_USERMOD += -I$(TINYTRAIN_RUNTIME)/include -I$(TINYTRAIN_RUNTIME)/ops -I$(ZCBOR_DIR)/include
# Every build rounds like the reference executor: no fused multiply-add (tinytrain.cmake).
CFLAGS_USERMOD += -ffp-contract=off
# zcbor is third-party code: its warnings are not ours to fix (MicroPython builds with -Werror),
# and it type-puns, so it gets no strict-aliasing optimisation.
$(BUILD)/$(ZCBOR_DIR)/src/%.o: CFLAGS += -w -fno-strict-aliasing
