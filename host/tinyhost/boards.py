"""One memory model of each board, for the compiler's fit verdict and the host's check before an
upload: the board's RAM, the firmware's static RAM, the stack, the arena the device has, and the
plan tables the runtime decodes into the arena's tail. Every number is measured, and BOARDS says
where from; tests/host/test_boards.py checks the bare-metal numbers against the current
build-arm map file when it exists.

What a plan needs on a board in all = static RAM + stack + the plan's arena + the RAM its tables
take. The device checks only arena + tables in RAM against its arena (INFO `arena_capacity`); the
other two are fixed by the firmware build, and the arena is what RAM they leave. So "fits" is
decided one way, `arena + tables in RAM <= arena capacity`, on the host and on the device.

The tables (a record per tensor and per op, the operand and attribute arrays) took the arena's
tail until the runtime learnt to write them into the plan slot after the plan and read them in
place (tt_plan_load_slot): since then they take no RAM on any port (TABLES_IN_RAM). Should that
change, set it, and tests/system/test_board_fit.py (both sides of the boundary on the sim and the
QEMU build) says whether the model and the devices agree.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tinyhost.plan import Plan

KB = 1024
TABLE_ALIGN = 8  # plan.c tables_size(): each of the four tables rounded up to 8 bytes
# Whether a device decodes the plan tables into its arena (tt_plan_load) or into the plan slot
# (tt_plan_load_slot, every port's tt_device since the tables left the arena: issue 11 item 2).
TABLES_IN_RAM = False


@dataclass(frozen=True)
class Board:
    name: str                 # --board NAME
    what: str
    ram: int                  # the SRAM the model counts (bytes)
    static_ram: int           # the firmware's .data + .bss, the arena left out
    stack: int                # stack reserved beside static RAM (0: the stacks are in static RAM)
    arena: int | None         # the arena the shipped build has (None: all RAM the rest leaves)
    arena_align: int          # the arena's start alignment (what it costs of the RAM left over)
    pointer_bytes: int        # sizeof(void *) on the target: the size of a decoded tensor entry
    info_names: tuple[str, ...]  # what its firmware reports as INFO `board`
    sources: dict[str, str]   # where each number comes from

    def arena_capacity(self, ram: int | None = None) -> int:
        """The arena the device has: the shipped build's (ram None), or that of a build for a
        board with `ram` bytes of SRAM (--budget), which gives the arena all that static RAM and
        the stack leave."""
        if ram is None and self.arena is not None:
            return self.arena
        ram = self.ram if ram is None else ram
        static = -(-self.static_ram // self.arena_align) * self.arena_align
        return max(0, ram - self.stack - static)

    def ram_tables(self, plan: Plan) -> int:
        """The RAM (arena tail) the plan's decoded tables take on this board's device."""
        return self.tables_bytes(plan) if TABLES_IN_RAM else 0

    def tables_bytes(self, plan: Plan) -> int:
        """The plan's decoded tables (firmware/runtime/src/plan.c tables_size(): tt_tensor, tt_op,
        int32 operands and attributes, each table 8-aligned), wherever they are kept."""
        tensor = 20 if self.pointer_bytes == 4 else 24  # void *data + 3 x 4 + 2 x 1, padded
        sizes = (len(plan.tensors) * tensor, len(plan.ops) * OP_BYTES,
                 sum(len(op.inputs) + len(op.outputs) for op in plan.ops) * 4,
                 sum(len(op.attrs) for op in plan.ops) * 4)
        return sum(-(-n // TABLE_ALIGN) * TABLE_ALIGN for n in sizes)


OP_BYTES = 16  # tt_op: uint16 opcode, 3 x uint8 counts, 2 x uint32 (32- and 64-bit alike)

_MAP = "build-arm/tinytrain_an386.map (`make qemu`, read by tinyhost.firmware_map)"
BOARDS: dict[str, Board] = {b.name: b for b in (
    Board("mps2_an386", "the bare-metal Cortex-M4F firmware (firmware/ports/baremetal, `make "
          "qemu`, QEMU mps2-an386, `--port qemu`)",
          ram=256 * KB, static_ram=4_752, stack=4 * KB, arena=None, arena_align=16,
          pointer_bytes=4, info_names=("mps2-an386",),
          sources={
              "ram": f"the RAM region of mps2_an386.ld (256K), {_MAP}",
              "static_ram": f"__bss_end - __data_start in {_MAP}, measured 2026-12-03",
              "stack": "STACK_SIZE in mps2_an386.ld (4K): the painted stack's measured peak "
                       "(INFO stack_peak) is 2.2 KB for the paper models' plans, 1.9 KB for the "
                       "demo (bench/m4f.py), so 4 KB leaves ~1.8 KB of margin",
              "arena": "all RAM the stack and the 16-aligned static RAM leave (mps2_an386.ld): "
                       "__arena_end - __arena_start in the map file",
          }),
    Board("nucleo_f746zg", "the Zephyr firmware on NUCLEO-F746ZG (firmware/boards/nucleo_f746zg.*)",
          ram=256 * KB, static_ram=258_560 - 245_760, stack=0, arena=245_760, arena_align=16,
          pointer_bytes=4, info_names=("nucleo_f746zg",),
          sources={
              "ram": "the Zephyr build's RAM region, SRAM1+SRAM2 (256 KB; tt_device with "
                     "its link buffer is in the separate 64 KB DTCM), boards/zephyr.md 'Memory'",
              "static_ram": "RAM used 258,560 B (boards/zephyr.md 'Memory', one plan slot) less "
                            "the 245,760 B arena: Zephyr, its thread stacks and the UART buffers",
              "stack": "0: Zephyr's thread stacks (CONFIG_MAIN_STACK_SIZE=8192 in firmware/"
                       "prj.conf) are static, inside static_ram",
              "arena": "CONFIG_TINYTRAIN_ARENA_SIZE=245760 in firmware/boards/nucleo_f746zg.conf",
          }),
    Board("native_sim", "the Zephyr firmware on native_sim (32-bit host process)",
          ram=1_460 + 1_077_096, static_ram=1_460 + 1_077_096 - 1_048_576, stack=0,
          arena=1_048_576, arena_align=16, pointer_bytes=4,
          info_names=("native_sim", "native_sim/native"),
          sources={
              "ram": "data + bss of zephyr.exe (1,460 + 1,077,096 B, `size`, boards/zephyr.md "
                     "'Memory'): a host process has no SRAM limit of its own",
              "static_ram": "that data + bss less the 1 MiB arena",
              "stack": "0: Zephyr's thread stacks are in bss (static_ram)",
              "arena": "CONFIG_TINYTRAIN_ARENA_SIZE=1048576 in firmware/boards/native_sim.conf",
          }),
    Board("sim", "the simulated device (firmware/ports/posix, `tinyhost sim`, `--port sim`; "
          "64-bit host)",
          ram=256 * KB, static_ram=0, stack=0, arena=None, arena_align=1, pointer_bytes=8,
          info_names=("posix-sim",),
          sources={
              "ram": "its default arena (--arena 262144, firmware/ports/posix/main.c): the model "
                     "counts only the arena, as the device has nothing else to run out of",
              "static_ram": "0: a host process's own memory is not the device's",
              "stack": "0: likewise",
              "arena": "all of ram (`tinyhost sim --arena N` for --budget N)",
          }),
)}


def board(name: str) -> Board:
    try:
        return BOARDS[name]
    except KeyError:
        raise ValueError(f"unknown board {name!r}: known are {', '.join(BOARDS)}") from None


def board_for_info(info_board: str) -> Board | None:
    """The model of a device by the board name it reports in INFO, if known."""
    for b in BOARDS.values():
        if info_board in b.info_names:
            return b
    return None


def tables_lower_bound(plan: Plan) -> int:
    """The fewest table bytes in RAM any known board needs for the plan (a device of unknown
    kind)."""
    return min(b.ram_tables(plan) for b in BOARDS.values())


@dataclass(frozen=True)
class BoardFit:
    """A plan on a board: what it needs in all, and whether the device takes it."""
    board: str
    ram: int              # the board's SRAM (--budget when given)
    static_ram: int
    stack: int
    arena: int            # the plan's arena (its arena_size)
    tables: int           # the RAM its decoded tables take (0: they are in the plan slot)
    arena_capacity: int   # the device's arena
    enforced: bool        # --budget given: not fitting is an error

    @property
    def total(self) -> int:
        return self.static_ram + self.stack + self.arena + self.tables

    @property
    def arena_need(self) -> int:
        return self.arena + self.tables

    @property
    def fits(self) -> bool:
        return self.arena_need <= self.arena_capacity

    @property
    def spare(self) -> int:
        """Bytes of the device's arena left over (negative: over by)."""
        return self.arena_capacity - self.arena_need

    def to_dict(self) -> dict[str, Any]:
        return {"board": self.board, "ram": self.ram, "static_ram": self.static_ram,
                "stack": self.stack, "arena": self.arena, "tables": self.tables,
                "arena_capacity": self.arena_capacity, "total": self.total,
                "fits": self.fits, "spare": self.spare, "enforced": self.enforced}


def board_fit(plan: Plan, b: Board, ram: int | None = None) -> BoardFit:
    """The plan on board b (with `ram` bytes of SRAM: --budget; default the board's)."""
    return BoardFit(b.name, b.ram if ram is None else ram, b.static_ram, b.stack,
                    plan.arena_size, b.ram_tables(plan), b.arena_capacity(ram),
                    enforced=ram is not None)


def _size(n: int) -> str:
    return f"{n} B" if abs(n) < 1024 else f"{n / 1024:.1f} KB"


def format_fit(f: BoardFit) -> str:
    """The report's lines: the plan's needs on the board in all, and the verdict."""
    ram = f"{_size(f.ram)} (--budget)" if f.enforced else _size(f.ram)
    verdict = (f"fits, {_size(f.spare)} of its arena to spare" if f.fits else
               f"does NOT fit: arena + tables exceed the device's arena by {_size(-f.spare)}"
               + (f" ({-f.spare} bytes)" if -f.spare >= 1024 else ""))
    return (f"on {f.board} ({ram} SRAM): {_size(f.total)} in all = static RAM "
            f"{_size(f.static_ram)} + stack {_size(f.stack)} + arena {_size(f.arena)} + plan "
            f"tables {_size(f.tables)}{'' if f.tables else ' (read in place from the plan slot)'}"
            "\n"
            f"  device arena {f.arena_capacity} bytes, plan needs {f.arena_need} "
            f"(arena {f.arena} + tables {f.tables}): {verdict}")
