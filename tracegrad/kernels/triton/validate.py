"""TRACEGRAD_VALIDATE=1: every Triton kernel run is checked against the NumPy backend.

When the variable is set (to anything but "" or "0"), the Triton program runs
each fusion group twice: once as its generated Triton kernel (under the
interpreter on CPU tensors) and once node by node with the op table's NumPy
implementations, on the very same input arrays. The first output that differs
raises `KernelMismatchError`, which names the kernel, the output, where it
differs, and the kernel's inputs (names, shapes, dtypes, and the arrays
themselves on `.inputs`), so a wrong lowering is found at the kernel that
has it, not three ops later in a loss curve.

Tolerances: exact for integers and bool; for floats, close in the sense of
`torch.testing.assert_close`'s defaults, widened a little because a kernel is
allowed to fuse multiply-adds and to sum in another order than NumPy does.
NaN must appear where NumPy has NaN.
"""
from __future__ import annotations

import os
from typing import Mapping

import numpy as np

from ... import dtypes as D

# (rtol, atol) per float dtype: torch.testing's defaults, relaxed for FMA and summation order
TOLERANCES = {"float16": (1e-3, 1e-3), "bfloat16": (1.6e-2, 1e-2), "float32": (1e-4, 1e-5),
              "float64": (1e-7, 1e-7)}


def enabled() -> bool:
    """Whether TRACEGRAD_VALIDATE asks for validation (read on every program run)."""
    return os.environ.get("TRACEGRAD_VALIDATE", "") not in ("", "0")


class KernelMismatchError(AssertionError):
    """A Triton kernel's output differs from the NumPy backend's on the same inputs.

    Attributes: kernel (its name), output (the value name), index (the first
    differing element), got / want (the two arrays), inputs (name -> array)."""

    def __init__(self, kernel: str, output: str, index: tuple, got: np.ndarray, want: np.ndarray,
                 inputs: Mapping[str, np.ndarray], detail: str):
        self.kernel = kernel
        self.output = output
        self.index = index
        self.got = got
        self.want = want
        self.inputs = dict(inputs)
        ins = ", ".join(f"{n}: {a.dtype}{list(a.shape)}" for n, a in self.inputs.items()) or "none"
        super().__init__(
            f"TRACEGRAD_VALIDATE: Triton kernel {kernel} disagrees with the NumPy backend on output {output} "
            f"({detail}); kernel inputs: {ins}")


def _as_float(a: np.ndarray, dt: D.DType) -> np.ndarray:
    if dt is D.bfloat16:
        from ...dispatch import bf16_to_f32

        return bf16_to_f32(np.asarray(a, np.uint16)).astype(np.float64)
    return np.asarray(a).astype(np.float64)


def check(kernel: str, output: str, dt: D.DType, got: np.ndarray, want: np.ndarray,
          inputs: Mapping[str, np.ndarray]) -> None:
    """Raise KernelMismatchError unless `got` (the Triton kernel's) matches `want` (NumPy's)."""
    got = np.asarray(got)
    want = np.asarray(want)
    if got.shape != want.shape:
        raise KernelMismatchError(kernel, output, (), got, want, inputs,
                                  f"shape {got.shape} where NumPy has {want.shape}")
    if got.size == 0:
        return
    tol = TOLERANCES.get(dt.name)
    if tol is None:  # integers and bool: bit for bit
        bad = np.asarray(got != want)
    else:
        g, w = _as_float(got, dt), _as_float(want, dt)
        rtol, atol = tol
        with np.errstate(invalid="ignore"):
            close = np.isclose(g, w, rtol=rtol, atol=atol, equal_nan=True)
        bad = ~close
    if not bad.any():
        return
    idx = tuple(int(i) for i in np.argwhere(bad)[0])
    g_at, w_at = got[idx], want[idx]
    if dt is D.bfloat16:
        g_at, w_at = _as_float(got, dt)[idx], _as_float(want, dt)[idx]
    raise KernelMismatchError(kernel, output, idx, got, want, inputs,
                              f"{int(bad.sum())} of {bad.size} elements differ; first at index {list(idx)}: "
                              f"Triton {g_at!r}, NumPy {w_at!r}")
