"""Eager autograd overhead: tracegrad's backward against torch's, on graphs too small for the math to matter.

    python -m bench.bench_autograd            # prints the table below
    python -m bench.bench_autograd --quick

Two workloads, each timed as forward + backward (what a training step pays), and the
tiny graph's backward pass alone (`y.backward(retain_graph=True)` on one graph):
  tiny      `(x * 2).sum().backward()` on a 3x3 leaf: two nodes and an
            AccumulateGrad; pure dispatch and engine overhead. Target: at most
            torch's time (torch is ~55 us on the reference machine).
  chain50   50 chained pointwise ops (mul/add/tanh/sigmoid...) on a 3x3 leaf,
            then `.sum().backward()`: the per-node cost of the engine and the
            vjp rules.
Each is timed with bench.timing (warm-up, calibrated loops, median of repeats,
torch and tracegrad interleaved so machine load hits both), and reported as a
ratio to torch measured in the same run. The same workloads are offered to the
full suite (`python -m bench --only autograd`) through `workloads()`."""
from __future__ import annotations

import argparse
import sys

import numpy as np

from bench.timing import Loop, time_interleaved
from bench.workload import Target, Workload


def _tiny(lib, x):
    (x * 2).sum().backward()
    return x.grad


_CHAIN_OPS = ("mul", "add", "tanh", "mul", "sigmoid", "sub", "exp", "mul", "neg", "add")


def _chain(lib, x, n=50):
    y = x
    for i in range(n):
        op = _CHAIN_OPS[i % len(_CHAIN_OPS)]
        if op == "mul":
            y = y * 0.9
        elif op == "add":
            y = y + 0.1
        elif op == "sub":
            y = y - 0.05
        elif op == "tanh":
            y = y.tanh()
        elif op == "sigmoid":
            y = y.sigmoid()
        elif op == "exp":
            y = (y * 0.1).exp()
        else:
            y = -y
    y.sum().backward()
    return x.grad


CASES = {"tiny": _tiny, "chain50": _chain}


def _backward_only(lib, x):
    """The backward pass alone: one graph, backpropagated again and again (retain_graph)."""
    y = (x * 2).sum()

    def call():
        y.backward(retain_graph=True)
    return call


def _leaf(lib, arr):
    return lib.tensor(arr, requires_grad=True)


def _step(fn, lib, x):
    """One timed call: clear the grad (as an optimizer's zero_grad would), forward, backward."""
    def call():
        x.grad = None
        fn(lib, x)
    return call


def measure(quick: bool = False) -> dict:
    """{case: {"torch": seconds, "tracegrad": seconds, "ratio": tracegrad / torch}}."""
    import torch
    import tracegrad

    torch.set_num_threads(1)
    arr = np.random.default_rng(0).standard_normal((3, 3)).astype(np.float32)
    out = {}
    for name, fn in CASES.items():
        # the same gradient first, then the timing
        xt, xg = _leaf(torch, arr), _leaf(tracegrad, arr)
        gt, gg = fn(torch, xt), fn(tracegrad, xg)
        np.testing.assert_allclose(gg.numpy(), gt.numpy(), rtol=1e-5, atol=1e-6)
        loops = {"torch": Loop([(_step(fn, torch, xt), ())]),
                 "tracegrad": Loop([(_step(fn, tracegrad, xg), ())])}
        res = time_interleaved(loops, repeats=5 if quick else 15, min_loop_s=0.02 if quick else 0.05)
        for k, v in res.items():
            if isinstance(v, Exception):
                raise v
        t, g = res["torch"].median_s, res["tracegrad"].median_s
        out[name] = {"torch": t, "tracegrad": g, "ratio": g / t}
    xt, xg = _leaf(torch, arr), _leaf(tracegrad, arr)
    loops = {"torch": Loop([(_backward_only(torch, xt), ())]), "tracegrad": Loop([(_backward_only(tracegrad, xg), ())])}
    res = time_interleaved(loops, repeats=5 if quick else 15, min_loop_s=0.02 if quick else 0.05)
    t, g = res["torch"].median_s, res["tracegrad"].median_s
    out["tiny_backward_only"] = {"torch": t, "tracegrad": g, "ratio": g / t}
    return out


def workloads(device: str, quick: bool) -> list[Workload]:
    """The two cases for `python -m bench` (CPU only)."""
    if device != "cpu":
        return []

    def prepare_for(fn):
        def prepare(system, arrays, size):
            if system.kind == "numpy":
                raise NotImplementedError("autograd has no NumPy baseline")
            x = system.lib.tensor(arrays[0], requires_grad=True)

            def call():
                x.grad = None
                return fn(system.lib, x)
            return call, ()
        return prepare

    make = lambda size, rng: (rng.standard_normal((3, 3)).astype(np.float32),)  # noqa: E731
    return [
        Workload(name="autograd_tiny", group="autograd", sizes=[9], make_inputs=make, prepare=prepare_for(_tiny),
                 systems=("tracegrad", "torch"), targets=(Target(9, "torch", 1.0),),
                 note="(x * 2).sum().backward() on a 3x3 leaf"),
        Workload(name="autograd_chain50", group="autograd", sizes=[9], make_inputs=make,
                 prepare=prepare_for(_chain), systems=("tracegrad", "torch"),
                 note="50 pointwise ops, then .sum().backward()"),
    ]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args(argv)
    res = measure(args.quick)
    print(f"{'case':20s} {'torch':>10s} {'tracegrad':>10s} {'ratio':>7s}")
    for name, r in res.items():
        print(f"{name:20s} {r['torch'] * 1e6:8.1f}us {r['tracegrad'] * 1e6:8.1f}us {r['ratio']:7.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
