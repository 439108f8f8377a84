"""Training-loop benchmark: tracegrad against torch on the tutorials' three models.

    python -m bench.bench_training [--repeats 5] [--threads N] [--quick]

Workloads (each built for both libraries from the same initial weights and data):
  two_layer_adam   the seed two-layer net (N=64, D_in=1000, H=100, D_out=10, MSE sum),
                   500 Adam steps                                    target: <= 1.0 x torch
  fizzbuzz         FizzBuzz (10 -> 100 -> 4, cross entropy, SGD lr 0.05, batch 128 over
                   923 numbers), 200 epochs, each ending with a full-set loss
                                                                     target: <= 1.0 x torch
  digits_cnn       one epoch of examples/digits_cnn.py's CNN (Adam, batch 32, shuffled
                   DataLoader) on scikit-learn's digits (synthetic ones without it)
                                                                     target: <= 1.5 x torch
A repeat runs every workload once per library, alternating the libraries, so a
change in machine load hits both; the table shows median wall times, their ratio
and whether it meets the target. The final losses of both libraries are printed
too: they agree closely, which shows both ran the same computation (the CNN's
differ: each library draws its own dropout masks). This is not a test: nothing
here is asserted.

--malloc-tune runs the benchmark in a process whose glibc malloc keeps freed
memory instead of returning it to the system (MALLOC_MMAP_THRESHOLD_ /
MALLOC_TRIM_THRESHOLD_). Both libraries run in that process; without it, every
array above 128 KiB is a fresh mmap whose pages fault in on first touch, which
costs NumPy (a new array per op result) far more than torch.
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time

THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


MALLOC_VARS = {"MALLOC_MMAP_THRESHOLD_": str(1 << 25), "MALLOC_TRIM_THRESHOLD_": str(1 << 28)}


def _reexec(threads, malloc: bool) -> None:
    """Thread pools and malloc settings are fixed when a process starts: run the benchmark in a fresh one."""
    if os.environ.get("TRACEGRAD_BENCH_CHILD"):
        return
    env = dict(os.environ, TRACEGRAD_BENCH_CHILD="1")
    if threads:
        env.update({v: str(threads) for v in THREAD_VARS})
    if malloc:
        env.update(MALLOC_VARS)
    sys.exit(subprocess.call([sys.executable, "-m", "bench.bench_training", *sys.argv[1:]], env=env))


# ---- workloads ---------------------------------------------------------------------------------------------
def _copy_state(ours, theirs):
    import tracegrad

    ours.load_state_dict({k: tracegrad.tensor(v.detach().numpy().copy()) for k, v in theirs.state_dict().items()})


def _pair(make):
    """(tracegrad model, torch model) with torch's initial weights in both."""
    import torch
    import tracegrad

    theirs = make(torch)
    ours = make(tracegrad)
    _copy_state(ours, theirs)
    return ours, theirs


def two_layer_adam(steps: int):
    import numpy as np

    rng = np.random.default_rng(0)
    x_np, y_np = rng.standard_normal((64, 1000)).astype(np.float32), rng.standard_normal((64, 10)).astype(np.float32)

    def make(L):
        return L.nn.Sequential(L.nn.Linear(1000, 100), L.nn.ReLU(), L.nn.Linear(100, 10))

    def run(L, model, device="cpu"):
        x, y = L.tensor(x_np, device=device), L.tensor(y_np, device=device)
        loss_fn = L.nn.MSELoss(reduction="sum")
        opt = L.optim.Adam(model.parameters(), lr=1e-4)
        t0 = time.perf_counter()
        for _ in range(steps):
            loss = loss_fn(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
        return time.perf_counter() - t0, loss.item()

    return make, run


def fizzbuzz(epochs: int):
    import numpy as np

    def encode(i):
        return 3 if i % 15 == 0 else 2 if i % 5 == 0 else 1 if i % 3 == 0 else 0

    x_np = np.array([[i >> d & 1 for d in range(10)] for i in range(101, 1024)], dtype=np.float32)
    y_np = np.array([encode(i) for i in range(101, 1024)], dtype=np.int64)

    def make(L):
        return L.nn.Sequential(L.nn.Linear(10, 100), L.nn.ReLU(), L.nn.Linear(100, 4))

    def run(L, model, device="cpu"):
        trX, trY = L.tensor(x_np, device=device), L.tensor(y_np, device=device)
        loss_fn = L.nn.CrossEntropyLoss()
        opt = L.optim.SGD(model.parameters(), lr=0.05)
        t0 = time.perf_counter()
        for _ in range(epochs):
            for start in range(0, len(trX), 128):
                loss = loss_fn(model(trX[start:start + 128]), trY[start:start + 128])
                opt.zero_grad()
                loss.backward()
                opt.step()
            loss = loss_fn(model(trX), trY).item()
        return time.perf_counter() - t0, loss

    return make, run


def digits_cnn(epochs: int):
    import numpy as np

    sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "examples"))
    try:
        from sklearn.datasets import load_digits

        d = load_digits()
        X, y = d.data, d.target
    except ImportError:
        from digits_cnn import synthetic_digits

        X, y = synthetic_digits()
    order = np.random.default_rng(0).permutation(len(X))
    cut = int(0.8 * len(X))
    x_np = (X[order[:cut]].reshape(-1, 1, 8, 8) / 16.0).astype(np.float32)
    y_np = y[order[:cut]].astype(np.int64)

    def make(L):
        nn = L.nn
        return nn.Sequential(
            nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(), nn.Linear(64 * 2 * 2, 128), nn.ReLU(), nn.Dropout(0.2), nn.Linear(128, 10))

    def run(L, model, device="cpu"):
        from importlib import import_module

        data = import_module(L.__name__ + ".utils.data")
        loader = data.DataLoader(data.TensorDataset(L.tensor(x_np, device=device), L.tensor(y_np, device=device)),
                                 batch_size=32, shuffle=True,
                                 generator=L.Generator().manual_seed(0))
        loss_fn = L.nn.CrossEntropyLoss()
        opt = L.optim.Adam(model.parameters(), lr=3e-3)
        t0 = time.perf_counter()
        for _ in range(epochs):
            for xb, yb in loader:
                loss = loss_fn(model(xb), yb)
                opt.zero_grad()
                loss.backward()
                opt.step()
        return time.perf_counter() - t0, loss.item()

    return make, run


WORKLOADS = {
    "two_layer_adam": (two_layer_adam, 500, 1.0, "500 Adam steps"),
    "fizzbuzz": (fizzbuzz, 200, 1.0, "200 epochs"),
    "digits_cnn": (digits_cnn, 1, 1.5, "1 epoch"),
}
# on a GPU: fewer FizzBuzz epochs (each call is a whole run, and a GPU session is short); no targets
CUDA_AMOUNTS = {"two_layer_adam": (500, "500 Adam steps"), "fizzbuzz": (20, "20 epochs"),
                "digits_cnn": (1, "1 epoch")}


def workloads(device: str, quick: bool) -> list:
    """The three training runs for `python -m bench`: each timed call is the whole run (500 steps,
    200 epochs (20 on a GPU), one epoch) from torch's initial weights; its output, the final loss,
    is checked against torch's before anything is timed."""
    import numpy as np

    from .workload import Target, Workload

    def prepare_for(name, amount):
        build = WORKLOADS[name][0]

        def prepare(system, arrays, size):
            if system.kind == "numpy":
                raise NotImplementedError("training runs have no NumPy baseline")
            import torch

            make, run = build(amount)
            torch.manual_seed(0)  # the same initial weights for both libraries
            theirs = make(torch)
            model = theirs
            if system.kind == "tracegrad":
                model = make(system.lib)
                _copy_state(model, theirs)
            model = model.to(system.device)
            return (lambda: run(system.lib, model, system.device)[1]), ()
        return prepare

    out = []
    for name, (_, amount, target, label) in WORKLOADS.items():
        if device != "cpu":
            amount, label = CUDA_AMOUNTS[name]
        out.append(Workload(
            name=f"train_{name}", group="training", sizes=[label], quick_sizes=[label], devices=(device,),
            make_inputs=lambda size, rng: (np.zeros(1, np.float32),), prepare=prepare_for(name, amount),
            rotate=False,  # each call is a whole run on its own model: nothing to rotate
            systems=("tracegrad", "torch"), targets=(Target(label, "torch", target),) if device == "cpu" else (),
            # the CNN's dropout masks come from each library's own generator: its losses agree only loosely
            rtol=0.5 if name == "digits_cnn" else 1e-3, atol=1e-4,
            note=f"{label} of the tutorial's {name.replace('_', ' ')} (whole run per call; final loss checked"
                 + (", loosely: dropout masks differ)" if name == "digits_cnn" else ")")))
    return out


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(prog="python -m bench.bench_training", description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, metavar="N", help="limit torch, OpenMP and BLAS to N threads")
    ap.add_argument("--only", action="append", choices=sorted(WORKLOADS))
    ap.add_argument("--malloc-tune", action="store_true", help="keep freed memory in the process (see above)")
    ap.add_argument("--quick", action="store_true", help="a tenth of the work, 2 repeats (a smoke run)")
    args = ap.parse_args(argv)
    if args.threads or args.malloc_tune:
        _reexec(args.threads, args.malloc_tune)

    import numpy as np
    import torch

    import tracegrad

    if args.threads:
        torch.set_num_threads(args.threads)
    repeats = 2 if args.quick else args.repeats
    tuned = all(os.environ.get(k) == v for k, v in MALLOC_VARS.items())
    print(f"tracegrad {tracegrad.__version__}, torch {torch.__version__} ({torch.get_num_threads()} threads), "
          f"numpy {np.__version__}; {repeats} repeats, libraries alternating"
          f"{'; malloc keeps freed memory' if tuned else ''}")
    rows = []
    for name in args.only or list(WORKLOADS):
        factory, size, target, what = WORKLOADS[name]
        if args.quick:
            size = max(1, size // 10)
            what = f"{what} / 10"
        make, run = factory(size)
        times = {"tracegrad": [], "torch": []}
        losses = {}
        for r in range(repeats):
            ours, theirs = _pair(make)
            order = [(tracegrad, ours), (torch, theirs)]
            if r % 2:
                order.reverse()
            for lib, model in order:
                torch.manual_seed(0)
                tracegrad.manual_seed(0)
                dt, loss = run(lib, model)
                times[lib.__name__].append(dt)
                losses[lib.__name__] = loss
        t_o, t_t = statistics.median(times["tracegrad"]), statistics.median(times["torch"])
        ratio = t_o / t_t
        rows.append((name, what, t_o, t_t, ratio, target, losses))
        print(f"  {name:<15} {what:<16} tracegrad {t_o:7.3f}s  torch {t_t:7.3f}s  ratio {ratio:5.2f}  "
              f"(target <= {target:.1f}: {'met' if ratio <= target else 'MISSED'})  final loss "
              f"{losses['tracegrad']:.6g} vs {losses['torch']:.6g}")
    return rows


if __name__ == "__main__":
    main()
