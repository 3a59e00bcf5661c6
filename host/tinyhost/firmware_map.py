"""Where the bare-metal Cortex-M4F firmware's memory goes, read from the GNU ld map file that
`make qemu` writes next to the ELF (build-arm/tinytrain_an386.map): flash (code, constants and the
.data image), static RAM (.data + .bss) and what the linker script reserves (stack, arena). No
toolchain needed: `arm-none-eabi-size` would count the NOLOAD arena, stack and plan store as .bss.
Shared by bench/m4f.py and tests/system/test_m4f_memory.py."""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

SYMBOLS = ("__data_start", "__bss_end", "__arena_start", "__arena_end", "__stack_limit",
           "__stack_top")

NOT_ALLOCATED = ("debug", "comment", "ARM.attributes", "stab", "gnu.attributes")


@dataclass(frozen=True)
class FirmwareMemory:
    flash: int           # bytes in the CODE region: vectors, .text (code + .rodata), .data image
    static_ram: int      # .data + .bss (thread-local sections included)
    arena_capacity: int  # the arena: all RAM the rest leaves free
    stack_size: int      # the stack the linker script reserves (at the bottom of RAM)
    ram_size: int        # the RAM region (256 KB)

    def ram_needed(self, arena_used: int, stack_peak: int) -> int:
        """RAM a plan really needs on this build: static RAM, the plan's arena with its decoded
        tables (INFO arena_used) and the stack it measurably used."""
        return self.static_ram + arena_used + stack_peak


def map_path(elf: Path) -> Path:
    return Path(elf).with_suffix(".map")


def read_map(path: Path) -> FirmwareMemory:
    if not Path(path).is_file():
        raise FileNotFoundError(f"{path} does not exist: `make qemu` writes it next to the ELF")
    text = Path(path).read_text()
    regions = {m[1]: (int(m[2], 16), int(m[3], 16)) for m in re.finditer(
        r"^(\w+)\s+0x([0-9a-f]+)\s+0x([0-9a-f]+)", _between(text, "Memory Configuration",
                                                          "Linker script and memory map"), re.M)}
    if "CODE" not in regions or "RAM" not in regions:
        raise ValueError(f"{path}: no CODE and RAM regions in its memory configuration")
    symbols = {m[2]: int(m[1], 16) for m in re.finditer(r"^\s+0x([0-9a-f]+)\s+(__\w+) = ",
                                                        text, re.M)}
    missing = [s for s in SYMBOLS if s not in symbols]
    if missing:
        raise ValueError(f"{path}: symbols {', '.join(missing)} not found: not the tinytrain "
                         "an386 map file?")
    code_start, code_len = regions["CODE"]
    flash = 0
    # Output sections: name at column 0, then address and size (on the next line when the name
    # is long), and for initialised RAM sections the load address in CODE. The non-allocated
    # ones (debug information, .comment, attributes) sit at address 0 but occupy nothing.
    for m in re.finditer(r"^\.([\w.]+)\s+0x([0-9a-f]+)\s+0x([0-9a-f]+)"
                         r"(?: load address 0x([0-9a-f]+))?", text, re.M):
        where = int(m[4] or m[2], 16)
        if m[1].startswith(NOT_ALLOCATED):
            continue
        if code_start <= where < code_start + code_len:
            flash += int(m[3], 16)
    return FirmwareMemory(
        flash=flash,
        static_ram=symbols["__bss_end"] - symbols["__data_start"],
        arena_capacity=symbols["__arena_end"] - symbols["__arena_start"],
        stack_size=symbols["__stack_top"] - symbols["__stack_limit"],
        ram_size=regions["RAM"][1])


def _between(text: str, start: str, end: str) -> str:
    i = text.find(start)
    j = text.find(end, i)
    if i < 0 or j < 0:
        raise ValueError(f"the map file has no '{start}' section")
    return text[i:j]
