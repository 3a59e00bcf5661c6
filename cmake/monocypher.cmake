# Monocypher (keyed BLAKE2b: the link's MACs, docs/security.md), fetched at configure time by
# tools/fetch-monocypher.sh from PyPI (the pymonocypher sdist, sha256 pinned there) into
# <build>/third_party/monocypher; never committed. -DMONOCYPHER_DIR=<dir with monocypher.c and
# monocypher.h> uses another copy (e.g. one a Zephyr module provides) and fetches nothing.
# Defines the static library `monocypher`. Needs Python3_EXECUTABLE (its pip downloads).
include_guard(GLOBAL)

if(NOT MONOCYPHER_DIR)
  set(MONOCYPHER_DIR ${CMAKE_BINARY_DIR}/third_party/monocypher)
  get_filename_component(_tt_root ${CMAKE_CURRENT_LIST_DIR}/.. ABSOLUTE)
  set(_tt_py ${Python3_EXECUTABLE})
  if(NOT _tt_py)
    set(_tt_py python3)
  endif()
  execute_process(
    COMMAND bash ${_tt_root}/tools/fetch-monocypher.sh ${MONOCYPHER_DIR} ${_tt_py}
    RESULT_VARIABLE _tt_mc_rc)
  if(NOT _tt_mc_rc EQUAL 0)
    message(FATAL_ERROR "Monocypher is missing (tools/fetch-monocypher.sh failed, message above): "
                        "the link's authorization needs it. Offline, see the script's message, "
                        "or pass -DMONOCYPHER_DIR=<dir with monocypher.c and monocypher.h>")
  endif()
endif()
if(NOT EXISTS "${MONOCYPHER_DIR}/monocypher.c" OR NOT EXISTS "${MONOCYPHER_DIR}/monocypher.h")
  message(FATAL_ERROR "MONOCYPHER_DIR=${MONOCYPHER_DIR} has no monocypher.c and monocypher.h")
endif()
message(STATUS "Monocypher: ${MONOCYPHER_DIR}")

add_library(monocypher STATIC ${MONOCYPHER_DIR}/monocypher.c)
target_include_directories(monocypher SYSTEM PUBLIC ${MONOCYPHER_DIR})
# The rolled BLAKE2b loop: a fraction of the flash for a MAC of a few hundred bytes per request.
target_compile_definitions(monocypher PRIVATE BLAKE2_NO_UNROLLING)
# Third-party code: its warnings are not ours to fix. One section per function, so that a
# --gc-sections link (the Cortex-M4F firmware) keeps only BLAKE2b, not all of Monocypher.
target_compile_options(monocypher PRIVATE -w -ffunction-sections -fdata-sections)
