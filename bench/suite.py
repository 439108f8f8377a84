"""The runner: collect workloads, check every system against torch, time, record.

For each workload and size:
  1. make the inputs (NumPy, seeded) and, for small inputs, several sets of
     them to rotate over;
  2. run torch eager on them: its output is the reference (and torch in
     float64, for the "no farther from float64 than torch" rule);
  3. for each system: build its callable, run it once and check the output
     (shape, dtype, values). A wrong result or an exception is recorded as a
     failure with the reason, and that system is not timed at this size;
  4. time the systems that passed, their repeats interleaved (bench/timing.py);
  5. ask `tracegrad.explain` how many kernels the computation launches, once
     that function exists.
"""
from __future__ import annotations

import importlib
import pkgutil
import sys
import time
import traceback
from pathlib import Path
from typing import Any

import numpy as np

from . import checks, timing
from .systems import System, bind, dtype_names, to_numpy
from .workload import Workload

BASELINES = ("torch", "torch.compile", "numpy")
ROTATE_BELOW_BYTES = 256 * 1024
ROTATIONS = 16


# ---------------------------------------------------------------------------
# Finding workloads
# ---------------------------------------------------------------------------


def _module_names() -> list[str]:
    """Import names of the bench/bench_*.py modules present, sorted."""
    here = Path(__file__).resolve().parent
    return sorted(f"{__package__}.{m.name}" for m in pkgutil.iter_modules([str(here)])
                  if m.name.startswith("bench_"))


def discover(device: str, quick: bool) -> tuple[list[Workload], list[str]]:
    """Built-in workloads plus those of every bench/bench_*.py module present.
    Returns (workloads, problems): a module that fails is reported, not fatal."""
    from .workloads import builtin_workloads

    found = [w for w in builtin_workloads(device, quick) if device in w.devices]
    problems: list[str] = []
    for name in _module_names():
        short = name.rsplit(".", 1)[-1]
        try:
            module = importlib.import_module(name)
            ws = module.workloads(device=device, quick=quick)
        except Exception as e:  # one broken module must not stop the suite
            problems.append(f"bench/{short}.py skipped: {type(e).__name__}: {e}")
            continue
        for w in ws or []:
            if not isinstance(w, Workload):
                problems.append(f"bench/{short}.py: {w!r} is not a Workload; skipped")
            elif device in w.devices:
                w.extra.setdefault("module", short)
                found.append(w)
    names = [w.name for w in found]
    dupes = {n for n in names if names.count(n) > 1}
    if dupes:
        problems.append(f"workload names used twice: {sorted(dupes)} (all kept)")
    return found, problems


def select(workloads: list[Workload], only: list[str] | None) -> list[Workload]:
    """Workloads named by `only`: each entry picks the workloads whose name or
    group is exactly it, or, when none is, those whose name contains it."""
    if not only:
        return workloads
    picked: set[int] = set()
    for o in only:
        exact = {i for i, w in enumerate(workloads) if o in (w.name, w.group)}
        picked |= exact or {i for i, w in enumerate(workloads) if o in w.name}
    return [w for i, w in enumerate(workloads) if i in picked]


# ---------------------------------------------------------------------------
# Progress
# ---------------------------------------------------------------------------


class Progress:
    """A one-line progress bar on stderr (a plain line per step when not a terminal)."""

    def __init__(self, total: int, enabled: bool = True):
        self.total, self.done, self.enabled = max(total, 1), 0, enabled
        self.tty = sys.stderr.isatty()
        self.t0 = time.perf_counter()

    def step(self, what: str) -> None:
        if not self.enabled:
            return
        width = 28
        fill = int(width * self.done / self.total)
        bar = "#" * fill + "." * (width - fill)
        line = f"[{bar}] {self.done:>3}/{self.total} {time.perf_counter() - self.t0:6.1f}s  {what}"
        if self.tty:
            sys.stderr.write("\r\033[K" + line[:120])
        elif not what.endswith(": check"):  # a log gets one line per row
            sys.stderr.write(line + "\n")
        sys.stderr.flush()

    def advance(self) -> None:
        self.done += 1

    def close(self) -> None:
        if self.enabled:
            self.done = self.total
            self.step("done")
            if self.tty:
                sys.stderr.write("\n")


# ---------------------------------------------------------------------------
# Running one workload at one size
# ---------------------------------------------------------------------------


def _short(e: BaseException) -> str:
    msg = str(e).strip().splitlines()
    return f"{type(e).__name__}: {msg[0][:160] if msg else ''}"


def _build(w: Workload, system: System, arrays: tuple, size, compiled_fn=None):
    """(callable, args) for one input set, or None when the system has no version."""
    if w.prepare is not None:
        return w.prepare(system, arrays, size)
    if system.kind == "numpy":
        if w.numpy_fn is None:
            return None
        return w.numpy_fn, tuple(system.tensor(a, w.dtype) for a in arrays)
    return compiled_fn, tuple(system.tensor(a, w.dtype) for a in arrays)


def _float64_reference(w: Workload, torch_sys: System, arrays: tuple):
    """torch's result on the same inputs, computed in float64."""
    if w.fn is None:
        return None
    args = []
    for a in arrays:
        t = torch_sys.tensor(a, w.dtype)
        args.append(t.double() if hasattr(t, "is_floating_point") and t.is_floating_point() else t)
    return to_numpy(w.fn(torch_sys.lib, *args))


def _kernel_count(w: Workload, arrays: tuple) -> int | None:
    import tracegrad

    explain = getattr(tracegrad, "explain", None)
    if explain is None or w.fn is None:
        return None
    try:
        tg = System("tracegrad", "tracegrad", tracegrad)
        report = explain(bind(w.fn, tracegrad), *(tg.tensor(a, w.dtype) for a in arrays))
        return len(report.kernels)
    except Exception:
        return None


def run_one(w: Workload, size, systems: list[System], *, device: str, quick: bool, seed: int,
            progress: Progress) -> dict:
    label = w.size_label(size)
    row: dict[str, Any] = {"workload": w.name, "group": w.group, "size": label, "note": w.note,
                           "systems": {}, "ratios": {}, "kernels": None}
    if w.extra.get("module"):
        row["module"] = w.extra["module"]
    rng = np.random.default_rng(seed)
    try:
        first = tuple(w.make_inputs(size, rng))
        small = sum(np.asarray(a).nbytes for a in first if isinstance(a, np.ndarray)) < ROTATE_BELOW_BYTES
        k = ROTATIONS if (w.rotate if w.rotate is not None else small) else 1
        input_sets = [first] + [tuple(w.make_inputs(size, rng)) for _ in range(k - 1)]
    except Exception as e:
        row["error"] = f"making inputs failed: {_short(e)}"
        progress.advance()
        return row
    row["x"] = w.size_x(size, first)
    row["rotations"] = len(input_sets)

    torch_sys = next(s for s in systems if s.name == "torch")
    try:
        f, args = _build(w, torch_sys, first, size, bind(w.fn, torch_sys.lib) if w.fn else None)
        raw = f(*args)
        ref, ref_dtypes = to_numpy(raw), dtype_names(raw)
        torch_sys.sync()
    except Exception as e:
        row["error"] = f"the torch reference failed: {_short(e)}"
        progress.advance()
        return row
    try:
        ref64 = _float64_reference(w, torch_sys, first)
    except Exception:
        ref64 = None
    nbytes = w.bytes(size, first, ref) if w.bytes is not None else None
    flops = w.flops(size) if w.flops is not None else None
    row["bytes"], row["flops"] = nbytes, flops

    opts = dict(repeats=9, min_loop_s=0.02, warmup_s=0.02, budget_s=1.0) if quick else dict(
        repeats=11, min_loop_s=0.05, warmup_s=0.1)
    if device != "cpu":
        opts["max_calls"] = 100_000
    loops: dict[str, timing.Loop] = {}
    for system in systems:  # build and check every system first; only what passed is timed
        progress.step(f"{w.name} {label} {system.name}: check")
        if w.systems is not None and system.name not in w.systems:
            continue
        if system.broken:
            row["systems"][system.name] = {"status": "n/a", "detail": system.broken}
            continue
        try:
            system.fresh()
            compiled = system.compile(bind(w.fn, system.lib)) if w.fn is not None else None
            calls = []
            for arrays in input_sets:
                try:
                    built = _build(w, system, arrays, size, compiled)
                except NotImplementedError:
                    built = None  # the workload has no version for this system
                if built is None:
                    break
                calls.append(built)
            if not calls:
                continue  # this system has no version of the workload
            f, args = calls[0]
            raw = f(*args)
            out, out_dtypes = to_numpy(raw), dtype_names(raw)
            system.sync()
        except Exception as e:
            if "--debug" in sys.argv:
                traceback.print_exc()
            row["systems"][system.name] = {"status": "error", "detail": _short(e)}
            continue
        if system.name != "torch":
            why = None
            if system.kind != "numpy" and out_dtypes != ref_dtypes:
                why = f"dtype {out_dtypes}, expected {ref_dtypes}"
            why = why or checks.check(out, ref, ref64, rtol=w.rtol, atol=w.atol,
                               check_dtype=system.kind != "numpy", dtype_name=w.dtype)
            if why is not None:
                row["systems"][system.name] = {"status": "FAIL", "detail": why}
                continue
        loops[system.name] = timing.Loop(calls, system.sync, cuda=device != "cpu")
    progress.step(f"{w.name} {label}: timing {', '.join(loops)}")
    for name, t in timing.time_interleaved(loops, **opts).items():
        if isinstance(t, Exception):
            row["systems"][name] = {"status": "error", "detail": "while timing: " + _short(t)}
            continue
        rec = {"status": "ok", "timing": t.as_dict(), "median_s": t.median_s}
        if nbytes:
            rec["GBps"] = nbytes / t.median_s / 1e9
        if flops:
            rec["GFLOPs"] = flops / t.median_s / 1e9
        row["systems"][name] = rec
    progress.advance()

    timed = {n: r["median_s"] for n, r in row["systems"].items() if r.get("status") == "ok"}
    for ours in [s.name for s in systems if s.kind == "tracegrad"]:
        for base in BASELINES:
            if ours in timed and base in timed:
                row["ratios"][f"{ours}/{base}"] = timed[ours] / timed[base]
    row["kernels"] = _kernel_count(w, first)
    return row


def evaluate_targets(workloads: list[Workload], rows: list[dict]) -> list[dict]:
    out = []
    for w in workloads:
        for tg in w.targets:
            if not any(tg.system in r.get("systems", {}) for r in rows):
                continue  # that system is not in this run (--no-compile, or not built yet)
            label = w.size_label(tg.size)
            row = next((r for r in rows if r["workload"] == w.name and r["size"] == label), None)
            ratio = row["ratios"].get(f"{tg.system}/{tg.baseline}") if row else None
            out.append({"workload": w.name, "size": label, "system": tg.system, "baseline": tg.baseline,
                        "max_ratio": tg.max_ratio, "ratio": ratio,
                        "met": None if ratio is None else ratio <= tg.max_ratio})
    return out


def run(workloads: list[Workload], systems: list[System], *, device: str, quick: bool, seed: int = 0,
        show_progress: bool = True) -> list[dict]:
    steps = sum(len(w.sizes_for(quick)) for w in workloads)
    progress = Progress(steps, show_progress)
    rows = []
    for w in workloads:
        for size in w.sizes_for(quick):
            rows.append(run_one(w, size, systems, device=device, quick=quick, seed=seed, progress=progress))
    progress.close()
    return rows
