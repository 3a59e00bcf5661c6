# USER_C_MODULES=<repo>/firmware/micropython/micropython.cmake for CMake-based MicroPython ports.
include(${CMAKE_CURRENT_LIST_DIR}/tinytrain/micropython.cmake)
