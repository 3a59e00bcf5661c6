"""The `tinyhost` command line. Library code lives in the modules it calls; this file only parses
arguments, prints, and turns known errors into one clear line and a non-zero exit status."""
from __future__ import annotations

import argparse
import json
import math
import os
import re
import signal
import sys
import time
from pathlib import Path
from typing import Any

from tinyhost import __version__

PORT_HELP = ("serial port of the device (/dev/ttyACM0, COM3), a pyserial URL (socket://host:port), "
             "'sim' to start the simulated device for this command, 'qemu' to start the "
             "Cortex-M4F firmware in QEMU for this command, or 'ref' for the numpy reference "
             "executor")


KEY_HELP = ("the device's key file (tinyhost keygen) when it is provisioned with one: every "
            "request then carries its MAC and every reply is checked (docs/security.md); with "
            "--port sim the simulated device is started provisioned with it; --port ref needs "
            "none")
ONE_SHOT_PORTS = ("ref", "sim", "qemu")  # a fresh device per command
CHECKPOINT_EVERY = 100  # steps between checkpoints on a device with a store, by default
# tinyhost.boards.BOARDS' names, written out: importing it here would load numpy (test_boards
# checks they agree)
BOARD_NAMES = ("mps2_an386", "nucleo_f746zg", "native_sim", "sim")


def _print_json(obj: Any) -> None:
    print(json.dumps(obj, indent=2, default=str))


# -- compile ----------------------------------------------------------------------------------
def _check_model_args(args: argparse.Namespace, data_too: bool = False) -> int:
    """compile's and search's MODEL flags checked together: 0, or 2 after saying what is wrong.
    data_too: --no-normalize also applies to the search's DATA (any int8 model)."""
    int8 = args.int8 or args.from_tiny_training is not None
    given = lambda flags: [f for f, g in flags if g]  # noqa: E731
    tiny_only = given((("--num-classes", args.num_classes is not None),
                       ("--input-size", args.input_size is not None)))
    int8_only = given((("--no-qas", not args.qas), ("--int8-update", args.int8_update is not None),
                       ("--backbone-lr", args.backbone_lr is not None)))
    if (args.model is None) == (args.from_tiny_training is None):
        print("error: give a MODEL (FILE.py:FACTORY or .pt2) or --from-tiny-training PKL, "
              "not both", file=sys.stderr)
        return 2
    if args.int8 and args.from_tiny_training is not None:
        print("error: --from-tiny-training models are int8 already; --int8 quantizes a float "
              "MODEL", file=sys.stderr)
        return 2
    if args.int8 and args.calib is None:
        print("error: --int8 needs --calib DATA: calibration samples (the train split of a "
              ".npz/.ts/.csv dataset) that set the int8 activation ranges", file=sys.stderr)
        return 2
    if not args.int8 and (args.calib is not None or (not args.normalize and not data_too)):
        flag = "--calib" if args.calib is not None else "--no-normalize"
        print(f"error: {flag} applies to --int8 only (post-training quantization of a float "
              "MODEL)", file=sys.stderr)
        return 2
    if tiny_only and args.from_tiny_training is None:
        print(f"error: {', '.join(tiny_only)} apply to --from-tiny-training models only",
              file=sys.stderr)
        return 2
    if int8_only and not int8:
        print(f"error: {', '.join(int8_only)} apply to int8 models only (--int8 or "
              "--from-tiny-training)", file=sys.stderr)
        return 2
    return 0


def cmd_compile(args: argparse.Namespace) -> int:
    from tinyhost.boards import board, board_fit
    from tinyhost.compiler import (
        INT8_UPDATE_DEFAULT,
        compile_model,
        compile_quantized,
        compile_tiny_training,
    )
    from tinyhost.compiler.report import (
        budget_status,
        format_over_board,
        format_over_budget,
        format_report,
    )
    from tinyhost.lr import LR_DEFAULT, TINY_LR_DEFAULT, plan_rates

    auto = args.update == "auto"  # --update auto: search first (tinyhost.search)
    status = _check_model_args(args, data_too=auto)
    if status:
        return status
    if auto and (args.data is None or (args.budget is None and args.max_drop is None)):
        print("error: --update auto needs --data DATA (its train split trains the search's "
              "runs) and --budget SIZE (or --max-drop PCT)", file=sys.stderr)
        return 2
    if not auto and (args.data is not None or args.max_drop is not None):
        print("error: --data and --max-drop apply to --update auto only", file=sys.stderr)
        return 2
    if auto:
        status = _search_then(args)
        if status:
            return status
    rule = args.int8_update or INT8_UPDATE_DEFAULT
    target = board(args.board) if args.board else None
    # The arena "auto" must fit: with --board, the device's arena (--budget is then its SRAM).
    arena_budget = args.budget if target is None else target.arena_capacity(args.budget)
    if args.from_tiny_training is not None:
        if args.num_classes is None:
            print("error: --from-tiny-training needs --num-classes N (the new head's classes)",
                  file=sys.stderr)
            return 2
        result = compile_tiny_training(
            args.from_tiny_training, args.num_classes, update=args.update,
            lr=TINY_LR_DEFAULT if args.lr is None else args.lr, input_size=args.input_size,
            qas=args.qas, int8_update=rule, reorder=args.reorder, budget=arena_budget,
            backbone_lr=args.backbone_lr, momentum=args.momentum, accumulate=args.accumulate)
    elif args.int8:
        calib = _load_data(args.calib, args.normalize)
        result = compile_quantized(
            args.model, calib.x_train, update=args.update,
            lr=LR_DEFAULT if args.lr is None else args.lr, qas=args.qas,
            int8_update=rule, reorder=args.reorder, budget=arena_budget,
            backbone_lr=args.backbone_lr, momentum=args.momentum, accumulate=args.accumulate,
            calibration={"data": args.calib, "split": "train", "normalize": args.normalize})
    else:
        result = compile_model(args.model, update=args.update,
                               lr=LR_DEFAULT if args.lr is None else args.lr, reorder=args.reorder,
                               momentum=args.momentum, accumulate=args.accumulate)
    report, meta = result.report, result.plan.meta
    fit = None if target is None else board_fit(result.plan, target, args.budget)
    chart_budget = arena_budget if fit is None else fit.arena_capacity - fit.tables
    if args.memory_chart:  # drawn over budget too: it shows why the plan does not fit
        from tinyhost.memory_chart import draw_memory_chart
        draw_memory_chart(result.plan, report, args.memory_chart,
                          f"{meta.get('model', 'model')}, update {Path(args.update).name}"
                          f"{'' if args.reorder else ', no reordering'}: arena tensor lifetimes",
                          chart_budget)
    if fit is None:
        budget = budget_status(report, args.budget)
    else:  # the board's SRAM; whether arena + tables fit the device's arena
        budget = {"bytes": fit.ram, "enforced": fit.enforced, "fits": fit.fits,
                  "over_by": max(0, -fit.spare)}
    over_budget = budget["enforced"] and not budget["fits"]
    if not over_budget:
        Path(args.output).write_bytes(result.data)
        if args.sign_key is not None:  # a detached signature beside it (docs/security.md)
            from tinyhost.keys import read_signing_key
            from tinyhost.plansign import sign_plan, signature_path
            signature_path(args.output).write_bytes(
                sign_plan(read_signing_key(args.sign_key), result.data))
    if args.json:
        out = {"plan": None if over_budget else args.output, "bytes": len(result.data),
               "memory": report.to_dict(), "budget": budget, "memory_chart": args.memory_chart,
               "board": None if fit is None else fit.to_dict(),
               "layer_notes": meta.get("layer_notes", [])}
        if "scheme" in meta:
            out["int8"] = {k: meta[k] for k in ("scheme", "lr", "qas", "int8_update",
                                                "int8_update_auto",
                                                "reorder",
                                                "input_shape", "input_quant", "import_notes",
                                                "calibration") if k in meta}
        _print_json(out)
    else:
        if not over_budget:
            print(f"wrote {args.output} ({len(result.data)} bytes)")
        for note in meta.get("layer_notes", []):  # BatchNorm folded, Dropout the identity
            print(f"note: {note}")
        if "scheme" in meta:
            s = meta["scheme"]
            print(f"int8 {meta['model']} {'x'.join(map(str, meta['input_shape']))}: biases of the "
                  f"last {s['n_bias_update']} convs, weights of convs {s['manual_weight_idx']} "
                  f"(channel ratios {s['weight_update_ratio']}), fp32 head; QAS "
                  f"{'on' if meta['qas'] else 'off'}, int8 update rule {meta['int8_update']}")
            if "int8_update_auto" in meta:
                print(f"int8 update rule chosen (--int8-update auto): {meta['int8_update_auto']}")
            print(f"learning rates: {plan_rates(result.plan).describe()}")
            if "calibration" in meta:
                c = meta["calibration"]
                print(f"calibrated on {c['samples']} samples of {c['data']} ({c['split']} split, "
                      f"{'standardized' if c['normalize'] else 'raw values'})")
            if meta["import_notes"]:
                print(f"import: {len(meta['import_notes'])} layers have dead channels "
                      "(saturated bias, constant output); they never train (see --json)")
        print(format_report(report, args.budget, fit))
        if args.memory_chart:
            print(f"memory chart: {args.memory_chart}")
    if over_budget:
        why = (format_over_budget(report, args.budget) if fit is None else
               format_over_board(report, fit))
        print(f"error: {why}\nno plan written "
              f"({args.output} not touched)", file=sys.stderr)
        return 1
    return 0


# -- search ---------------------------------------------------------------------------------
def _model_options(args: argparse.Namespace):  # -> tuple[str, CompileOptions]
    """MODEL and its flags (compile's) as the compiler's options, for the search."""
    from tinyhost.boards import board
    from tinyhost.compiler import (
        INT8_UPDATE_DEFAULT,
        QUANTIZE,
        TINY_TRAINING,
        TORCH,
        CompileOptions,
    )
    from tinyhost.lr import LR_DEFAULT, TINY_LR_DEFAULT

    rule = args.int8_update or INT8_UPDATE_DEFAULT
    target = board(args.board) if args.board else None
    arena_budget = args.budget if target is None else target.arena_capacity(args.budget)
    if args.from_tiny_training is not None:
        if args.num_classes is None:
            raise ValueError("--from-tiny-training needs --num-classes N (the new head's classes)")
        return args.from_tiny_training, CompileOptions(
            TINY_TRAINING, lr=TINY_LR_DEFAULT if args.lr is None else args.lr,
            input_size=args.input_size, qas=args.qas, int8_update=rule, reorder=args.reorder,
            budget=arena_budget, num_classes=args.num_classes, backbone_lr=args.backbone_lr)
    if args.int8:
        calib = _load_data(args.calib, args.normalize)
        return args.model, CompileOptions(
            QUANTIZE, lr=LR_DEFAULT if args.lr is None else args.lr, qas=args.qas,
            int8_update=rule, reorder=args.reorder, budget=arena_budget, calib=calib.x_train,
            backbone_lr=args.backbone_lr,
            calibration={"data": args.calib, "split": "train", "normalize": args.normalize})
    return args.model, CompileOptions(TORCH, lr=LR_DEFAULT if args.lr is None else args.lr,
                                      reorder=args.reorder)


def _run_search(args: argparse.Namespace, quiet: bool):  # -> SearchResult
    from tinyhost.boards import board
    from tinyhost.search.run import SearchConfig, search

    source, options = _model_options(args)
    ds = _load_data(args.data, args.normalize)
    cfg = SearchConfig(budget=args.budget, board=board(args.board) if args.board else None,
                       max_drop=args.max_drop, progress=not quiet,
                       **{k: getattr(args, k) for k in ("method", "seed", "sim_size", "samples",
                                                         "holdout", "epochs", "layers", "refine",
                                                         "bias_points")
                          if getattr(args, k, None) is not None})
    return search(source, options, ds.x_train, ds.y_train, cfg)


def _describe_search(r) -> str:  # r: SearchResult
    from tinyhost.search.report import describe
    return describe(r)


def _search_then(args: argparse.Namespace) -> int:
    """compile --update auto: the search, its scheme written beside the plan, then compile it."""
    r = _run_search(args, quiet=args.json)
    path = str(Path(args.output).with_suffix("")) + ".scheme.json"
    Path(path).write_text(json.dumps(r.to_json(), indent=2) + "\n")
    if not args.json:
        print(_describe_search(r))
        print(f"wrote {path}; compiling with --update {path}")
    args.update = path
    return 0


def cmd_search(args: argparse.Namespace) -> int:
    status = _check_model_args(args, data_too=True)
    if status:
        return status
    if args.budget is None and args.max_drop is None:
        print("error: give --budget SIZE (the memory the scheme must fit), --max-drop PCT, or "
              "both", file=sys.stderr)
        return 2
    if args.momentum or args.accumulate != 1:
        print("error: the search simulates and measures plain SGD; --momentum and --accumulate "
              "are not searched with yet: search without them, then compile the scheme with "
              "them (the compile report gives their memory)", file=sys.stderr)
        return 2
    r = _run_search(args, quiet=args.json)
    Path(args.output).write_text(json.dumps(r.to_json(), indent=2) + "\n")
    if args.plot:
        from tinyhost.search.plot import plot_contributions
        plot_contributions(r, args.plot)
    if args.json:
        _print_json({"scheme": args.output, "plot": args.plot} | r.to_json())
    else:
        print(_describe_search(r))
        print(f"wrote {args.output}" + (f", {args.plot}" if args.plot else ""))
    return 0


# -- sim --------------------------------------------------------------------------------------
def cmd_sim(args: argparse.Namespace) -> int:
    from tinyhost.link.transport import SimProcess

    if args.key is not None:
        from tinyhost.keys import read_key
        read_key(args.key)  # a clear error here rather than from the simulated device
    sim = SimProcess(arena=args.arena, board=args.board, state=args.state, key=args.key)
    print(sim.path, flush=True)
    keyed = f" --key {args.key}" if args.key else ""
    print(f"simulated device running; use --port {sim.path}{keyed}. Ctrl-C stops it.",
          file=sys.stderr)
    try:
        while sim.proc.poll() is None:
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        sim.close()
    return 0


# -- keygen -----------------------------------------------------------------------------------
def cmd_keygen(args: argparse.Namespace) -> int:
    from tinyhost.keys import new_key, write_key
    signing = None
    if args.sign:
        from tinyhost.plansign import new_signing_pair
        signing = new_signing_pair()
    write_key(args.output, new_key(), force=args.force, signing=signing)
    print(f"wrote {args.output} (readable by you only). Provision a device with it: `tinyhost "
          f"sim --key {args.output}`, or build the Cortex-M4F firmware with "
          f"-DTT_AN386_KEY_FILE={args.output} (docs/security.md); then pass --key "
          f"{args.output} to every command that talks to it", file=sys.stderr)
    return 0


# -- device commands --------------------------------------------------------------------------
def _load_plan(path: str):  # -> tuple[Plan, bytes]
    from tinyhost.plan import load_plan_file
    return load_plan_file(path)


def _load_data(path: str, normalize: bool, plan=None, layout: str | None = None):
    from tinyhost.datasets import load_dataset, standardize
    ds = load_dataset(path)
    if plan is not None:  # the plan's input shape (--layout converts), then standardize channels
        from tinyhost.layout import fit_to_plan
        ds = fit_to_plan(ds, plan.tensors[plan.bindings.input].shape, layout)
    if normalize:
        ds, _, _ = standardize(ds)
    return ds


def _warn_int8_normalize(plan, normalize: bool) -> None:
    """Standardised samples (mean 0, std 1) overflow an int8 input quantized for [-1, 1]."""
    iq = plan.meta.get("input_quant")
    calib = plan.meta.get("calibration")
    if isinstance(calib, dict) and "normalize" in calib:
        if calib["normalize"] != normalize:  # the input range was calibrated on the other form
            print("warning: this int8 plan was calibrated on "
                  f"{'standardized' if calib['normalize'] else 'raw'} "
                  f"samples but these are {'standardized' if normalize else 'raw'}; values beyond "
                  f"its input range saturate. Use {'no ' if calib['normalize'] else ''}"
                  "--no-normalize, as at compile time", file=sys.stderr)
        return
    if normalize and isinstance(iq, dict):
        lo, hi = ((q - iq["zero"]) * iq["scale"] for q in (-128, 127))
        print(f"warning: this int8 plan quantizes its input for [{lo:.3g}, {hi:.3g}]; samples are "
              "standardised (mean 0, std 1), so values beyond that range saturate. Scale the data "
              "to the model's range (the paper's models: images in [-1, 1]) and pass "
              "--no-normalize", file=sys.stderr)


def _upload(device, plan, data: bytes, quiet: bool, plan_path: str) -> None:
    from tqdm import tqdm

    from tinyhost.plansign import read_signature
    from tinyhost.progress import bar_off
    signature = read_signature(plan_path, data)  # PLAN.sig (compile --sign-key), if any
    with tqdm(total=len(data), desc="upload plan", unit="B", unit_scale=True, leave=False,
              disable=bar_off(quiet)) as bar:
        uploaded = device.load_plan(plan, data, bar.update, signature=signature)
    if not quiet:
        print("plan uploaded" if uploaded else "device already runs this plan; continuing with "
              "its current parameters", file=sys.stderr)


def cmd_info(args: argparse.Namespace) -> int:
    from tinyhost.device import connect
    device = connect(args.port, args.key)
    try:
        info = device.info()
    finally:
        device.close()
    if args.json:
        _print_json(info.to_dict())
        return 0
    kind = "reference executor (numpy, in-process)" if info.board == "ref" else "device"
    print(f"{kind}: {info.board} on {args.port}")
    print(f"firmware {info.firmware}, protocol v{info.protocol}, plan format v{info.plan_format}")
    if info.board != "ref":
        slots = ("1 slot of" if info.plan_slots == 1 else f"{info.plan_slots} x")
        print(f"arena {info.arena_capacity} bytes, plan store {slots} {info.plan_capacity} bytes, "
              f"max payload {info.max_payload} bytes")
        if info.plan_slots == 1:
            print("one plan slot: an upload erases the running plan when it begins; until it is "
                  "committed no plan runs")
        print("authorization: " + ("required: provisioned with a key, every request but HELLO "
                                   "carries its MAC (--key)" if info.auth else
                                   "none (not provisioned: anyone on the line may use it)"))
    if info.plan_loaded:
        print(f"plan {info.plan_hash.hex()[:16]} loaded, arena used {info.arena_used} bytes, "
              f"{info.steps} training steps since loading")
    else:
        print("no plan loaded")
    return 0


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _unwritable(path: str | None) -> str | None:
    """Why an output file cannot be written there, or None (also for no path)."""
    if not path:
        return None
    p = Path(path)
    if p.is_dir():
        return "is a directory"
    if not p.parent.is_dir():
        return f"its directory {p.parent} does not exist"
    if not os.access(p if p.exists() else p.parent, os.W_OK):
        return "not writable"
    return None


def cmd_train(args: argparse.Namespace) -> int:
    from tinyhost.device import connect
    from tinyhost.lr import plan_rates, with_backbone_lr
    from tinyhost.params import model_state, pull_parameters, save_parameters
    from tinyhost.plan import plan_hash
    from tinyhost.plot import plot_training
    from tinyhost.train import MetricsLog, TrainConfig, check_dataset, train

    if args.live and (args.json or not sys.stdout.isatty()):
        print("error: --live draws the curves in a terminal, and "
              f"{'--json asks for JSON' if args.json else 'stdout is not a terminal'}: use "
              "--plot PNG (and --log CSV) for files instead", file=sys.stderr)
        return 2
    for flag, path in (("--log", args.log), ("--plot", args.plot),
                       ("--save-params", args.save_params)):
        problem = _unwritable(path)
        if problem:  # found out now, not after the training it would have recorded
            print(f"error: {flag} {path}: {problem}", file=sys.stderr)
            return 2
    plan, data = _load_plan(args.plan)
    ds = _load_data(args.data, args.normalize, plan, args.layout)
    check_dataset(plan, ds)
    _warn_int8_normalize(plan, args.normalize)
    lr = plan.default_lr if args.lr is None else args.lr
    if args.backbone_lr is not None:  # one float of the plan rewritten: a new plan to upload
        plan, data = with_backbone_lr(plan, lr, args.backbone_lr)
    rates = plan_rates(plan, lr)
    quiet = args.json
    device = connect(args.port, args.key)
    log = None
    try:
        info = device.info()
        start = 0
        if args.resume:  # the same run, from the device's last checkpoint
            if not info.plan_loaded or info.plan_hash != plan_hash(data):
                print(f"error: --resume: {device.name} does not run plan {args.plan}, so there "
                      "is no run of it to resume; train without --resume", file=sys.stderr)
                return 2
            start = info.steps
        _upload(device, plan, data, quiet, args.plan)
        every = args.checkpoint_every
        if every is None:
            every = CHECKPOINT_EVERY if info.checkpoints else 0
        elif every and not info.checkpoints:
            print(f"warning: {device.name} keeps no checkpoints (no store): --checkpoint-every "
                  "ignored", file=sys.stderr)
            every = 0
        if not quiet:
            print(f"training on {device.name}: {len(ds.x_train)} train / {len(ds.x_test)} test "
                  f"samples, {args.epochs} epochs, {rates.describe()}"
                  f"{f', resuming after step {start}' if args.resume else ''}"
                  f"{f', checkpoint every {every} steps' if every else ''}", file=sys.stderr)
        log = MetricsLog(args.log, keep_until=start if args.resume else None) if args.log else None
        live = None
        if args.live:
            from tinyhost.live import LiveView
            live = LiveView(total_steps=len(ds.x_train) * args.epochs
                            if args.steps is None else min(args.steps,
                                                           len(ds.x_train) * args.epochs))
        cfg = TrainConfig(epochs=args.epochs, lr=lr, seed=args.seed, shuffle=args.shuffle,
                          max_steps=args.steps, progress=not quiet, start_step=start,
                          checkpoint_every=every, log=log, live=live,
                          blowup_factor=max(0.0, args.max_loss_ratio))
        # `timeout`, systemd and kill send SIGTERM: stop as Ctrl-C does, keeping the metrics
        # CSV's every row and pulling what was trained (--save-params)
        previous = signal.signal(signal.SIGTERM, _interrupt)
        try:
            result = train(device, ds, cfg)
        finally:
            signal.signal(signal.SIGTERM, previous)
        saved = None
        if args.save_params:  # also after Ctrl-C: what was trained so far is kept
            try:
                save_parameters(model_state(plan, pull_parameters(device, plan)),
                                args.save_params)
                saved = args.save_params
            except OSError as e:
                print(f"error: could not pull the parameters into {args.save_params}: {e}",
                      file=sys.stderr)
                result.interrupted = result.interrupted or "the parameters were not saved"
    finally:
        if log:
            log.close()
        device.close()
    if args.plot and result.records:
        plot_training(result.losses, result.epoch_ends, result.train_accuracy,
                      result.test_accuracy, args.plot,
                      f"{plan.meta.get('model', 'model')} on {device.name}: {ds.name}")
    summary = result.summary() | {"device": device.name, "lr": lr,
                                  "backbone_lr": rates.backbone, "metrics": args.log,
                                  "plot": args.plot, "params": saved}
    if args.json:
        _print_json(summary)
    else:
        if result.test_accuracy:
            print(f"final test accuracy (on device): {result.test_accuracy[-1]:.1%}")
        for what, path in (("metrics", args.log), ("loss plot", args.plot), ("parameters", saved)):
            if path:
                print(f"{what}: {path}")
    if result.diverged:
        kept = "; the parameters saved are those after the last accepted step" if saved else ""
        backbone = ("" if rates.backbone is None else
                    f", or a lower backbone rate alone (now --backbone-lr {rates.backbone:.3g}; "
                    f"e.g. --backbone-lr {rates.backbone / 10:.3g})")
        print(f"error: training diverged and was stopped at {result.interrupted}.\n"
              f"What to try: a lower learning rate (now --lr {lr:g}; e.g. --lr {lr / 10:g})"
              f"{backbone}{kept}", file=sys.stderr)
        return 1
    if result.interrupted:
        print(f"training stopped early: {result.interrupted}; the steps so far are recorded",
              file=sys.stderr)
        return 1
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from tinyhost.device import connect
    from tinyhost.train import check_dataset, evaluate

    plan, data = _load_plan(args.plan)
    ds = _load_data(args.data, args.normalize, plan, args.layout)
    check_dataset(plan, ds)
    _warn_int8_normalize(plan, args.normalize)
    x, y = (ds.x_test, ds.y_test) if args.split == "test" else (ds.x_train, ds.y_train)
    device = connect(args.port, args.key)
    try:
        _upload(device, plan, data, args.json, args.plan)
        acc, _ = evaluate(device, x, y, f"eval {args.split}", not args.json)
    finally:
        device.close()
    if args.json:
        _print_json({"device": device.name, "split": args.split, "samples": len(y),
                     "accuracy": acc})
    else:
        print(f"{args.split} accuracy on {device.name}: {acc:.1%} ({len(y)} samples)")
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    import numpy as np

    from tinyhost.datasets import load_dataset
    from tinyhost.device import connect
    from tinyhost.layout import fit_samples, fit_to_plan
    from tinyhost.predict import (
        apply_standardization,
        load_samples,
        standardizer,
        write_predictions,
    )
    from tinyhost.train import evaluate

    problem = _unwritable(args.output)
    if problem:
        print(f"error: -o {args.output}: {problem}", file=sys.stderr)
        return 2
    plan, data = _load_plan(args.plan)
    samples, labeled = load_samples(args.data, args.split)
    need = plan.tensors[plan.bindings.input].shape
    samples.x = fit_samples(samples.x, need, args.layout, f"dataset {samples.name!r}")
    if args.normalize:
        source = load_dataset(args.normalize_with) if args.normalize_with else labeled
        if source is None:
            print(f"error: {args.data} is unlabeled, so it cannot say how training standardized "
                  "its samples: give --normalize-with TRAIN_DATA (the data the model was "
                  "trained with) or --no-normalize", file=sys.stderr)
            return 2
        # per channel of the plan's input shape, as train computed them
        mean, std = standardizer(fit_to_plan(source, tuple(need), args.layout))
        samples.x = apply_standardization(samples.x, mean, std)
        if samples.class_names is None:
            samples.class_names = list(source.class_names)
    _warn_int8_normalize(plan, args.normalize)
    device = connect(args.port, args.key)
    try:
        _upload(device, plan, data, args.json, args.plan)
        labels = samples.labels if samples.labels is not None else np.zeros(len(samples.x),
                                                                             np.int64)
        acc, preds = evaluate(device, samples.x, labels, "predict", not args.json)
    finally:
        device.close()
    write_predictions(args.output, preds, samples)
    summary = {"device": device.name, "samples": len(preds), "output": args.output,
               "accuracy": acc if samples.labels is not None else None}
    if args.json:
        _print_json(summary)
    else:
        scored = f", accuracy {acc:.1%} against its labels" if samples.labels is not None else ""
        print(f"{len(preds)} predictions on {device.name} written to {args.output}{scored}")
    return 0


def cmd_pull(args: argparse.Namespace) -> int:
    from tinyhost.device import connect
    from tinyhost.params import model_state, pull_parameters, save_parameters

    if args.port in ONE_SHOT_PORTS:
        print(f"error: --port {args.port} starts a fresh device for this command, so it holds "
              "nothing to pull: use `tinyhost train ... --save-params FILE`, or run `tinyhost sim` "
              "and pass its path as --port", file=sys.stderr)
        return 2
    plan, data = _load_plan(args.plan)
    device = connect(args.port, args.key)
    try:
        info = device.info()
        from tinyhost.plan import plan_hash
        if not info.plan_loaded or info.plan_hash != plan_hash(data):
            print(f"error: {device.name} does not run plan {args.plan}; train it there first",
                  file=sys.stderr)
            return 2
        device.load_plan(plan, data)  # binds the plan; no upload, the hashes match
        params = pull_parameters(device, plan)
    finally:
        device.close()
    save_parameters(model_state(plan, params), args.output)
    if args.json:
        _print_json({"output": args.output,
                     "parameters": {k: list(v.shape) for k, v in params.items()}})
    else:
        print(f"wrote {len(params)} tensors to {args.output}")
    return 0


def cmd_push(args: argparse.Namespace) -> int:
    from tinyhost.device import connect
    from tinyhost.params import load_parameters, push_parameters

    if args.port in ONE_SHOT_PORTS:
        print(f"error: --port {args.port} starts a fresh device for this command and forgets it "
              "afterwards: run `tinyhost sim` and pass its path as --port", file=sys.stderr)
        return 2
    plan, data = _load_plan(args.plan)
    try:
        params = load_parameters(args.params)
    except (OSError, ValueError) as e:
        print(f"error: cannot read {args.params}: {e}", file=sys.stderr)
        return 2
    device = connect(args.port, args.key)
    try:
        from tinyhost.plansign import read_signature
        uploaded = device.load_plan(plan, data, signature=read_signature(args.plan, data))
        try:
            written = push_parameters(device, plan, params)
        except ValueError as e:
            print(f"error: {args.params} does not fit plan {args.plan}: {e}", file=sys.stderr)
            return 2
        if args.checkpoint:
            device.checkpoint()
    finally:
        device.close()
    if args.json:
        _print_json({"plan_uploaded": uploaded, "written": written,
                     "checkpoint": args.checkpoint})
    else:
        print(f"wrote {len(written)} trainable tensors to {device.name}"
              f"{' (plan uploaded first)' if uploaded else ''}"
              f"{'; checkpoint saved' if args.checkpoint else ''}")
    return 0


def cmd_data(args: argparse.Namespace) -> int:
    from tinyhost.datasets import load_dataset, save_npz
    ds = load_dataset(args.input)
    save_npz(ds, args.output)
    print(f"{args.output}: {len(ds.x_train)} train + {len(ds.x_test)} test samples of shape "
          f"{ds.sample_shape}, classes {ds.class_names}")
    return 0


def cmd_fleet(args: argparse.Namespace) -> int:
    from tinyhost.fleet.cli import run
    return run(args)


# -- parser -----------------------------------------------------------------------------------
_SIZE_UNITS = {"": 1, "b": 1, "k": 1024, "kb": 1024, "kib": 1024,
               "m": 1024 ** 2, "mb": 1024 ** 2, "mib": 1024 ** 2}


def byte_size(text: str) -> int:
    """argparse type of --budget: 256KB, 256K, 262144, 1.5MB (binary units: KB = 1024 bytes)."""
    m = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([a-z]*)", text.strip().lower())
    if m and m.group(2) in _SIZE_UNITS:
        n = float(m.group(1)) * _SIZE_UNITS[m.group(2)]
        if n >= 1 and n == int(n):
            return int(n)
    raise argparse.ArgumentTypeError(f"{text!r} is not a size in bytes: give e.g. 256KB, 256K, "
                                     "262144 or 1.5MB (KB = 1024 bytes)")


def count(text: str) -> int:
    """argparse type of --epochs, --steps, --rounds...: a whole number of at least 1."""
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: give 1 or more")
    return n


def learning_rate(text: str) -> float:
    """argparse type of the learning-rate flags: a finite number above 0 (0 trains nothing, a
    negative one climbs the loss, NaN/inf make every update non-finite)."""
    try:
        lr = float(text)
    except ValueError:
        lr = math.nan
        if not re.fullmatch(r"[+-]?(nan|inf(inity)?)", text.strip().lower()):
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    from tinyhost.lr import lr_ok
    if not lr_ok(lr):
        raise argparse.ArgumentTypeError(f"{text!r} cannot work as a learning rate: give a "
                                         "finite number above 0, e.g. 0.01")
    return lr


def _add_data_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--plan", required=True, help="compiled plan (.ttp)")
    p.add_argument("--data", required=True,
                   help="dataset: .ts (a NAME_TRAIN.ts finds its NAME_TEST.ts), .npz (x_train, "
                        "y_train, x_test, y_test, or x, y) or .csv (label in the last column)")
    p.add_argument("--no-normalize", dest="normalize", action="store_false",
                   help="send raw values (default: standardize each channel with the train "
                        "split's mean and std)")
    p.add_argument("--layout", choices=("nchw", "nhwc", "ncw", "nwc"),
                   help="how DATA's samples are stored: nhwc/nwc (channels last) are converted to "
                        "the plan's channels-first input; default: as the plan's input shape")


def _add_model_args(p: argparse.ArgumentParser) -> None:
    """MODEL and its flags: `compile`'s, and `search`'s exactly."""
    p.add_argument("model", nargs="?",
                   help="FILE.py:FACTORY (returns (nn.Module, example_input)) or a torch.export "
                        ".pt2 file; or use --from-tiny-training")
    p.add_argument("--int8", action="store_true",
                   help="quantize the float MODEL to int8 (post-training: BatchNorm folded into "
                        "the convs, per-channel int8 weights, int8 activations with ranges from "
                        "--calib, ReLU/ReLU6 as clamps) and train it as the paper's int8 models: "
                        "int8 forward, fp32 backward, QAS; its final Linear stays an fp32 head. "
                        "Layers: Conv1d/2d (groups too), BatchNorm, ReLU, ReLU6, residual adds, "
                        "average pools, Flatten, a final Linear (no MaxPool: use a strided conv)")
    p.add_argument("--calib", metavar="DATA",
                   help="--int8: calibration dataset (.npz, .ts or .csv as for `train`); its "
                        "train split sets the activation ranges, standardized per channel as "
                        "`train` does unless --no-normalize")
    p.add_argument("--no-normalize", dest="normalize", action="store_false",
                   help="--int8: calibrate on raw values (for training with --no-normalize)")
    p.add_argument("--from-tiny-training", metavar="PKL",
                   help="compile one of the paper's pretrained int8 models (tiny-training's .pkl, "
                        "e.g. mcunet-5fps.pkl) with a new fp32 head of --num-classes")
    p.add_argument("--num-classes", type=int, help="classes of the new head (int8 models)")
    p.add_argument("--input-size", type=int,
                   help="input resolution N (NxN) of an int8 model (default: the model's, 128)")
    p.add_argument("--no-qas", dest="qas", action="store_false",
                   help="int8 models: no quantization-aware scaling of the gradients (for "
                        "comparison: int8 weights and biases then barely move)")
    # (compiler.INT8_UPDATE_CHOICES, written out: importing the compiler here would load torch)
    p.add_argument("--int8-update", choices=("auto", "round", "master"),
                   help="int8 weight update: master (an f32 copy of the trained rows and biases, "
                        "updated and rounded: the more accurate, docs/int8.md section 12), round "
                        "(int8 weights only: less arena; the paper's 99kb schemes fit 256 KB only "
                        "with it), or auto (default: master when the arena then fits --budget, "
                        "or 256 KB without one, or with --board the device's arena, else "
                        "round)")
    p.add_argument("--no-reorder", dest="reorder", action="store_false",
                   help="apply every update after the whole backward pass instead of right "
                        "after its gradient (for memory comparisons)")
    p.add_argument("--lr", type=learning_rate,
                   help="learning rate stored in the plan: of every parameter of an fp32 or "
                        "--int8 model (default 0.01); of a --from-tiny-training model's fp32 "
                        "head (default 0.001), its int8 backbone's being --lr x 0.5 unless "
                        "--backbone-lr (defaults chosen by bench/transfer.py, docs/int8.md "
                        "section 13). A finite number above 0")
    p.add_argument("--backbone-lr", type=learning_rate, metavar="LR",
                   help="int8 models: the learning rate of the int8 backbone's weights and "
                        "biases (QAS-scaled), apart from the head's --lr; stored in the plan as "
                        "its ratio to --lr (default: --from-tiny-training --lr x 0.5, i.e. "
                        "0.0005; --int8 models --lr)")
    p.add_argument("--momentum", type=float, default=0.0, metavar="M",
                   help="SGD with momentum M for the trainable set (0 = off, the default; "
                        "tiny-training uses 0.9): a persistent f32 velocity per trained element, "
                        "v = M v + g, applied instead of g (PyTorch's SGD; compiler/optim.py)")
    p.add_argument("--accumulate", type=int, default=1, metavar="N",
                   help="gradient accumulation: update every N samples with their mean gradient "
                        "(1 = off, the default; the paper's VWW setting accumulates): a "
                        "persistent f32 gradient sum per trained element and a step phase, kept "
                        "in checkpoints. Either option keeps each trained layer's weight gradient "
                        "whole (no fused gradient-and-update op); the report says the cost")
    p.add_argument("--board", choices=BOARD_NAMES,
                   help="the board the plan is for (tinyhost/boards.py: its SRAM, the firmware's "
                        "static RAM and stack, the device's arena): the report says what the plan "
                        "needs there in all (static RAM + stack + arena + plan tables) and "
                        "whether the device takes it (arena + tables within its arena, the "
                        "device's own check). mps2_an386 is the bare-metal Cortex-M4F build "
                        "(--port qemu), sim the simulated device. Without it the verdict compares "
                        "the planned arena alone with --budget or 256 KB")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tinyhost",
        description="Compile PyTorch models into training plans and train them on a "
                    "microcontroller (or a simulated one) over a serial link.")
    parser.add_argument("--version", action="version", version=f"tinyhost {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("compile", help="compile a model into a training plan",
                       description="Compile a PyTorch model (fp32, or quantized to int8 with "
                                   "--int8 --calib DATA), or a pretrained int8 model of the "
                                   "paper (--from-tiny-training), into a training plan (.ttp) "
                                   "and print its memory report.")
    _add_model_args(p)
    p.add_argument("-o", "--output", required=True, help="plan file to write (.ttp)")
    p.add_argument("--update", default="full",
                   help="what trains: full (default), last:K (last K layers with parameters, the "
                        "head included), bias-only, or a comma list of layer/parameter names "
                        "(e.g. 7,3.bias; fp32 models); for int8 models (--int8, "
                        "--from-tiny-training) also a sparse-update scheme: "
                        "scheme.json (one scheme) or sparse_schemes.json:MODEL:BUDGET (the "
                        "paper's file, e.g. ...:mcunet-5fps:99kb; ...:BUDGET takes the model's "
                        "name from the .pkl); or auto (int8 models): run `tinyhost search` with "
                        "--data and --budget (or --max-drop) first, write its scheme beside the "
                        "plan (PLAN.scheme.json) and compile that")
    p.add_argument("--budget", type=byte_size, metavar="SIZE",
                   help="fail (exit status 1, no plan written) when the plan does not fit SIZE: "
                        "256KB, 256K, 262144, 1.5MB (KB = 1024 bytes); the error says by how "
                        "much and what is live at the peak. With --board, SIZE is the board's "
                        "whole SRAM (the arena is what the firmware's static RAM and stack leave "
                        "of it); without --board, the planned arena alone (tables, static RAM and "
                        "stack not counted). Without --budget the report only says whether it "
                        "fits (the board's shipped build, or a 256 KB arena)")
    p.add_argument("--memory-chart", metavar="PNG",
                   help="draw the arena's tensor lifetimes (op span x arena bytes, by kind) here")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument("--sign-key", metavar="FILE",
                   help="sign the plan with FILE's signing key (tinyhost keygen --sign): writes "
                        "OUTPUT.sig beside it, which train/eval/push send with the plan; a "
                        "device that trusts FILE's public key takes only plans so signed")
    p.add_argument("--data", metavar="DATA",
                   help="--update auto: the dataset whose train split the search trains on")
    p.add_argument("--max-drop", type=float, metavar="PCT",
                   help="--update auto: as `search --max-drop`")
    p.set_defaults(func=cmd_compile)

    p = sub.add_parser(
        "search", help="find what to update under a memory budget (a sparse-update scheme)",
        description="Contribution analysis and search (the paper's section 3.2): short "
                    "fine-tuning runs of an int8 MODEL on DATA's train split (simulated on the "
                    "host with the device's numerics: int8 forward, QAS, the update rule, batch 1 "
                    "SGD), scored on samples held back from that split, measure how much each "
                    "choice buys (the last k biases; each conv's weights at channel ratios 1/8, "
                    "1/4, 1/2, 1); the compiler measures what each costs in memory on --board; "
                    "the search picks the choice of largest summed gain that fits --budget. "
                    "Writes a scheme that `compile --update scheme.json` takes. docs/search.md.")
    _add_model_args(p)
    p.add_argument("--data", required=True,
                   help="dataset (.npz, .ts, .csv as for `train`): its train split trains and "
                        "scores the search's runs (its test split is never read); samples "
                        "standardized per channel unless --no-normalize (the paper's models "
                        "want raw images in [-1, 1]: give --no-normalize)")
    p.add_argument("-o", "--output", required=True, help="scheme file to write (.json)")
    p.add_argument("--budget", type=byte_size, metavar="SIZE",
                   help="the memory the scheme must fit, as `compile --budget`: with --board the "
                        "board's whole SRAM, without it the planned arena (256KB, 1.5MB, bytes)")
    p.add_argument("--max-drop", type=float, metavar="PCT",
                   help="instead of the most accurate scheme within --budget: the smallest-memory "
                        "scheme whose predicted accuracy is within PCT points of the full "
                        "update's (freeze until accuracy dips); with --budget, within it too")
    p.add_argument("--method", choices=("knapsack", "evolution"), default="knapsack",
                   help="knapsack (default): exact dynamic programming over the layers' memory "
                        "costs; evolution: the paper's evolutionary search")
    p.add_argument("--seed", type=int, default=0,
                   help="seeds the held-back split, the sample order and the evolution "
                        "(default 0)")
    p.add_argument("--sim-size", type=int, default=32, metavar="N",
                   help="--from-tiny-training: the input size NxN the runs simulate at "
                        "(default 32; the memory is always the compiled --input-size's); DATA's "
                        "images are resized to it")
    p.add_argument("--samples", type=int, default=150,
                   help="train samples per fine-tuning run (default 150)")
    p.add_argument("--holdout", type=int, default=100,
                   help="train-split samples held back to score the runs (default 100, at most "
                        "a third of the split)")
    p.add_argument("--refine", type=int, default=8, metavar="N",
                   help="every channel ratio is measured for the N convs whose weights gained "
                        "most at the largest ratio that fits (default 8; the others: that ratio "
                        "only)")
    p.add_argument("--epochs", type=count, default=1, help="epochs per run (default 1)")
    p.add_argument("--bias-points", type=int, default=8, metavar="N",
                   help="bias counts k measured (evenly spaced up to the largest that fits; "
                        "linear in between; default 8)")
    p.add_argument("--layers", type=int, metavar="N",
                   help="only the last N convs' weights are candidates (default: every conv "
                        "whose update can fit)")
    p.add_argument("--plot", metavar="PNG",
                   help="draw the contributions (bias counts; conv x channel ratio, the paper's "
                        "Figure 5) with the chosen scheme marked")
    p.add_argument("--json", action="store_true",
                   help="print the scheme and the search's record as JSON, no progress bar")
    p.set_defaults(func=cmd_search)

    p = sub.add_parser("sim", help="run the simulated device on a pseudo-terminal",
                       description="Start the host-native firmware on a pseudo-terminal, print "
                                   "its path, and run until Ctrl-C.")
    p.add_argument("--arena", type=int, help="arena capacity in bytes (default 262144)")
    p.add_argument("--board", help="board name the device reports")
    p.add_argument("--state", metavar="FILE",
                   help="keep the plan, trained parameters and step count in FILE: saved at "
                        "each checkpoint (`train --checkpoint-every`), restored at start, like a "
                        "board's flash")
    p.add_argument("--key", metavar="FILE",
                   help="provision the device with this key file (tinyhost keygen): it then "
                        "refuses every request but HELLO/INFO without the key's MAC, and "
                        "replays; pass the same --key to the commands that use it")
    p.set_defaults(func=cmd_sim)

    p = sub.add_parser("keygen", help="write a new device key file",
                       description="Write a new secret key (32 random bytes, hex, in a text "
                                   "file readable by you only) for provisioning a device and "
                                   "authorizing requests to it (--key FILE; docs/security.md).")
    p.add_argument("-o", "--output", required=True, help="key file to write, e.g. device.key")
    p.add_argument("--force", action="store_true",
                   help="replace an existing file (devices provisioned with the old key will "
                        "refuse the new one)")
    p.add_argument("--sign", action="store_true",
                   help="also write an EdDSA key pair for signing plans (compile --sign-key "
                        "FILE); a device given this file (tinyhost sim --key FILE) then takes "
                        "only plans signed with it")
    p.set_defaults(func=cmd_keygen)

    p = sub.add_parser("info", help="show what a device is and what it runs")
    p.add_argument("--port", required=True, help=PORT_HELP)
    p.add_argument("--key", metavar="FILE", help=KEY_HELP)
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_info)

    p = sub.add_parser("train", help="train a plan on a device with a dataset",
                       description="Upload the plan (unless the device already runs it), stream "
                                   "the training samples, record the loss and prediction the "
                                   "device reports for every step, and evaluate on the test "
                                   "split on the device after each epoch.")
    p.add_argument("--port", required=True, help=PORT_HELP)
    p.add_argument("--key", metavar="FILE", help=KEY_HELP)
    _add_data_args(p)
    p.add_argument("--epochs", type=count, default=10,
                   help="passes over the train split (default 10)")
    p.add_argument("--lr", type=learning_rate,
                   help="learning rate (default: the plan's): of every parameter of an fp32 "
                        "plan; of an int8 plan's head, its backbone's scaled along (the plan's "
                        "ratio) unless --backbone-lr. A finite number above 0")
    p.add_argument("--backbone-lr", type=learning_rate, metavar="LR",
                   help="int8 plans: the backbone's learning rate, apart from the head's (the "
                        "plan is uploaded with its ratio rewritten; default: the plan's)")
    p.add_argument("--max-loss-ratio", type=float, default=4.0, metavar="K",
                   help="stop training when the mean of the last 20 losses exceeds K x the first "
                        "step's loss (at least ln(classes)): a loss blow-up (default 4; 0 "
                        "turns it off). A NaN/inf loss, or an update the device refuses as "
                        "non-finite, always stops training. Either way the parameters are still "
                        "pulled (--save-params) and the exit status is 1")
    p.add_argument("--steps", type=count, help="stop after this many training steps")
    p.add_argument("--seed", type=int, default=0, help="shuffling seed (default 0)")
    p.add_argument("--shuffle", action=argparse.BooleanOptionalAction, default=True,
                   help="shuffle the train split every epoch (default on)")
    p.add_argument("--log", metavar="CSV",
                   help="write per-step metrics here, as training goes")
    p.add_argument("--plot", metavar="PNG", help="write the loss and accuracy plot here")
    p.add_argument("--live", action="store_true",
                   help="redraw the loss and accuracy curves in the terminal as training goes "
                        "(instead of the progress bar; needs a terminal, not with --json)")
    p.add_argument("--save-params", metavar="FILE",
                   help="pull the trained parameters at the end (.pt state_dict or .npz); a "
                        "failed pull is an error (exit 1)")
    p.add_argument("--checkpoint-every", type=int, metavar="N",
                   help="have the device save its parameters and step count every N steps and "
                        f"at the end (default {CHECKPOINT_EVERY} on a device with a store: "
                        "`tinyhost sim --state`, the Zephyr flash store; 0: never)")
    p.add_argument("--resume", action="store_true",
                   help="continue the run the device checkpointed (give the same plan, data, "
                        "--seed, --epochs and shuffle): skip the steps it has made, keep --log's "
                        "rows up to there")
    p.add_argument("--json", action="store_true", help="print a JSON summary, no progress bar")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("eval", help="accuracy of the device's current parameters")
    p.add_argument("--port", required=True, help=PORT_HELP)
    p.add_argument("--key", metavar="FILE", help=KEY_HELP)
    _add_data_args(p)
    p.add_argument("--split", choices=("test", "train"), default="test")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("predict", help="on-device inference on samples into a CSV of predictions",
                       description="Runs the plan's forward pass on the device for every sample "
                                   "of DATA and writes one row per sample: index, pred, class "
                                   "(and label, correct when DATA is labeled).")
    p.add_argument("--port", required=True, help=PORT_HELP)
    p.add_argument("--key", metavar="FILE", help=KEY_HELP)
    p.add_argument("--plan", required=True)
    p.add_argument("--data", required=True,
                   help="a dataset file as for train (its --split; labels kept to score the "
                        "predictions), or unlabeled samples: .npy [N, ...] or .npz with `x`")
    p.add_argument("--split", choices=("test", "train", "all"), default="test",
                   help="of a labeled DATA: which samples (default test)")
    p.add_argument("--normalize-with", metavar="TRAIN_DATA",
                   help="standardize with the train split of this dataset (the one the model "
                        "was trained with), as train did; default: DATA's own, when labeled")
    p.add_argument("--no-normalize", dest="normalize", action="store_false",
                   help="send the samples as they are")
    p.add_argument("--layout", choices=("nchw", "nhwc", "ncw", "nwc"),
                   help="the samples' axis order, converted to the plan's (as for train)")
    p.add_argument("-o", "--output", required=True, metavar="CSV", help="predictions CSV")
    p.add_argument("--json", action="store_true", help="print a JSON summary, no progress bar")
    p.set_defaults(func=cmd_predict)

    p = sub.add_parser("pull", help="trained parameters from the device into a state_dict",
                       description="Read the trained parameters back from the device and save "
                                   "them as a PyTorch state_dict (.pt) or raw arrays (.npz).")
    p.add_argument("--port", required=True, help=PORT_HELP)
    p.add_argument("--key", metavar="FILE", help=KEY_HELP)
    p.add_argument("--plan", required=True, help="the plan the device runs (.ttp)")
    p.add_argument("-o", "--output", required=True, help="model.pt or params.npz")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_pull)

    p = sub.add_parser("push", help="put saved parameters back on a device",
                       description="Write trained parameters (what `pull` or `train "
                                   "--save-params` saved, .pt or .npz) into the device's "
                                   "trainable tensors, uploading the plan first if the device "
                                   "does not run it.")
    p.add_argument("--port", required=True, help=PORT_HELP)
    p.add_argument("--key", metavar="FILE", help=KEY_HELP)
    p.add_argument("--plan", required=True, help="the plan the parameters belong to (.ttp)")
    p.add_argument("params", help="model.pt or params.npz")
    p.add_argument("--checkpoint", action="store_true",
                   help="then have the device save them (a device with a store)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_push)

    p = sub.add_parser("fleet", help="federated training over many devices (Flower)",
                       description="Each device (--ports) is a Flower client: every round it "
                                   "gets the global trainable parameters (set-parameters), "
                                   "trains them on its own data shard for --local-epochs, and "
                                   "sends back only the trained set; a Flower strategy averages "
                                   "them (int8/int32 requantized as the plan's update rule, "
                                   "docs/fleet.md) and every device evaluates the result on its "
                                   "own test data. Runs in Flower's simulation engine on this "
                                   "machine; for a real fleet over gateways see docs/fleet.md "
                                   "(SuperLink + SuperNodes).")
    p.add_argument("--ports", required=True,
                   help="comma list, one per device: sim (a simulated device each), ref, qemu, "
                        "serial ports or pyserial URLs, e.g. sim,sim,sim,sim")
    p.add_argument("--plan", required=True, help="compiled plan (.ttp) every device runs")
    p.add_argument("--data", required=True,
                   help="one dataset (.npz/.ts/.csv) split over the devices by --split, or a "
                        "comma list of one file per device")
    p.add_argument("--split", nargs="+", default=["iid"], metavar="KIND",
                   help="iid (default), by-label (non-IID: each device about 2 labels, the "
                        "pathological split of McMahan et al.), or by-group COLUMN (the .npz "
                        "arrays COLUMN_train/COLUMN_test, e.g. a subject id: whole groups per "
                        "device); the test split is divided the same way")
    p.add_argument("--rounds", type=count, default=10, help="federated rounds (default 10)")
    p.add_argument("--local-epochs", type=count, default=1,
                   help="epochs each device trains on its shard per round (default 1)")
    p.add_argument("--strategy", choices=("fedavg", "fedprox"), default="fedavg",
                   help="Flower strategy: fedavg (default) or fedprox (its proximal term "
                        "applied on the host after each local epoch; docs/fleet.md)")
    p.add_argument("--proximal-mu", type=float, default=0.01,
                   help="fedprox's mu (default 0.01)")
    p.add_argument("--lr", type=learning_rate, help="local learning rate (default: the plan's)")
    p.add_argument("--seed", type=int, default=0, help="split and shuffling seed (default 0)")
    p.add_argument("--no-normalize", dest="normalize", action="store_false",
                   help="send raw values (default: standardize with the train split's "
                        "statistics)")
    p.add_argument("--plot", metavar="PNG", help="plot accuracy over rounds here")
    p.add_argument("--save-params", metavar="FILE",
                   help="save the final aggregated trainable parameters (.npz or .pt)")
    p.add_argument("--json", action="store_true",
                   help="print the JSON summary (per-round entries, final test_accuracy)")
    p.set_defaults(func=cmd_fleet)

    p = sub.add_parser("data", help="convert a dataset to the compact .npz form",
                       description="Read a .ts/.npz/.csv dataset and write it as .npz.")
    p.add_argument("input")
    p.add_argument("output")
    p.set_defaults(func=cmd_data)
    return parser


def main(argv: list[str] | None = None) -> int:
    from tinyhost.compiler.errors import CompileError
    from tinyhost.datasets import DatasetError
    from tinyhost.link.client import DeviceError
    from tinyhost.plan import PlanError

    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (CompileError, DatasetError, PlanError, DeviceError, OSError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
