"""The systems a workload runs on: tracegrad, torch (eager and compiled), NumPy.

A `System` hides what differs between them: how a NumPy array becomes an input
(`tensor`), how an output becomes a NumPy array again (`to_numpy`, for the
checks), how to wait for the device (`sync`) and how a function is compiled
(`compile`: identity for eager systems)."""
from __future__ import annotations

import functools
from typing import Any, Callable

import numpy as np


class System:
    """One column of the results table."""

    def __init__(self, name: str, kind: str, lib, device: str = "cpu", compiler: Callable | None = None):
        self.name = name
        self.kind = kind  # "tracegrad", "torch" or "numpy"
        self.lib = lib
        self.device = device
        self._compiler = compiler
        self.broken: str | None = None  # set when compiling fails once: the system is dropped

    @property
    def compiled(self) -> bool:
        return self._compiler is not None

    def __repr__(self) -> str:
        return f"<System {self.name} on {self.device}>"

    def tensor(self, arr: np.ndarray, dtype: str | None = None):
        """A NumPy array as this system's input (copied: systems never share buffers)."""
        if self.kind == "numpy":
            out = np.array(arr, copy=True)
            return out.astype(dtype) if dtype is not None else out
        if not isinstance(arr, np.ndarray):
            return arr  # Python scalars pass through
        t = self.lib.tensor(np.ascontiguousarray(arr), device=self.device)
        if dtype is not None:
            t = t.to(getattr(self.lib, dtype))
        return t

    def compile(self, fn: Callable) -> Callable:
        return self._compiler(fn) if self._compiler is not None else fn

    def sync(self) -> None:
        if self.device != "cpu" and self.kind != "numpy":
            self.lib.cuda.synchronize()

    def fresh(self) -> None:
        """Forget compiled code before a new (workload, size): every compile starts
        from scratch, so no cache limit turns a later one back into eager code."""
        if self.kind == "torch" and self.compiled:
            import torch._dynamo

            torch._dynamo.reset()


def to_numpy(x: Any):
    """An output (tensor, scalar, or a tuple of them) as NumPy, for comparing."""
    if isinstance(x, (tuple, list)):
        return tuple(to_numpy(v) for v in x)
    if isinstance(x, np.ndarray):
        return x
    if hasattr(x, "detach") and hasattr(x, "numpy"):
        x = x.detach()
        if str(x.device) != "cpu":
            x = x.cpu()
        if str(x.dtype).endswith("bfloat16"):
            x = x.float()
        return np.asarray(x.numpy())
    return np.asarray(x)


def dtype_names(x: Any):
    """The dtype of each output by name (`float32`, `bfloat16`), before any conversion."""
    if isinstance(x, (tuple, list)):
        return tuple(dtype_names(v) for v in x)
    dt = getattr(x, "dtype", None)
    if dt is None:
        return type(x).__name__
    return getattr(dt, "name", None) or str(dt).rsplit(".", 1)[-1]


def _torch_compile(fn: Callable) -> Callable:
    import torch

    return torch.compile(fn, dynamic=False)


def make_systems(device: str, want_compile: bool = True) -> list[System]:
    """The systems available on this machine for `device`, reference (torch eager) first."""
    import torch

    import tracegrad

    systems = [System("torch", "torch", torch, device)]
    systems.append(System("tracegrad", "tracegrad", tracegrad, device))
    if want_compile and callable(getattr(tracegrad, "compile", None)):
        systems.append(System("tracegrad.compile", "tracegrad", tracegrad, device, tracegrad.compile))
    if want_compile:
        systems.append(System("torch.compile", "torch", torch, device, _torch_compile))
    if device == "cpu":
        systems.append(System("numpy", "numpy", np, device))
    return systems


def bind(fn: Callable, lib) -> Callable:
    """`fn(lib, *tensors)` with `lib` fixed, as a plain function of the tensors
    (a named function rather than a partial, so compilers see ordinary code)."""

    @functools.wraps(fn)
    def run(*args):
        return fn(lib, *args)

    return run
