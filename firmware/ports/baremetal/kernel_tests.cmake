# Host-style kernel test programs for the Cortex-M4F, run under QEMU with semihosting (included by
# CMakeLists.txt; the host build's tests/c/CMakeLists.txt builds these targets and runs them):
#
#   test_kernels_s8_an386           tests/c/test_kernels_s8.c against the runtime as the firmware
#                                   has it: the int8 kernels' DSP (SMLAD) inner loops
#   test_kernels_s8_an386_portable  the same with the portable inner loops (TT_S8_PORTABLE)
#   bench_kernels_s8_an386[_portable]  bench/kernels_s8.c, for bench/kernels.py
#
#   qemu-system-arm -M mps2-an386 -cpu cortex-m4 -display none -monitor none -serial null \
#       -semihosting-config enable=on,target=native,arg=test,arg=VECTOR_DIR \
#       -kernel test_kernels_s8_an386.elf          # exit status = the test's
#
# stdio, files and malloc come from picolibc's semihosting library; the heap is the firmware's
# arena region, the memory map and MPU those of the firmware. Not part of ALL (`make qemu`):
# build them by name.

# The whole runtime (tinytrain.cmake's sources) compiled with the portable int8 inner loops
# (TT_S8_PORTABLE): no list of which kernels have DSP variants to keep up to date.
tt_add_runtime_library(tt_runtime_portable EXCLUDE_FROM_ALL DEFINITIONS TT_S8_PORTABLE)
target_compile_options(tt_runtime_portable PRIVATE -Werror)

# tt_add_an386_test(NAME SOURCES... [RUNTIME lib]): NAME.elf from SOURCES (their main() renamed
# tt_test_main) and the port's startup, semihosting and core services, linked to the runtime
# library RUNTIME (default tt_runtime, the DSP build).
function(tt_add_an386_test NAME)
  cmake_parse_arguments(PARSE_ARGV 1 TT "" "RUNTIME" "")
  if(NOT TT_RUNTIME)
    set(TT_RUNTIME tt_runtime)
  endif()
  add_executable(${NAME} EXCLUDE_FROM_ALL ${TT_UNPARSED_ARGUMENTS})
  set_source_files_properties(${TT_UNPARSED_ARGUMENTS} PROPERTIES COMPILE_DEFINITIONS main=tt_test_main)
  target_sources(${NAME} PRIVATE
    ${CMAKE_CURRENT_FUNCTION_LIST_DIR}/test_main.c ${CMAKE_CURRENT_FUNCTION_LIST_DIR}/startup.c
    ${CMAKE_CURRENT_FUNCTION_LIST_DIR}/cortex_m4.c ${CMAKE_CURRENT_FUNCTION_LIST_DIR}/semihost.c)
  set_target_properties(${NAME} PROPERTIES SUFFIX ".elf" LINK_DEPENDS ${TT_LINKER_SCRIPT})
  target_include_directories(${NAME} PRIVATE ${TT_ROOT}/tests/c ${TT_RUNTIME_OPS_DIR}
                                             ${CMAKE_CURRENT_FUNCTION_LIST_DIR})
  target_compile_options(${NAME} PRIVATE ${TT_WARNINGS})
  target_link_libraries(${NAME} PRIVATE ${TT_RUNTIME} m)
  target_link_options(${NAME} PRIVATE
    -T${TT_LINKER_SCRIPT}
    -Wl,--gc-sections
    -Wl,--defsym=__heap_start=__arena_start
    -Wl,--defsym=__heap_end=__arena_end
    -Wl,--defsym=STACK_SIZE=8192  # host-style tests keep vectors and messages on the stack
    --oslib=semihost)
endfunction()

tt_add_an386_test(test_kernels_s8_an386 ${TT_ROOT}/tests/c/test_kernels_s8.c)
tt_add_an386_test(test_kernels_s8_an386_portable ${TT_ROOT}/tests/c/test_kernels_s8.c
                  RUNTIME tt_runtime_portable)

# bench/kernels_s8.c (instructions per call under -icount shift=0), DSP and portable; run by
# bench/kernels.py.
tt_add_an386_test(bench_kernels_s8_an386 ${TT_ROOT}/bench/kernels_s8.c)
tt_add_an386_test(bench_kernels_s8_an386_portable ${TT_ROOT}/bench/kernels_s8.c
                  RUNTIME tt_runtime_portable)

# bench/cmsis_nn_s8.c: CMSIS-NN's int8 convolutions on the same shapes, for bench/kernels.py
# --cmsis-nn DIR. Only with -DCMSIS_NN_DIR=<a CMSIS-NN tree> (outside this repository; nothing of
# it is committed): its convolution and support sources, built with the firmware's flags (the
# Cortex-M4F's DSP extension makes them take their SMLAD paths).
if(CMSIS_NN_DIR)
  file(GLOB TT_CMSIS_NN_SOURCES ${CMSIS_NN_DIR}/Source/ConvolutionFunctions/*_s8*.c
       ${CMSIS_NN_DIR}/Source/NNSupportFunctions/*.c)
  list(FILTER TT_CMSIS_NN_SOURCES EXCLUDE REGEX "_(f16|f32|flt)[._]") # the float kernels' support
  add_library(cmsis_nn_bench STATIC EXCLUDE_FROM_ALL ${TT_CMSIS_NN_SOURCES})
  target_include_directories(cmsis_nn_bench SYSTEM PUBLIC ${CMSIS_NN_DIR}/Include)
  target_compile_options(cmsis_nn_bench PRIVATE -w)
  tt_add_an386_test(bench_cmsis_nn_s8_an386 ${TT_ROOT}/bench/cmsis_nn_s8.c)
  target_include_directories(bench_cmsis_nn_s8_an386 PRIVATE ${TT_ROOT}/bench)
  target_link_libraries(bench_cmsis_nn_s8_an386 PRIVATE cmsis_nn_bench)
endif()
