# MicroPython user C module (CMake-based ports: esp32, rp2): `import tinytrain`.
# Pass USER_C_MODULES=<repo>/firmware/micropython/micropython.cmake and ZCBOR_DIR.
add_library(usermod_tinytrain INTERFACE)
set(TINYTRAIN_RUNTIME ${CMAKE_CURRENT_LIST_DIR}/../../runtime)
if(NOT ZCBOR_DIR)
  message(FATAL_ERROR "ZCBOR_DIR is not set: pass the directory holding zcbor's src/ and include/")
endif()
if(NOT MONOCYPHER_DIR)
  message(FATAL_ERROR "MONOCYPHER_DIR is not set: pass the directory tools/fetch-monocypher.sh filled")
endif()
file(GLOB TINYTRAIN_RUNTIME_SOURCES ${TINYTRAIN_RUNTIME}/src/*.c ${TINYTRAIN_RUNTIME}/ops/*.c)
target_sources(usermod_tinytrain INTERFACE
  ${CMAKE_CURRENT_LIST_DIR}/modtinytrain.c ${TINYTRAIN_RUNTIME_SOURCES}
  ${ZCBOR_DIR}/src/zcbor_common.c ${ZCBOR_DIR}/src/zcbor_decode.c ${ZCBOR_DIR}/src/zcbor_encode.c
  ${MONOCYPHER_DIR}/monocypher.c)
target_include_directories(usermod_tinytrain INTERFACE
  ${TINYTRAIN_RUNTIME}/include ${TINYTRAIN_RUNTIME}/ops ${ZCBOR_DIR}/include ${MONOCYPHER_DIR})
target_compile_options(usermod_tinytrain INTERFACE -ffp-contract=off)
target_link_libraries(usermod INTERFACE usermod_tinytrain)
