"""Is an output right? Compared with torch eager on the same inputs.

A float result passes when it is close to torch's (torch.testing.assert_close's
default tolerances for its dtype), or else when it is no farther from a float64
reference than torch's own result is (times 2, plus a hair): two correct
float32 programs may sum in different orders, and neither is "the" answer."""
from __future__ import annotations

import numpy as np

# torch.testing.assert_close defaults: dtype -> (rtol, atol)
TOLERANCES = {
    "float16": (1e-3, 1e-5),
    "bfloat16": (1.6e-2, 1e-5),
    "float32": (1.3e-6, 1e-5),
    "float64": (1e-7, 1e-7),
}


def _flat(x) -> list:
    if isinstance(x, tuple):
        return [y for v in x for y in _flat(v)]
    return [np.asarray(x)]


def check(out, ref, ref64=None, *, rtol: float | None = None, atol: float | None = None,
          check_dtype: bool = True, dtype_name: str | None = None) -> str | None:
    """None when `out` matches `ref`; otherwise a one-line reason."""
    outs, refs = _flat(out), _flat(ref)
    refs64 = _flat(ref64) if ref64 is not None else [None] * len(refs)
    if len(outs) != len(refs):
        return f"{len(outs)} outputs, expected {len(refs)}"
    for i, (o, r, r64) in enumerate(zip(outs, refs, refs64)):
        where = f"output {i}: " if len(outs) > 1 else ""
        if o.shape != r.shape:
            return f"{where}shape {o.shape}, expected {r.shape}"
        if check_dtype and o.dtype != r.dtype:
            return f"{where}dtype {o.dtype}, expected {r.dtype}"
        if r.dtype.kind not in "fc":
            if not np.array_equal(o, r):
                return f"{where}values differ at {int(np.sum(o != r))} of {r.size} places"
            continue
        name = dtype_name or r.dtype.name
        rt, at = TOLERANCES.get(name, TOLERANCES["float32"])
        rt = rtol if rtol is not None else rt
        at = atol if atol is not None else at
        o64, ref_64 = o.astype(np.float64), r.astype(np.float64)
        if np.allclose(o64, ref_64, rtol=rt, atol=at, equal_nan=True):
            continue
        err = float(np.nanmax(np.abs(o64 - ref_64)))
        if r64 is not None and np.asarray(r64).shape == r.shape:
            t64 = np.asarray(r64, dtype=np.float64)
            ours = float(np.nanmax(np.abs(o64 - t64)))
            theirs = float(np.nanmax(np.abs(ref_64 - t64)))
            if ours <= 2 * theirs + 1e-12 * max(1.0, float(np.nanmax(np.abs(t64)))):
                continue
            return (f"{where}max |diff| {err:.3g} vs torch; {ours:.3g} from float64 "
                    f"(torch's own: {theirs:.3g})")
        return f"{where}max |diff| {err:.3g} vs torch (rtol {rt:g}, atol {at:g})"
    return None
