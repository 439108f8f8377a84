"""What one benchmark is: a `Workload`, run at several sizes on several systems.

A workload says how to make its inputs (NumPy arrays, from a seeded generator)
and how each system computes on them. The runner (bench/suite.py) does the
rest: it converts the arrays into each system's tensors, checks every system's
output against torch eager before anything is timed, times what passed, and
reports. A workload never times anything itself.

Two ways to say how a system computes:

* `fn(lib, *tensors)`: one function written against the torch API, called with
  `lib` = `tracegrad` or `torch` (and wrapped by `tracegrad.compile` /
  `torch.compile` for the compiled systems), plus `numpy_fn(*arrays)` for the
  NumPy baseline (None: no NumPy column). This covers most op benchmarks.
* `prepare(system, arrays, size) -> (callable, args)`: full control, for
  workloads that need state built per system (a model and its optimizer, inputs
  that require grad). The runner times `callable(*args)`; what it returns is the
  output that gets checked (a tensor, a float, or a tuple of them). `system`
  gives `system.lib` (tracegrad, torch or numpy), `system.name`,
  `system.device`, `system.tensor(array)`, `system.compile(fn)` (identity for
  eager systems), and `system.kind` ("tracegrad", "torch" or "numpy").
  Returning None (or raising NotImplementedError) says "no version for this
  system": that column stays empty.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np


@dataclass(frozen=True)
class Target:
    """A speed goal for one size: `system`'s time <= `max_ratio` x `baseline`'s."""

    size: Any
    baseline: str  # "numpy", "torch" or "torch.compile"
    max_ratio: float
    system: str = "tracegrad"


@dataclass
class Workload:
    """One benchmark. Only `name`, `group`, `sizes`, `make_inputs` and one of
    `fn` / `prepare` are required."""

    name: str
    group: str
    sizes: Sequence[Any]
    make_inputs: Callable[[Any, np.random.Generator], tuple]
    fn: Callable[..., Any] | None = None
    numpy_fn: Callable[..., Any] | None = None
    prepare: Callable[..., tuple] | None = None
    quick_sizes: Sequence[Any] | None = None  # sizes for --quick (default: the first two)
    devices: tuple[str, ...] = ("cpu",)
    systems: tuple[str, ...] | None = None  # restrict to these system names (None: all)
    dtype: str | None = None  # cast inputs to this dtype on the system ("bfloat16", ...)
    label: Callable[[Any], str] | None = None  # how a size prints (default: str)
    x: Callable[[Any], float] | None = None  # a size as a number, for plots (default: input numel)
    bytes: Callable[[Any, tuple, Any], float] | None = None  # (size, arrays, out) -> bytes moved
    flops: Callable[[Any], float] | None = None  # size -> floating point operations
    rtol: float | None = None  # None: torch.testing.assert_close's default for the dtype
    atol: float | None = None
    rotate: bool | None = None  # rotate input buffers (None: when inputs are small)
    targets: tuple[Target, ...] = ()
    note: str = ""
    extra: dict = field(default_factory=dict)

    def __post_init__(self):
        if (self.fn is None) == (self.prepare is None):
            raise ValueError(f"workload {self.name}: give exactly one of fn= and prepare=")

    def sizes_for(self, quick: bool) -> list:
        if not quick:
            return list(self.sizes)
        return list(self.quick_sizes) if self.quick_sizes is not None else list(self.sizes)[:2]

    def size_label(self, size) -> str:
        return self.label(size) if self.label is not None else str(size)

    def size_x(self, size, arrays) -> float:
        if self.x is not None:
            return float(self.x(size))
        return float(sum(np.asarray(a).size for a in arrays if isinstance(a, np.ndarray)))
