"""Run one scenario with torch and with tracegrad and compare what comes out.

A scenario is `fn(m)` with `m` either library; `same(fn)` compares the results
(tensor values within float32 tolerance, dtypes, requires_grad, strings with
`tracegrad.` read as `torch.`), `raises_same(fn)` the raised error's type and
message. torch is only the reference here."""
from __future__ import annotations

import re

import numpy as np
import torch

import tracegrad

LIBS = (torch, tracegrad)


def _norm(text: str) -> str:
    """Printed text with tracegrad. as torch. and object addresses blanked."""
    text = text.replace("tracegrad.", "torch.").replace("tracegrad::", "torch::")
    text = re.sub(r" \(Triggered internally at [^)]*\)", "", text)  # torch's C++ source location
    return re.sub(r"0x[0-9a-fA-F]+", "0x?", text)


def _plain(x):
    """A comparable form of what a scenario returns: tensors become (values, dtype, requires_grad)."""
    if isinstance(x, (torch.Tensor, tracegrad.Tensor)):
        return ("tensor", np.asarray(x.detach().double().numpy()), str(x.dtype).split(".")[-1], x.requires_grad)
    if isinstance(x, (list, tuple)):
        return type(x).__name__, [_plain(v) for v in x]
    if isinstance(x, str):
        return _norm(x)
    return x


def _match(a, b) -> bool:
    """Structural equality; tensor values within float32 (or float64) tolerance."""
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return (isinstance(a, np.ndarray) and isinstance(b, np.ndarray) and a.shape == b.shape
                and np.allclose(a, b, rtol=2e-6, atol=1e-6, equal_nan=True))
    if isinstance(a, tuple) and isinstance(b, tuple) or isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_match(x, y) for x, y in zip(a, b))
    if isinstance(a, float) and isinstance(b, float):
        return a == b or abs(a - b) <= 1e-6 * max(1.0, abs(b)) or (a != a and b != b)
    return a == b


def both(fn):
    """Run fn(torch) and fn(tracegrad); return both results (or the raised error)."""
    out = []
    for m in LIBS:
        try:
            out.append(("ok", _plain(fn(m))))
        except Exception as e:  # compared below: same type, same message
            out.append(("raised", type(e).__name__, _norm(str(e))))
    return out


def same(fn):
    ref, ours = both(fn)
    assert _match(ours, ref), f"\ntracegrad: {ours}\ntorch:     {ref}"
    return ref


def raises_same(fn, phrase=None):
    """Both raise the same exception type with the same message (or share `phrase`)."""
    ref, ours = both(fn)
    assert ref[0] == "raised", f"torch did not raise: {ref}"
    assert ours[0] == "raised", f"tracegrad did not raise (torch: {ref})"
    assert ours[1] == ref[1]
    if phrase is None:
        assert ours[2] == ref[2]
    else:
        assert phrase in ours[2] and phrase in ref[2]
