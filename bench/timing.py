"""Timing done properly.

CPU:
  1. warm-up: call until at least `warmup_s` has passed (first calls pay for
     imports, caches, compilation);
  2. calibrate: find the number of calls `n` for which one loop takes at least
     `min_loop_s` (a single 3x3 add is far below the clock's resolution, so it
     is only ever timed inside a loop of many calls);
  3. measure: run the whole loop `repeats` times and keep the median per-call
     time (the median ignores the loops a background process interrupted),
     minus the per-call cost of the same loop calling a no-op function;
  4. inputs rotate: the loop walks over several input buffers, so a small
     workload is not timed on one buffer that stays hot in L1 and a system
     cannot reuse a cached result for an input it has just seen;
  5. systems interleave: repeat r of every system runs before repeat r+1 of
     any, so when the machine's load changes during a run (other processes on
     a shared machine), it changes for all the systems being compared, and
     their ratios stay fair.
  6. under --quick, each system gets about a second of measuring: a slow
     loop (a 16-op chain on 10M elements) stops after 3 repeats.
  The garbage collector is off while a loop runs (as in `timeit`).

CUDA: the same loops, bracketed by CUDA events (torch's); the system's own
synchronize runs before the end event, so work queued on a stream other than
torch's (tracegrad's) is inside the measurement too.
"""
from __future__ import annotations

import gc
import statistics
import time
from dataclasses import dataclass
from typing import Any, Callable, Sequence

Call = tuple[Callable[..., Any], tuple]


@dataclass
class Timing:
    median_s: float  # per call, empty-loop cost removed
    min_s: float
    q1_s: float
    q3_s: float
    calls_per_loop: int
    loops: int
    loop_overhead_s: float

    def as_dict(self) -> dict:
        return dict(self.__dict__)


def _noop(*args):
    return None


def _cycle(calls: Sequence[Call], n: int) -> list[Call]:
    k = len(calls)
    return [calls[i % k] for i in range(n)]


def _quartiles(xs: list[float]) -> tuple[float, float]:
    if len(xs) < 2:
        return xs[0], xs[0]
    q = statistics.quantiles(xs, n=4)
    return q[0], q[2]


class Loop:
    """The timed loop of one system: warm-up, calibration, one measurement."""

    def __init__(self, calls: Sequence[Call], sync: Callable[[], None] | None = None, cuda: bool = False):
        self.calls = list(calls)
        self.sync = sync or (lambda: None)
        self.cuda = cuda
        self.seq: list[Call] = []
        self.overhead = 0.0
        self.samples: list[float] = []

    def _run(self, seq: Sequence[Call]) -> float:
        if self.cuda:
            import torch

            start = torch.cuda.Event(enable_timing=True)
            end = torch.cuda.Event(enable_timing=True)
            self.sync()
            torch.cuda.synchronize()
            start.record()
            for f, a in seq:
                f(*a)
            self.sync()
            end.record()
            end.synchronize()
            return start.elapsed_time(end) / 1e3
        t0 = time.perf_counter()
        for f, a in seq:
            f(*a)
        self.sync()
        return time.perf_counter() - t0

    def warm(self, warmup_s: float) -> None:
        t_end = time.perf_counter() + warmup_s
        i = 0
        while True:
            f, a = self.calls[i % len(self.calls)]
            f(*a)
            i += 1
            if i >= len(self.calls) and time.perf_counter() >= t_end:
                break
        self.sync()

    def calibrate(self, min_loop_s: float, max_calls: int) -> None:
        n = 1
        while True:
            dt = self._run(_cycle(self.calls, n))
            if dt >= min_loop_s or n >= max_calls:
                break
            # aim a little past the target so the next try is usually the last
            n = min(max_calls, max(n * 2, int(n * 1.2 * min_loop_s / max(dt, 1e-9))))
        self.seq = _cycle(self.calls, n)
        if not self.cuda:
            empty = [(_noop, a) for _, a in self.seq]
            self.overhead = min(self._run(empty) for _ in range(3)) / n

    def once(self) -> None:
        self.samples.append(self._run(self.seq) / len(self.seq) - self.overhead)

    def result(self) -> Timing:
        s = self.samples
        q1, q3 = _quartiles(s)
        return Timing(statistics.median(s), min(s), q1, q3, len(self.seq), len(s), self.overhead)


def time_interleaved(loops: dict[str, Loop], *, repeats: int = 9, min_loop_s: float = 0.02,
                     warmup_s: float = 0.05, max_calls: int = 1_000_000,
                     budget_s: float | None = None, min_repeats: int = 3) -> dict[str, Timing | Exception]:
    """Time several systems' loops, their repeats interleaved (see module doc).
    A loop that raises gets its exception as its result; the others go on.
    With `budget_s`, slow loops get fewer repeats (at least `min_repeats`):
    about `budget_s` seconds of measuring per system."""
    out: dict[str, Timing | Exception] = {}
    live = dict(loops)
    gc_was = gc.isenabled()
    gc.disable()
    try:
        for name, loop in list(live.items()):
            try:
                loop.warm(warmup_s)
                loop.calibrate(min_loop_s, max_calls)
            except Exception as e:
                out[name] = e
                del live[name]
        for r in range(repeats):
            for name, loop in list(live.items()):
                if budget_s is not None and r >= min_repeats and sum(loop.samples) * len(loop.seq) > budget_s:
                    continue
                try:
                    loop.once()
                except Exception as e:
                    out[name] = e
                    del live[name]
    finally:
        if gc_was:
            gc.enable()
    for name, loop in live.items():
        out[name] = loop.result()
    return out


def time_calls(calls: Sequence[Call], *, sync: Callable[[], None] | None = None, cuda: bool = False,
               **opts) -> Timing:
    """One system alone (raises what the calls raise)."""
    res = time_interleaved({"one": Loop(calls, sync, cuda)}, **opts)["one"]
    if isinstance(res, Exception):
        raise res
    return res
