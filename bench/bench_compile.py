"""tracegrad.compile against eager tracegrad, NumPy and torch (CPU).

    python -m bench.bench_compile            # prints the table and the targets
    python -m bench.bench_compile --quick

Workloads:
  train_step   the seed tutorial's two-layer net, one whole training step
               (N=64, D_in=1000, H=100, D_out=10: forward, loss.backward(), the
               manual SGD update and grad.zero_()), compiled as one function
               (learning rate 1e-9 instead of 1e-6: see LR below).
               Target: compiled <= 0.7 x eager tracegrad.
  chain8_10M   an 8-op pointwise chain on 10M float32 elements.
               Target: compiled <= 0.6 x the same chain in plain NumPy.
Compilation itself:
  compile      trace + passes + partition + fusion + codegen of train_step
               (a fresh build each time, no cache). Target: < 200 ms.
  cache_hit    what a cached call adds to running the generated program:
               compiled call on a 2-element add minus the program alone.
               Target: < 20 us.
Timing uses bench.timing (warm-up, calibrated loops, medians of interleaved
repeats), so machine load hits every system alike; every system runs on one
thread (torch's pool and NumPy's BLAS); every system's result is
checked against torch before anything is timed. The two workloads are also
offered to the full suite (`python -m bench --only compile`) via workloads()."""
from __future__ import annotations

import argparse
import statistics
import sys
import time

import numpy as np

from bench.timing import Loop, time_interleaved
from bench.workload import Workload

N, D_IN, H, D_OUT = 64, 1000, 100, 10
# The tutorial's rate is 1e-6. A timing loop runs thousands of steps, and at that rate the weights
# converge until the gradients are denormal floats, where every float op is ~100x slower (NumPy does
# not flush denormals to zero; torch's MKL kernels do). A smaller rate keeps every step in the same,
# ordinary regime: the same work, timed fairly.
LR = 1e-9
CHAIN_N = 10_000_000


def train_step(lib, x, y, w1, w2):
    """The seed tutorial's loop body (autograd section), unchanged."""
    y_pred = x.mm(w1).clamp(min=0).mm(w2)
    loss = (y_pred - y).pow(2).sum()
    loss.backward()
    with lib.no_grad():
        w1 -= LR * w1.grad
        w2 -= LR * w2.grad
        w1.grad.zero_()
        w2.grad.zero_()
    return loss


def chain8(lib, x):
    return ((x * 2.0 + 1.0).exp() - 0.5).abs().sqrt() * 3.0 + x * 0.5 - 1.0


def chain8_numpy(a):
    return ((np.sqrt(np.abs(np.exp(a * 2.0 + 1.0) - 0.5)) * 3.0 + a * 0.5) - 1.0)


def _step_inputs(seed=0):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((N, D_IN)).astype(np.float32), rng.standard_normal((N, D_OUT)).astype(np.float32),
            rng.standard_normal((D_IN, H)).astype(np.float32), rng.standard_normal((H, D_OUT)).astype(np.float32))


def _step_state(lib, arrays):
    x, y, w1, w2 = arrays
    return (lib.tensor(x), lib.tensor(y), lib.tensor(w1, requires_grad=True), lib.tensor(w2, requires_grad=True))


def _check_step():
    """Compiled, eager and torch agree on a few steps before anything is timed."""
    import torch
    import tracegrad

    arrays = _step_inputs()
    sc, se, st = _step_state(tracegrad, arrays), _step_state(tracegrad, arrays), _step_state(torch, arrays)
    step_c = tracegrad.compile(lambda *a: train_step(tracegrad, *a))
    for _ in range(3):
        lc, le, lt = step_c(*sc).item(), train_step(tracegrad, *se).item(), train_step(torch, *st).item()
        assert abs(lc - lt) <= 1e-4 * abs(lt) and abs(le - lt) <= 1e-4 * abs(lt), (lc, le, lt)
    np.testing.assert_allclose(sc[2].detach().numpy(), st[2].detach().numpy(), rtol=1e-4, atol=1e-4)


def measure(quick: bool = False) -> dict:
    import torch
    import tracegrad
    from tracegrad.tracer.compile import build_entry

    # one thread for every system: torch's pool and NumPy's BLAS. (A BLAS pool of two threads on a busy
    # two-core machine stalls now and then for tens of milliseconds, waiting for a descheduled worker.)
    torch.set_num_threads(1)
    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(1)
    except ImportError:  # pragma: no cover - then BLAS keeps its own pool size
        pass
    repeats = 5 if quick else 11
    out = {}

    # ---- the training step ----
    _check_step()
    arrays = _step_inputs()
    s_c, s_e, s_t = _step_state(tracegrad, arrays), _step_state(tracegrad, arrays), _step_state(torch, arrays)
    step_c = tracegrad.compile(lambda *a: train_step(tracegrad, *a))
    step_c(*s_c)
    loops = {"tracegrad.compile": Loop([(step_c, s_c)]),
             "tracegrad": Loop([(lambda *a: train_step(tracegrad, *a), s_e)]),
             "torch": Loop([(lambda *a: train_step(torch, *a), s_t)])}
    out["train_step"] = _times(time_interleaved(loops, repeats=repeats, min_loop_s=0.05))

    # ---- the pointwise chain ----
    a = np.random.default_rng(1).random(CHAIN_N, dtype=np.float32)
    xg, xt = tracegrad.from_numpy(a), torch.from_numpy(a)
    chain_c = tracegrad.compile(lambda x: chain8(tracegrad, x))
    ref = chain8(torch, xt).numpy()
    np.testing.assert_allclose(chain_c(xg).numpy(), ref, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(chain8_numpy(a), ref, rtol=1e-5, atol=1e-5)
    loops = {"tracegrad.compile": Loop([(chain_c, (xg,))]), "numpy": Loop([(chain8_numpy, (a,))]),
             "tracegrad": Loop([(lambda x: chain8(tracegrad, x), (xg,))]),
             "torch": Loop([(lambda x: chain8(torch, x), (xt,))])}
    out["chain8_10M"] = _times(time_interleaved(loops, repeats=3 if quick else 7, min_loop_s=0.2,
                                                warmup_s=0.2))

    # ---- compile time: a fresh trace/partition/fuse/codegen of the training step ----
    s = _step_state(tracegrad, arrays)
    build_entry(lambda *a: train_step(tracegrad, *a), s, {})  # imports, first-use caches
    from tracegrad.kernels import numpy_backend

    samples = []
    for _ in range(3 if quick else 7):
        numpy_backend._VERIFIED.clear()  # every build checks its out= forms again, as a first build does
        t0 = time.perf_counter()
        build_entry(lambda *a: train_step(tracegrad, *a), s, {})
        samples.append(time.perf_counter() - t0)
    out["compile"] = {"build": statistics.median(samples)}

    # ---- what a cache hit adds to running the program ----
    xs = (tracegrad.ones(2), tracegrad.ones(2))
    add_c = tracegrad.compile(lambda x, y: x + y)
    add_c(*xs)
    entry = next(iter(add_c.cache.values()))[0]
    arrs = (xs[0]._data, xs[1]._data)
    loops = {"call": Loop([(add_c, xs)]), "program": Loop([(entry.fwd.fn, arrs)])}
    r = _times(time_interleaved(loops, repeats=repeats, min_loop_s=0.05))
    out["cache_hit"] = {"call": r["call"], "program": r["program"], "overhead": r["call"] - r["program"]}
    return out


def _times(res: dict) -> dict:
    for v in res.values():
        if isinstance(v, Exception):
            raise v
    return {k: v.median_s for k, v in res.items()}


TARGETS = [
    ("train_step", "tracegrad.compile / tracegrad", lambda r: r["train_step"]["tracegrad.compile"] /
     r["train_step"]["tracegrad"], 0.7),
    ("chain8_10M", "tracegrad.compile / numpy", lambda r: r["chain8_10M"]["tracegrad.compile"] /
     r["chain8_10M"]["numpy"], 0.6),
    ("compile", "trace+passes+codegen (ms)", lambda r: r["compile"]["build"] * 1e3, 200.0),
    ("cache_hit", "added per call (us)", lambda r: r["cache_hit"]["overhead"] * 1e6, 20.0),
]


def report(res: dict) -> str:
    lines = []
    for name in ("train_step", "chain8_10M"):
        row = "  ".join(f"{k} {v * 1e3:9.3f} ms" for k, v in res[name].items())
        lines.append(f"{name:11s} {row}")
    lines.append(f"{'compile':11s} build {res['compile']['build'] * 1e3:.1f} ms")
    c = res["cache_hit"]
    lines.append(f"{'cache_hit':11s} call {c['call'] * 1e6:.2f} us  program {c['program'] * 1e6:.2f} us  "
                 f"added {c['overhead'] * 1e6:.2f} us")
    lines.append("targets:")
    for name, what, value, limit in TARGETS:
        v = value(res)
        lines.append(f"  {name:11s} {what:32s} {v:8.3f}  (target <= {limit})  {'ok' if v <= limit else 'MISSED'}")
    return "\n".join(lines)


def workloads(device: str, quick: bool) -> list[Workload]:
    """The training step and the 10M chain for `python -m bench` (CPU)."""
    if device != "cpu":
        return []

    def prepare(system, arrays, size):
        if system.kind == "numpy":
            raise NotImplementedError("a training step has no NumPy baseline here")
        lib = system.lib
        state = _step_state(lib, arrays)
        fn = system.compile(lambda *a: train_step(lib, *a))

        def call():
            return fn(*state)
        return call, ()

    return [
        Workload(name="compile_train_step", group="compile", sizes=[(N, D_IN, H, D_OUT)],
                 make_inputs=lambda size, rng: _step_inputs(int(rng.integers(1 << 30))), prepare=prepare,
                 label=lambda s: "x".join(map(str, s)), x=lambda s: float(s[0] * s[1]),
                 rtol=1e-3, atol=1e-3,
                 note="seed two-layer net: forward, backward, SGD update, grad.zero_() in one call"),
        Workload(name="compile_chain8", group="compile", sizes=[CHAIN_N], quick_sizes=[CHAIN_N],
                 make_inputs=lambda n, rng: (rng.random(n, dtype=np.float32),),
                 fn=chain8, numpy_fn=chain8_numpy, note="8 pointwise ops on float32"),
    ]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args(argv)
    res = measure(args.quick)
    print(report(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
