# MicroPython user C module (make-based ports: unix, qemu, stm32, ...): `import tinytrain`.
# Build with USER_C_MODULES=<repo>/firmware/micropython, ZCBOR_DIR=<dir with zcbor's src/ and
# include/> (the zcbor pip package has them) and MONOCYPHER_DIR=<dir with monocypher.c and .h>
# (tools/fetch-monocypher.sh puts them there): firmware/micropython/build.sh does all three.
TINYTRAIN_MOD_DIR := $(USERMOD_DIR)
TINYTRAIN_RUNTIME := $(abspath $(TINYTRAIN_MOD_DIR)/../../runtime)

ifeq ($(ZCBOR_DIR),)
$(error ZCBOR_DIR is not set: pass the directory holding zcbor's src/ and include/)
endif
ifeq ($(MONOCYPHER_DIR),)
$(error MONOCYPHER_DIR is not set: pass the directory tools/fetch-monocypher.sh filled)
endif

SRC_USERMOD_C += $(TINYTRAIN_MOD_DIR)/modtinytrain.c
# The runtime and zcbor: compiled into the module, not scanned for qstrs.
SRC_USERMOD_LIB_C += $(sort $(wildcard $(TINYTRAIN_RUNTIME)/src/*.c $(TINYTRAIN_RUNTIME)/ops/*.c))
SRC_USERMOD_LIB_C += $(ZCBOR_DIR)/src/zcbor_common.c $(ZCBOR_DIR)/src/zcbor_decode.c \
                     $(ZCBOR_DIR)/src/zcbor_encode.c $(MONOCYPHER_DIR)/monocypher.c
CFLAGS_USERMOD += -I$(TINYTRAIN_RUNTIME)/include -I$(TINYTRAIN_RUNTIME)/ops -I$(ZCBOR_DIR)/include \
                  -I$(MONOCYPHER_DIR)
# Every build rounds like the reference executor: no fused multiply-add (tinytrain.cmake).
CFLAGS_USERMOD += -ffp-contract=off
# zcbor and Monocypher are third-party code: their warnings are not ours to fix (MicroPython
# builds with -Werror), and zcbor type-puns, so it gets no strict-aliasing optimisation.
$(BUILD)/$(ZCBOR_DIR)/src/%.o: CFLAGS += -w -fno-strict-aliasing
$(BUILD)/$(MONOCYPHER_DIR)/monocypher.o: CFLAGS += -w -DBLAKE2_NO_UNROLLING
