# The portable runtime's sources and compile flags: the one list every build reads.
#   host:        CMakeLists.txt -> firmware/runtime/CMakeLists.txt (tt_runtime), tests/c
#   bare metal:  firmware/ports/baremetal/CMakeLists.txt and kernel_tests.cmake (Cortex-M4F)
#   Zephyr:      zephyr/CMakeLists.txt (the module; the application is firmware/CMakeLists.txt)
#
# Defines
#   TT_RUNTIME_DIR           this directory
#   TT_RUNTIME_SOURCES       every src/*.c and ops/*.c (a glob, re-checked at each build: a new
#                            kernel file in ops/ needs no edit here, only a re-run of the build)
#   TT_RUNTIME_INCLUDE_DIRS  the public headers (include/, as "tt/...")
#   TT_RUNTIME_OPS_DIR       the kernels' private headers (tests that reach into them)
#   TT_RUNTIME_WARNINGS      the warnings the runtime is kept clean of (each build adds -Werror
#                            where it wants it)
#   TT_RUNTIME_FLAGS         what the numbers need: -ffp-contract=${TT_FP_CONTRACT}, so that no
#                            compiler fuses a multiply and an add and every build rounds like the
#                            numpy reference executor (bit-exact tests). TT_FP_CONTRACT is `off`
#                            unless set before this file is included; empty: no flag.
# and tt_add_runtime_library(NAME [EXCLUDE_FROM_ALL] [DEFINITIONS defs...]): a static library NAME
# of those sources with those flags, its public headers, zcbor (the target `zcbor`,
# cmake/zcbor.cmake) and Monocypher (the target `monocypher`, cmake/monocypher.cmake: fetched at
# configure time, for the link's MACs) attached.
include_guard(GLOBAL)
include(${CMAKE_CURRENT_LIST_DIR}/../../cmake/monocypher.cmake)

set(TT_RUNTIME_DIR ${CMAKE_CURRENT_LIST_DIR})
file(GLOB TT_RUNTIME_SOURCES CONFIGURE_DEPENDS ${TT_RUNTIME_DIR}/src/*.c ${TT_RUNTIME_DIR}/ops/*.c)
list(SORT TT_RUNTIME_SOURCES)
set(TT_RUNTIME_INCLUDE_DIRS ${TT_RUNTIME_DIR}/include)
set(TT_RUNTIME_OPS_DIR ${TT_RUNTIME_DIR}/ops)

set(TT_RUNTIME_WARNINGS -Wall -Wextra -Wshadow -Wstrict-prototypes)
if(NOT DEFINED TT_FP_CONTRACT)
  set(TT_FP_CONTRACT off)
endif()
set(TT_RUNTIME_FLAGS)
if(NOT TT_FP_CONTRACT STREQUAL "")
  list(APPEND TT_RUNTIME_FLAGS -ffp-contract=${TT_FP_CONTRACT})
endif()

function(tt_add_runtime_library NAME)
  cmake_parse_arguments(PARSE_ARGV 1 TT "EXCLUDE_FROM_ALL" "" "DEFINITIONS")
  if(TT_EXCLUDE_FROM_ALL)
    add_library(${NAME} STATIC EXCLUDE_FROM_ALL ${TT_RUNTIME_SOURCES})
  else()
    add_library(${NAME} STATIC ${TT_RUNTIME_SOURCES})
  endif()
  target_include_directories(${NAME} PUBLIC ${TT_RUNTIME_INCLUDE_DIRS})
  target_compile_options(${NAME} PRIVATE ${TT_RUNTIME_WARNINGS} ${TT_RUNTIME_FLAGS})
  if(TT_DEFINITIONS)
    target_compile_definitions(${NAME} PRIVATE ${TT_DEFINITIONS})
  endif()
  target_link_libraries(${NAME} PUBLIC zcbor monocypher)
endfunction()
