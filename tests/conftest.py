"""Shared fixtures: the sim device binary, small model files, the compiled demo plan and its
data."""
from __future__ import annotations

import itertools
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
DEMO_MODEL = str(REPO_ROOT / "host" / "tinyhost" / "demo" / "basicmotions_model.py") + ":make_model"
DEMO_NPZ = REPO_ROOT / "host" / "tinyhost" / "demo" / "basicmotions.npz"

_model_counter = itertools.count()


@pytest.fixture(scope="session")
def sim_binary() -> Path:
    """The host-native firmware build. Missing means the tests cannot say anything about the C
    runtime, so this fails (never skips)."""
    from tinyhost.link.transport import LinkError, find_sim_binary
    try:
        path = find_sim_binary()
    except LinkError as e:
        pytest.fail(f"the simulated device binary is missing ({e}); run `make build` first",
                    pytrace=False)
    if not path.is_file():
        pytest.fail(f"{path} does not exist; run `make build` first", pytrace=False)
    return path


@pytest.fixture(scope="session")
def model_file(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., str]:
    """`model_file(source, factory="make_model") -> "DIR/model_N.py:factory"`.

    `source` is the body of a Python module (dedented; torch, nn and F are imported for it) that
    defines `factory()` returning (nn.Module, example_input). Every call writes a new file in its
    own temporary directory, so the compiler never sees two models under one module name."""
    def write(source: str, factory: str = "make_model") -> str:
        n = next(_model_counter)
        path = tmp_path_factory.mktemp("model") / f"model_{n}.py"
        header = "import torch\nfrom torch import nn\nimport torch.nn.functional as F\n\n"
        path.write_text(header + textwrap.dedent(source))
        return f"{path}:{factory}"
    return write


@pytest.fixture(scope="session")
def demo_plan():
    """The demo model compiled once per session at its default learning rate (full update)."""
    from tinyhost.compiler import compile_model
    from tinyhost.demo.basicmotions_model import DEFAULT_LR
    return compile_model(DEMO_MODEL, update="full", lr=DEFAULT_LR)


@pytest.fixture(scope="session")
def demo_plan_file(demo_plan, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("demo") / "demo.ttp"
    path.write_bytes(demo_plan.data)
    return path


@pytest.fixture(scope="session")
def demo_data():
    """The bundled BasicMotions data, standardized as `tinyhost train` sends it."""
    from tinyhost.datasets import load_dataset, standardize
    ds, _, _ = standardize(load_dataset(DEMO_NPZ))
    return ds
