# Toolchain file: Arm Cortex-M4F (hard float) with the GNU Arm Embedded toolchain and picolibc
# (Debian: gcc-arm-none-eabi, picolibc-arm-none-eabi). Used by firmware/ports/baremetal:
#   cmake -S firmware/ports/baremetal -B build-arm -DCMAKE_TOOLCHAIN_FILE=cmake/arm-none-eabi.cmake
set(CMAKE_SYSTEM_NAME Generic)
set(CMAKE_SYSTEM_PROCESSOR arm)

set(TT_ARM_PREFIX "arm-none-eabi-" CACHE STRING "prefix of the cross tools")
find_program(CMAKE_C_COMPILER ${TT_ARM_PREFIX}gcc)
if(NOT CMAKE_C_COMPILER)
  message(FATAL_ERROR "${TT_ARM_PREFIX}gcc not found: apt-get install gcc-arm-none-eabi "
                      "picolibc-arm-none-eabi (tools/system-deps.sh does it as root)")
endif()
set(CMAKE_ASM_COMPILER ${CMAKE_C_COMPILER})
find_program(CMAKE_OBJCOPY ${TT_ARM_PREFIX}objcopy)
find_program(CMAKE_SIZE ${TT_ARM_PREFIX}size)

# The compiler cannot link a test program without our linker script.
set(CMAKE_TRY_COMPILE_TARGET_TYPE STATIC_LIBRARY)

set(TT_ARM_CPU_FLAGS "-mcpu=cortex-m4 -mthumb -mfloat-abi=hard -mfpu=fpv4-sp-d16")
set(CMAKE_C_FLAGS_INIT "${TT_ARM_CPU_FLAGS} --specs=picolibc.specs")
set(CMAKE_ASM_FLAGS_INIT "${TT_ARM_CPU_FLAGS}")
# (CMake puts the C flags, --specs included, on the link line too.)
set(CMAKE_EXE_LINKER_FLAGS_INIT "-nostartfiles")

set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
