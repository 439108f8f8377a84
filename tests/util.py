"""Shared helpers for differential tests against torch.

The pattern every test follows:

    ours, theirs = make_pair((3, 4), "float32", "transposed", rng)   # same data, same layout
    check_op("exp", lambda L, x: L.exp(x), [(ours, theirs)], seed=seed)

`check_op` runs the same lambda with `L = tracegrad` and `L = torch`, then
`assert_same` compares type, dtype, shape, values (with torch's default
tolerances and the float64-reference rule of DESIGN.md), and optionally strides
and memory sharing. When torch raises, tracegrad must raise the same exception
type. Every failure message names the op, the inputs' shapes, strides and
dtypes, and the seed that made the data.

torch is only a reference here: tracegrad itself never imports it.
"""
from __future__ import annotations

import math
from typing import Any, Callable, Sequence

import numpy as np
import torch

import tracegrad
from tracegrad.tensor import _root

# ---- dtypes ------------------------------------------------------------------------------
DTYPES = ["float32", "float64", "float16", "bfloat16", "int8", "uint8", "int16", "int32", "int64", "bool"]
FLOATS = ["float32", "float64", "float16", "bfloat16"]
INTS = ["int8", "uint8", "int16", "int32", "int64"]
LOW_FLOATS = ("float32", "float16", "bfloat16")  # the dtypes the float64-reference rule applies to


def tg_dtype(name: str):
    return getattr(tracegrad, name)


def torch_dtype(name: str):
    return getattr(torch, name)


def dtype_name(dt) -> str:
    """'float32' for tracegrad.float32 and torch.float32 alike."""
    return str(dt).rsplit(".", 1)[-1]


# ---- moving tensors between the libraries (keeping strides and offset) --------------------
def to_torch(t: tracegrad.Tensor) -> torch.Tensor:
    """A torch tensor with t's values, dtype, shape, strides and storage offset (over a copy of t's storage)."""
    root = _root(t._data)
    if root.flags.c_contiguous and t._data.size:
        flat = np.array(root.reshape(-1), copy=True)
        item = t.dtype.itemsize
        if t.dtype is tracegrad.bfloat16:
            base = torch.from_numpy(flat.view(np.int16)).view(torch.bfloat16)
        else:
            base = torch.from_numpy(flat)
        off = (t._data.__array_interface__["data"][0] - root.__array_interface__["data"][0]) // item
        return base.as_strided(tuple(t.shape), t.stride(), off)
    vals = np.array(t._data, copy=True)  # a storage we cannot mirror: keep the values only
    if t.dtype is tracegrad.bfloat16:
        return torch.from_numpy(vals.view(np.int16)).view(torch.bfloat16)
    return torch.from_numpy(vals)


def from_torch(t: torch.Tensor) -> tracegrad.Tensor:
    """A tracegrad tensor with t's values, dtype, shape, strides and storage offset."""
    t = t.detach()
    name = dtype_name(t.dtype)
    storage = t.untyped_storage()
    n = storage.nbytes() // t.element_size()
    base = torch.empty(0, dtype=t.dtype).set_(storage, 0, (n,), (1,)).clone()
    if name == "bfloat16":
        arr = base.view(torch.int16).numpy().view(np.uint16)
    else:
        arr = base.numpy()
    full = tracegrad.from_numpy(arr) if name != "bfloat16" else tracegrad.Tensor._make(arr, tracegrad.bfloat16)
    if t.numel() == 0:
        return tracegrad.empty(tuple(t.shape), dtype=tg_dtype(name))
    return full.as_strided(tuple(t.shape), t.stride(), t.storage_offset())


def values64(x) -> np.ndarray:
    """Values as a float64 (or bool) NumPy array, from either library."""
    if isinstance(x, torch.Tensor):
        x = x.detach()
        if x.dtype == torch.bool:
            return x.numpy().copy()
        return x.to(torch.float64).numpy().copy()
    if x.dtype is tracegrad.bool:
        return np.array(x._values(), dtype=bool)
    return np.array(x._values(), dtype=np.float64)


# ---- data --------------------------------------------------------------------------------
def _bf16_grid(a: np.ndarray) -> np.ndarray:
    """Round float32 values onto bfloat16 values so both libraries store the same bits."""
    a = np.array(a, dtype=np.float32)  # (a copy; ascontiguousarray would make 0-d arrays 1-d)
    return (a.view(np.uint32) & np.uint32(0xFFFF0000)).view(np.float32)


DOMAINS = {
    # name: (low, high) for floats; ints use the same bounds clipped to the dtype
    "any": (-3.0, 3.0),
    "pos": (0.1, 3.0),
    "unit": (-0.95, 0.95),
    "nonzero": None,  # like "any" with no value near zero
    "small": (-1.0, 1.0),
}


def rand_array(shape, name: str, rng: np.random.Generator, domain: str = "any") -> np.ndarray:
    """Random test data in NumPy (bfloat16 as float32 on the bf16 grid)."""
    shape = tuple(shape)
    if name == "bool":
        return rng.random(shape) < 0.5
    if name in INTS:
        lo, hi = {"pos": (1, 6), "unit": (0, 2), "nonzero": (1, 6), "small": (-1, 2)}.get(domain, (-5, 6))
        if name == "uint8":
            lo, hi = max(lo, 0), max(hi, 2)
        a = rng.integers(lo, hi, size=shape).astype(name)
        if domain == "nonzero":
            sign = np.where(rng.random(shape) < 0.5, -1, 1) if name != "uint8" else 1
            a = (a * sign).astype(name)
        return a
    if domain == "nonzero":
        a = rng.uniform(0.25, 3.0, size=shape) * np.where(rng.random(shape) < 0.5, -1.0, 1.0)
    else:
        lo, hi = DOMAINS[domain]
        a = rng.uniform(lo, hi, size=shape)
    if name == "bfloat16":
        return _bf16_grid(a)
    return a.astype(name)


def _from_numpy_both(arr: np.ndarray, name: str):
    ours = tracegrad.tensor(arr, dtype=tg_dtype(name))
    if not arr.size:
        # torch.tensor(ndarray) would copy NumPy's all-zero strides of an empty array, which no torch
        # factory gives; an empty tensor from torch.empty has the row-major strides we compare with
        return ours, torch.empty(arr.shape, dtype=torch_dtype(name))
    # a copy with its own (resizable) storage and row-major strides; bfloat16 rounds from float32 values
    # that are already on the bfloat16 grid, so both libraries hold the same bits
    theirs = torch.tensor(arr).to(torch_dtype(name))
    return ours, theirs


# ---- layouts: the same non-contiguous view built in both libraries --------------------------
# each layout: (shape of the base to allocate, view to apply with the same code in both libraries)
def _layout_contig(shape):
    return shape, lambda x: x


def _layout_transposed(shape):
    if len(shape) < 2:
        return _layout_contig(shape)
    base = shape[:-2] + (shape[-1], shape[-2])
    return base, lambda x: x.transpose(-1, -2)


def _layout_permuted(shape):
    if len(shape) < 3:
        return _layout_transposed(shape)
    nd = len(shape)
    perm = tuple(range(nd))[::-1]  # reversed order; the base holds the permuted shape
    base = tuple(shape[p] for p in perm)
    return base, lambda x: x.permute(*perm)


def _layout_sliced(shape):
    """Every other element along the last dim, starting one in: strided and offset."""
    if not shape:
        return (3,), lambda x: x[1]
    base = shape[:-1] + (2 * shape[-1] + 1,)
    return base, lambda x: x[..., 1::2]


def _layout_offset(shape):
    if not shape:
        return (2,), lambda x: x[1]
    base = (shape[0] + 2,) + shape[1:]
    return base, lambda x: x[2:]


def _layout_expanded(shape):
    """A broadcast view (stride 0) along the first dim of size > 1: read-only inputs only."""
    for i, n in enumerate(shape):
        if n > 1:
            base = shape[:i] + (1,) + shape[i + 1:]
            return base, lambda x: x.expand(*shape)
    return _layout_contig(shape)


LAYOUTS: dict[str, Callable] = {
    "contig": _layout_contig,
    "transposed": _layout_transposed,
    "permuted": _layout_permuted,
    "sliced": _layout_sliced,
    "offset": _layout_offset,
    "expanded": _layout_expanded,
}
WRITABLE_LAYOUTS = ["contig", "transposed", "sliced", "offset"]


def make_pair(shape, name: str, layout: str = "contig", rng: np.random.Generator | None = None,
              domain: str = "any"):
    """The same tensor in tracegrad and torch: same values, dtype, shape, strides and offset."""
    rng = rng if rng is not None else np.random.default_rng(0)
    base_shape, view = LAYOUTS[layout](tuple(shape))
    arr = rand_array(base_shape, name, rng, domain)
    ours, theirs = _from_numpy_both(arr, name)
    ours, theirs = view(ours), view(theirs)
    assert tuple(ours.shape) == tuple(theirs.shape) == tuple(shape), (layout, shape)
    assert dtype_name(ours.dtype) == dtype_name(theirs.dtype) == name, (name, ours.dtype, theirs.dtype)
    if theirs.numel():  # (an empty tensor's strides are not a contract)
        assert ours.stride() == theirs.stride(), f"layout {layout}: strides {ours.stride()} vs {theirs.stride()}"
    return ours, theirs


def pair_from(arr, name: str | None = None):
    """Both libraries' tensor from one NumPy array (or nested list), copied."""
    arr = np.asarray(arr)
    if name is None:
        name = dtype_name(tracegrad.tensor(arr).dtype) if arr.size else "float32"
    return _from_numpy_both(arr.astype(np.float32 if name == "bfloat16" else name), name)


# ---- describing a case (for failure messages) -------------------------------------------------
def describe(op: str, inputs: Sequence[Any] = (), seed: Any = None, **extra) -> str:
    parts = [f"op={op}"]
    for i, x in enumerate(inputs):
        if isinstance(x, tracegrad.Tensor):
            parts.append(f"in{i}: shape={tuple(x.shape)} strides={x.stride()} offset={x.storage_offset()} "
                         f"dtype={dtype_name(x.dtype)}")
        elif isinstance(x, torch.Tensor):
            parts.append(f"in{i}: shape={tuple(x.shape)} strides={x.stride()} offset={x.storage_offset()} "
                         f"dtype={dtype_name(x.dtype)}")
        else:
            parts.append(f"in{i}: {type(x).__name__} {x!r}"[:120])
    for k, v in extra.items():
        parts.append(f"{k}={v}")
    if seed is not None:
        parts.append(f"seed={seed}")
    return "\n  ".join(parts)


# ---- comparing ---------------------------------------------------------------------------------
def _tolerance(name: str):
    return {"float32": (1.3e-6, 1e-5), "float64": (1e-7, 1e-7), "float16": (1e-3, 1e-5),
            "bfloat16": (1.6e-2, 1e-5)}.get(name, (0.0, 0.0))


def _close(a: np.ndarray, b: np.ndarray, rtol: float, atol: float) -> np.ndarray:
    """Elementwise assert_close: equal (incl. inf), both nan, or within atol + rtol*|b|."""
    with np.errstate(all="ignore"):
        ok = (a == b) | (np.isnan(a) & np.isnan(b))
        fin = np.isfinite(a) & np.isfinite(b)
        ok |= fin & (np.abs(a - b) <= atol + rtol * np.abs(b))
    return ok


def _err(x: np.ndarray, ref: np.ndarray) -> float:
    """Largest distance from the float64 reference (nan where one side is nan and the other is not: inf)."""
    with np.errstate(all="ignore"):
        d = np.abs(x - ref)
        d = np.where((x == ref) | (np.isnan(x) & np.isnan(ref)), 0.0, d)
        d = np.where(np.isnan(d), np.inf, d)
    return float(d.max()) if d.size else 0.0


def assert_values(ours, theirs, ctx: str = "", ref64=None, exact: bool = False) -> None:
    """Values equal within torch's default tolerance for the dtype; for float32/16/bf16 results that
    miss it, the DESIGN.md rule: no farther from the float64 reference than torch's own result."""
    a, b = values64(ours), values64(theirs)
    name = dtype_name(theirs.dtype)
    if a.dtype == bool or b.dtype == bool or exact or name not in FLOATS:
        bad = ~((a == b) | (np.isnan(a) & np.isnan(b))) if a.dtype != bool else a != b
        if bad.any():
            raise AssertionError(f"values differ at {int(bad.sum())} of {bad.size} positions\n  {ctx}\n"
                                 f"  ours:   {a[bad][:8]}\n  theirs: {b[bad][:8]}")
        return
    rtol, atol = _tolerance(name)
    ok = _close(a, b, rtol, atol)
    if ok.all():
        return
    if ref64 is not None and name in LOW_FLOATS:
        r = values64(ref64)
        r = np.broadcast_to(r, a.shape)
        if _err(a, r) <= _err(b, r):
            return
        extra = f"\n  float64 reference: ours err {_err(a, r):.3g} > torch err {_err(b, r):.3g}"
    else:
        extra = ""
    bad = ~ok
    raise AssertionError(f"values differ at {int(bad.sum())} of {bad.size} positions (rtol={rtol}, atol={atol})\n"
                         f"  {ctx}\n  ours:   {a[bad][:8]}\n  theirs: {b[bad][:8]}{extra}")


def _nontrivial_strides(shape, strides):
    """Strides of dims whose size is > 1 (torch's strides for size-1 dims are not a contract)."""
    return tuple(s for n, s in zip(shape, strides) if n > 1)


def assert_same(ours, theirs, ctx: str = "", *, strides: bool | str = "nontrivial", ref64=None,
                exact: bool = False) -> None:
    """Compare a tracegrad result with torch's: type, dtype, shape, strides, values.

    `strides`: True compares every stride, "nontrivial" those of dims of size > 1,
    "contiguous" only asks that ours is contiguous when torch's is, False skips.
    Tuples/lists/named tuples are compared element by element; Python scalars by type and value."""
    if isinstance(theirs, torch.Tensor):
        assert isinstance(ours, tracegrad.Tensor), f"expected a Tensor, got {type(ours).__name__}\n  {ctx}"
        assert dtype_name(ours.dtype) == dtype_name(theirs.dtype), \
            f"dtype {dtype_name(ours.dtype)} != torch's {dtype_name(theirs.dtype)}\n  {ctx}"
        assert tuple(ours.shape) == tuple(theirs.shape), \
            f"shape {tuple(ours.shape)} != torch's {tuple(theirs.shape)}\n  {ctx}"
        assert isinstance(ours.shape, tracegrad.Size), f"shape is a {type(ours.shape).__name__}\n  {ctx}"
        if theirs.numel() > 1 and strides:
            if strides == "contiguous":
                if theirs.is_contiguous():
                    assert ours.is_contiguous(), f"result not contiguous (strides {ours.stride()})\n  {ctx}"
            elif strides == "nontrivial":
                assert _nontrivial_strides(ours.shape, ours.stride()) == \
                       _nontrivial_strides(theirs.shape, theirs.stride()), \
                    f"strides {ours.stride()} != torch's {theirs.stride()}\n  {ctx}"
            else:
                assert ours.stride() == theirs.stride(), f"strides {ours.stride()} != torch's {theirs.stride()}\n  {ctx}"
        assert ours.is_contiguous() == theirs.is_contiguous(), \
            f"is_contiguous {ours.is_contiguous()} != torch's {theirs.is_contiguous()}\n  {ctx}"
        assert_values(ours, theirs, ctx, ref64=ref64, exact=exact)
        return
    if isinstance(theirs, (tuple, list)):
        assert isinstance(ours, (tuple, list)), f"expected a sequence, got {type(ours).__name__}\n  {ctx}"
        assert len(ours) == len(theirs), f"length {len(ours)} != torch's {len(theirs)}\n  {ctx}"
        fields = getattr(type(theirs), "__match_args__", None)  # torch.return_types are structseqs
        if fields:
            assert getattr(ours, "_fields", None) == fields, \
                f"named tuple fields {getattr(ours, '_fields', None)} != torch's {fields}\n  {ctx}"
        refs = ref64 if isinstance(ref64, (tuple, list)) else [None] * len(theirs)
        for i, (o, t, r) in enumerate(zip(ours, theirs, refs)):
            assert_same(o, t, f"{ctx}\n  [output {i}]", strides=strides, ref64=r, exact=exact)
        return
    if isinstance(theirs, torch.Size):
        assert isinstance(ours, tracegrad.Size) and tuple(ours) == tuple(theirs), f"{ours} != {theirs}\n  {ctx}"
        return
    if isinstance(theirs, torch.dtype):
        assert dtype_name(ours) == dtype_name(theirs), f"{ours} != {theirs}\n  {ctx}"
        return
    # Python scalars
    assert type(ours) is type(theirs), f"type {type(ours).__name__} != torch's {type(theirs).__name__}\n  {ctx}"
    if isinstance(theirs, float) and (math.isnan(theirs) or math.isnan(ours)):
        assert math.isnan(theirs) and math.isnan(ours), f"{ours} != {theirs}\n  {ctx}"
    else:
        assert ours == theirs, f"{ours!r} != torch's {theirs!r}\n  {ctx}"


def shares(a, b) -> bool:
    """Whether two tensors (of one library) use the same storage."""
    return a.untyped_storage().data_ptr() == b.untyped_storage().data_ptr()


def assert_sharing(ours_out, ours_in, theirs_out, theirs_in, ctx: str = "") -> None:
    """ours_out shares ours_in's storage exactly when torch's output shares torch's input's."""
    want = shares(theirs_out, theirs_in)
    got = shares(ours_out, ours_in)
    assert got == want, f"storage sharing: ours {got}, torch {want}\n  {ctx}"


# ---- running one op in both libraries ------------------------------------------------------------
def _to64(x):
    if isinstance(x, torch.Tensor) and x.dtype.is_floating_point:
        return x.detach().to(torch.float64)
    return x


def run_both(fn: Callable, ours_args: Sequence, theirs_args: Sequence, ctx: str):
    """fn(tracegrad, *ours_args) and fn(torch, *theirs_args). Returns (ours, theirs, torch_exc).
    If torch raises, ours must raise the same exception type (torch_exc is returned, ours is None)."""
    try:
        theirs = fn(torch, *theirs_args)
    except Exception as e:  # torch refuses: we must refuse the same way
        texc = e
    else:
        texc = None
    if texc is not None:
        try:
            got = fn(tracegrad, *ours_args)
        except Exception as e:
            want = type(texc)
            # torch raises subclasses of the builtin types; compare the builtin base
            want_base = next(c for c in want.__mro__ if c.__module__ == "builtins")
            assert isinstance(e, want_base), (f"raised {type(e).__name__}: {e}\n  torch raised "
                                              f"{want.__name__}: {texc}\n  {ctx}")
            # our errors are Python's own types with torch's words, never NumPy's exceptions leaking out
            assert type(e).__module__ == "builtins", (f"raised {type(e).__module__}.{type(e).__name__}: {e}\n  "
                                                      f"torch raised {want.__name__}: {texc}\n  {ctx}")
            return None, None, texc
        raise AssertionError(f"torch raised {type(texc).__name__}: {texc}\n  but we returned "
                             f"{type(got).__name__}\n  {ctx}")
    ours = fn(tracegrad, *ours_args)
    return ours, theirs, None


def check_op(op: str, fn: Callable, pairs: Sequence, *, seed=None, strides: bool | str = "nontrivial",
             ref64: bool = True, exact: bool = False, sharing: int | None = None, **extra):
    """Run `fn` in both libraries on `pairs` ((ours, theirs) tuples, or plain Python values used by both)
    and compare everything. With `sharing=i`, the output must share input i's storage iff torch's does.
    Returns (ours, theirs) for further checks (None, None when torch raised)."""
    ours_args = [p[0] if isinstance(p, tuple) and len(p) == 2 and isinstance(p[1], torch.Tensor) else p
                 for p in pairs]
    theirs_args = [p[1] if isinstance(p, tuple) and len(p) == 2 and isinstance(p[1], torch.Tensor) else p
                   for p in pairs]
    ctx = describe(op, ours_args, seed, **extra)
    ours, theirs, texc = run_both(fn, ours_args, theirs_args, ctx)
    if texc is not None:
        return None, None
    r64 = None
    if ref64 and _needs_ref(theirs):
        try:
            r64 = fn(torch, *[_to64(x) for x in theirs_args])
        except Exception:
            r64 = None
    assert_same(ours, theirs, ctx, strides=strides, ref64=r64, exact=exact)
    if sharing is not None:
        for o, t in (zip(ours, theirs) if isinstance(theirs, (tuple, list)) else [(ours, theirs)]):
            if t.numel():  # (where an empty result points is not a contract)
                assert_sharing(o, ours_args[sharing], t, theirs_args[sharing], ctx)
    return ours, theirs


def _needs_ref(x) -> bool:
    if isinstance(x, torch.Tensor):
        return dtype_name(x.dtype) in LOW_FLOATS
    if isinstance(x, (tuple, list)):
        return any(_needs_ref(y) for y in x)
    return False
