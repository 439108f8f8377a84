"""tracegrad's benchmark suite: `python -m bench`.

    python -m bench                 # every CPU workload, full sizes
    python -m bench --quick         # fewer sizes and repeats (under 3 minutes on 2 cores)
    python -m bench --only chain4   # workloads whose name or group contains "chain4"
    python -m bench --device cuda   # the GPU workloads (needs a CUDA GPU and torch with CUDA)

Each run checks every system's output against torch eager on the same inputs
*before* timing it (a wrong result is reported as FAIL and never timed), then
times the systems that passed: tracegrad eager, `tracegrad.compile` (once it
exists), torch eager, `torch.compile` (when it works on the machine) and NumPy
(CPU only). Results go to `bench/results/<device>-<date>/`: `results.json`
(every number, with the machine and versions), `results.md` (the table) and PNG
plots of time against size per system (when matplotlib is installed).

How timing is done: see bench/timing.py. In short, on CPU: warm-up, then whole
loops of many calls, the loop repeated and the median per-call time kept, minus
the cost of the empty loop, with inputs rotated over several buffers for small
sizes; on CUDA: CUDA events around loops of calls, with device-to-device copy
bandwidth and the torch.matmul peak measured at start as the roofs.

Adding workloads from another module
------------------------------------
Any module `bench/bench_<name>.py` (e.g. bench_autograd.py, bench_training.py,
bench_compile.py) is picked up when present. It must define

    def workloads(device: str, quick: bool) -> list[bench.workload.Workload]

returning the workloads it has for `device` ("cpu" or "cuda"); `quick` is True
under --quick, so a module can shrink its sizes (or set each workload's
`quick_sizes`). A module that fails to import, or whose `workloads()` raises,
is reported and skipped; the rest of the suite still runs. See
bench/workload.py for the fields of a `Workload` (the two ways to describe the
computation: `fn(lib, *tensors)` written once against the torch API, or
`prepare(system, arrays, size) -> (callable, args)` for workloads with state).
A minimal module:

    import numpy as np
    from bench.workload import Workload

    def workloads(device, quick):
        return [Workload(
            name="tanh", group="pointwise", devices=("cpu",),
            sizes=[1_000, 1_000_000], quick_sizes=[1_000],
            make_inputs=lambda n, rng: (rng.standard_normal(n).astype("float32"),),
            fn=lambda lib, x: x.tanh(),
            numpy_fn=lambda x: np.tanh(x),
        )]
"""
from .workload import Target, Workload

__all__ = ["Target", "Workload"]
