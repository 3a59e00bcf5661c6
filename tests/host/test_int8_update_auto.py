"""--int8-update auto (the default): the f32-master rule, the more accurate, when the plan's arena
fits the memory budget; the in-place int8 rule when it does not (docs/int8.md section 12)."""
from __future__ import annotations

from tinyhost.compiler import INT8_UPDATE_DEFAULT, compile_tiny_training
from tinyhost.plan import TensorKind


def masters(plan) -> int:
    return sum(1 for t in plan.tensors
               if t.kind == TensorKind.PARAM_TRAINABLE and t.name.endswith(".master"))


def test_auto_is_the_default_and_takes_master_when_it_fits(synthetic_pkl) -> None:
    assert INT8_UPDATE_DEFAULT == "auto"
    auto = compile_tiny_training(synthetic_pkl, 4, update="full")
    master = compile_tiny_training(synthetic_pkl, 4, update="full", int8_update="master")
    assert auto.plan.meta["int8_update"] == "master" and masters(auto.plan) > 0
    assert auto.plan.arena_size == master.plan.arena_size <= 256 * 1024
    assert "fits" in auto.plan.meta["int8_update_auto"]


def test_auto_falls_back_to_round_over_the_budget(synthetic_pkl) -> None:
    master = compile_tiny_training(synthetic_pkl, 4, update="full", int8_update="master")
    round_ = compile_tiny_training(synthetic_pkl, 4, update="full", int8_update="round")
    assert round_.plan.arena_size < master.plan.arena_size
    budget = master.plan.arena_size - 1  # master misses it by a byte
    auto = compile_tiny_training(synthetic_pkl, 4, update="full", budget=budget)
    assert auto.plan.meta["int8_update"] == "round" and masters(auto.plan) == 0
    assert auto.plan.arena_size == round_.plan.arena_size  # the round plan (its meta aside)
    assert [op.opcode for op in auto.plan.ops] == [op.opcode for op in round_.plan.ops]
    why = auto.plan.meta["int8_update_auto"]
    assert str(master.plan.arena_size) in why and str(budget) in why


def test_explicit_rules_are_kept(synthetic_pkl) -> None:
    plan = compile_tiny_training(synthetic_pkl, 4, update="full", int8_update="round",
                                 budget=1).plan
    assert plan.meta["int8_update"] == "round" and "int8_update_auto" not in plan.meta
