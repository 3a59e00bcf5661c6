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

# The kernels whose inner loops differ between the DSP and portable builds, compiled portable;
# linked before tt_runtime, they replace its (DSP) versions of these symbols.
add_library(tt_kernels_s8_portable STATIC EXCLUDE_FROM_ALL
  ${TT_ROOT}/firmware/runtime/ops/conv2d_s8.c
  ${TT_ROOT}/firmware/runtime/ops/depthwise_conv2d_s8.c
  ${TT_ROOT}/firmware/runtime/ops/pw_dw_conv2d_s8.c
  ${TT_ROOT}/firmware/runtime/ops/variant_s8.c)
target_compile_definitions(tt_kernels_s8_portable PRIVATE TT_S8_PORTABLE)
target_include_directories(tt_kernels_s8_portable PRIVATE ${TT_ROOT}/firmware/runtime/include)
target_compile_options(tt_kernels_s8_portable PRIVATE ${TT_WARNINGS})

# tt_add_an386_test(NAME SOURCES... [LIBS libs...]): NAME.elf from SOURCES (their main() renamed
# tt_test_main) and the port's startup, semihosting and core services.
function(tt_add_an386_test NAME)
  cmake_parse_arguments(PARSE_ARGV 1 TT "" "" "LIBS")
  add_executable(${NAME} EXCLUDE_FROM_ALL ${TT_UNPARSED_ARGUMENTS})
  set_source_files_properties(${TT_UNPARSED_ARGUMENTS} PROPERTIES COMPILE_DEFINITIONS main=tt_test_main)
  target_sources(${NAME} PRIVATE
    ${CMAKE_CURRENT_FUNCTION_LIST_DIR}/test_main.c ${CMAKE_CURRENT_FUNCTION_LIST_DIR}/startup.c
    ${CMAKE_CURRENT_FUNCTION_LIST_DIR}/cortex_m4.c ${CMAKE_CURRENT_FUNCTION_LIST_DIR}/semihost.c)
  set_target_properties(${NAME} PROPERTIES SUFFIX ".elf" LINK_DEPENDS ${TT_LINKER_SCRIPT})
  target_include_directories(${NAME} PRIVATE ${TT_ROOT}/tests/c ${TT_ROOT}/firmware/runtime/ops
                                             ${CMAKE_CURRENT_FUNCTION_LIST_DIR})
  target_compile_options(${NAME} PRIVATE ${TT_WARNINGS})
  target_link_libraries(${NAME} PRIVATE ${TT_LIBS} tt_runtime m)
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
                  LIBS tt_kernels_s8_portable)

# bench/kernels_s8.c (instructions per call under -icount shift=0), DSP and portable; run by
# bench/kernels.py.
tt_add_an386_test(bench_kernels_s8_an386 ${TT_ROOT}/bench/kernels_s8.c)
tt_add_an386_test(bench_kernels_s8_an386_portable ${TT_ROOT}/bench/kernels_s8.c
                  LIBS tt_kernels_s8_portable)
