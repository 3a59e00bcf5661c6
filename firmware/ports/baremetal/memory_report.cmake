# Prints where the 256 KB of RAM went (from the linker's symbols): cmake -DELF=... -DNM=... -P
execute_process(COMMAND ${NM} ${ELF} OUTPUT_VARIABLE syms RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "${NM} ${ELF} failed")
endif()
foreach(name __data_start __bss_start __bss_end __arena_start __arena_end __stack_limit
             __stack_top __plan_capacity)
  string(REGEX MATCH "([0-9a-f]+) [A-Za-z?] ${name}\n" m "${syms}")
  if(NOT m)
    message(WARNING "memory report: symbol ${name} not in ${ELF}")
    return()
  endif()
  math(EXPR ${name} "0x${CMAKE_MATCH_1}")
endforeach()
math(EXPR static_ram "${__bss_end} - ${__data_start}")
math(EXPR arena "${__arena_end} - ${__arena_start}")
math(EXPR stack "${__stack_top} - ${__stack_limit}")
message("RAM (256 KB at 0x20000000): stack ${stack} B (at the bottom), .data+.bss ${static_ram} B, "
        "arena ${arena} B; plan store 2 x ${__plan_capacity} B at 0x00100000")
