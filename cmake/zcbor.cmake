# Finds zcbor's C sources. They ship inside the zcbor pip package (zcbor/src, zcbor/include);
# pass -DZCBOR_DIR=<dir containing src/ and include/> to use another copy (e.g. Zephyr's module).
if(NOT ZCBOR_DIR)
  execute_process(
    COMMAND ${Python3_EXECUTABLE} -c "import importlib.util as u; print(u.find_spec('zcbor').submodule_search_locations[0])"
    OUTPUT_VARIABLE ZCBOR_DIR OUTPUT_STRIP_TRAILING_WHITESPACE RESULT_VARIABLE _zcbor_rc)
  if(NOT _zcbor_rc EQUAL 0)
    message(FATAL_ERROR "zcbor not found for ${Python3_EXECUTABLE}: pip install zcbor, "
                        "or pass -DZCBOR_DIR=<dir with src/ and include/>")
  endif()
endif()
if(NOT EXISTS "${ZCBOR_DIR}/src/zcbor_decode.c")
  message(FATAL_ERROR "ZCBOR_DIR=${ZCBOR_DIR} has no src/zcbor_decode.c")
endif()
message(STATUS "zcbor C sources: ${ZCBOR_DIR}")

add_library(zcbor STATIC
  ${ZCBOR_DIR}/src/zcbor_common.c
  ${ZCBOR_DIR}/src/zcbor_decode.c
  ${ZCBOR_DIR}/src/zcbor_encode.c)
target_include_directories(zcbor SYSTEM PUBLIC ${ZCBOR_DIR}/include)
# Third-party code: its warnings are not ours to fix.
target_compile_options(zcbor PRIVATE -w)
