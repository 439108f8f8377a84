"""Device kernels for indexing: reads and writes through index tensors.

Every op here is one pointwise kernel with an *indexed* load or store (see
kernels/triton/spec.py): the address of an element is the usual strided
offset plus `index value * stride`. For gather along dim 1 of a 2-d x:

    out[i, j] = x[i, idx[i, j]]      load x with strides (s0, 0) plus idx * s1

The writes are the same kernels turned around: scatter stores through the
index; scatter_add, index_add, index_put(accumulate=True) and embedding's
backward store with an atomic add, so that repeated indices all land.

    gather, take, embedding      the index is a device tensor read by the kernel
    scatter, scatter_add         the same, storing into a copy of the input
    index (x[idx]), index_put,   the index comes as host arrays (slices, int arrays,
      index_fill, index_add,       masks), as torch's CPU side checks them: their
      masked_select                offsets are summed into one int64 array on the host
                                   (the index's size, never the data's) and uploaded
    view_scatter                 a view's backward: zeros, and a copy of the gradient
                                   into the same view of them (no index at all; an
                                   atomic add when the view's elements may overlap)

Bounds: torch checks indices before it reads with them; so do we. Indices that
come from the host are checked there; a device index tensor has its min and max
taken by one reduction kernel and read back (one sync; torch's CUDA kernels
raise a device-side assert instead). The kernels themselves never check.

Atomic adds exist for float16/32/64 and int32/64; bfloat16 and small integers
accumulate in a float32/int32 scratch copy that is cast back afterwards.

The backward of unfold, whose windows may overlap, adds the gradient through the
view with the same atomic store.

Left on the host: scatter with reduce='multiply' (no atomic multiply), bool values
accumulated, and as_strided's backward (its view is defined on the input's storage).
"""
from __future__ import annotations

import math
from typing import Callable, Sequence

import numpy as np

from ... import dtypes as D
from ..triton.lowering import LoweringError
from ..triton.spec import KernelSpec, Load, Step, Store
from . import eager
from .array import DeviceArray, contiguous_strides

_NATIVE_ATOMIC = (D.float16, D.float32, D.float64, D.int32, D.int64)


# ---- small tools ------------------------------------------------------------------------------------
def _arr(a) -> DeviceArray:
    """A tensor argument's device array."""
    return a._data


def _as_1d(d: DeviceArray) -> DeviceArray:
    """A 0-d array as a 1-element 1-d one (kernels index along at least one dim)."""
    return DeviceArray(d.buffer, (1,), (1,), d.offset, d.tdtype) if d.ndim == 0 else d


def index_range(idx: DeviceArray) -> tuple[int, int]:
    """(min, max) of a device index tensor, in one reduction kernel and one read back."""
    x = _as_1d(idx)
    nd = x.ndim
    lo, hi = eager.empty((), D.int64), eager.empty((), D.int64)
    red = tuple(range(nd))
    body = (Step("lo", "amax", ("i",), {"dims": red, "keepdim": True, "is_max": False}, D.int64),
            Step("hi", "amax", ("i",), {"dims": red, "keepdim": True}, D.int64))
    spec = KernelSpec("index_range", x.shape, (Load("i", x.tdtype, x.shape, x.estrides, x.offset),), body,
                      (Store("lo", "lo", D.int64, (), ()), Store("hi", "hi", D.int64, (), ())), nd)
    eager._launch(spec, {"i": x, "lo": lo, "hi": hi})
    return int(eager.to_host(lo)), int(eager.to_host(hi))


def _launch(name: str, shape, loads: Sequence[Load], body: Sequence[Step], stores: Sequence[Store], arrays) -> None:
    if math.prod(shape) == 0:
        return
    eager._launch(KernelSpec(name, tuple(shape), tuple(loads), tuple(body), tuple(stores)), arrays)


def _value_load(name: str, v, dtype: D.DType) -> tuple[Load, DeviceArray]:
    """A load of a value tensor, or of a Python number uploaded as a 0-d array."""
    if not isinstance(v, DeviceArray):
        from ...dispatch import to_storage

        v = eager.from_host(to_storage(np.asarray(v, D.compute_np(dtype)), dtype), dtype)
    return Load(name, v.tdtype, v.shape, v.estrides, v.offset), v


def _accumulator(out: DeviceArray) -> DeviceArray:
    """Where atomic adds go for `out`: out itself, or a scratch copy in a dtype with atomics."""
    if out.tdtype in _NATIVE_ATOMIC:
        return out
    if out.tdtype is D.bool_:
        raise LoweringError("accumulating bool values")
    wide = D.float32 if out.tdtype.category == D._FLOAT else D.int32
    return eager.copy_array(out, wide)


def _finish(out: DeviceArray, acc: DeviceArray) -> None:
    if acc is not out:
        eager.copy_into(out, acc)


def _copy_like(x: DeviceArray, dtype: D.DType, row_major: bool) -> DeviceArray:
    """A copy of x: row-major, or in x's own memory order (torch's clone)."""
    if row_major:
        return eager.copy_array(x, dtype)
    from .composite import _like

    out = _like(x, dtype)
    eager.copy_into(out, x)
    return out


# ---- a device index tensor along one dim: gather, scatter, take, embedding --------------------------
def _check_dim_index(idx: DeviceArray, dim: int, n: int) -> None:
    """gather/scatter indices lie in [0, n): torch does not wrap negative ones."""
    if idx.size == 0:
        return
    lo, hi = index_range(idx)
    if lo < 0 or hi >= n:
        raise RuntimeError(f"index {hi if hi >= n else lo} is out of bounds for dimension {dim} with size {n}")


def _along(x: DeviceArray, dim: int, shape) -> tuple[tuple, tuple]:
    """(shape, strides) reading x over `shape` with dim `dim` left to the index (stride 0)."""
    st = list(x.estrides)
    st[dim] = 0
    return tuple(shape), tuple(st)


def gather(args, attrs, dtype, compute):
    """out[..., j, ...] = x[..., idx[..., j, ...], ...] along attrs['dim']."""
    x, idx = _as_1d(_arr(args[0])), _as_1d(_arr(args[1]))
    dim = attrs["dim"]
    _check_dim_index(idx, dim, x.shape[dim])
    out = eager.empty(idx.shape, x.tdtype)
    shape, st = _along(x, dim, idx.shape)
    loads = [Load("i", idx.tdtype, idx.shape, idx.estrides, idx.offset),
             Load("x", x.tdtype, shape, st, x.offset, (("i", x.estrides[dim]),))]
    _launch("gather", idx.shape, loads, (), [Store("out", "x", out.tdtype, out.shape, out.estrides)],
            {"i": idx, "x": x, "out": out})
    return [_like_input(out, args[1])]


def scatter(args, attrs, dtype, compute):
    """A copy of x with src written (scatter) or added (scatter_add) at idx along attrs['dim']."""
    x, idx, src = _as_1d(_arr(args[0])), _as_1d(_arr(args[1])), args[2]
    if hasattr(src, "_data") and src.ndim == 0:
        src = type(src)._make(_as_1d(src._data), src.dtype)
    dim, reduce = attrs["dim"], attrs.get("reduce")
    if reduce not in (None, "add"):
        raise LoweringError(f"scatter with reduce={reduce!r}: there is no atomic {reduce}")
    _check_dim_index(idx, dim, x.shape[dim])
    out = eager.copy_array(x)  # (NumPy's a.copy(), as the CPU op: row-major)
    acc = _accumulator(out) if reduce == "add" else out
    v = _arr(src) if hasattr(src, "_data") else src
    vload, varr = _value_load("v", v, x.tdtype)
    if isinstance(v, DeviceArray):  # src may be larger than idx: read its first idx.shape elements
        vload = Load("v", varr.tdtype, idx.shape, varr.estrides, varr.offset)
    shape, st = _along(acc, dim, idx.shape)
    loads = [Load("i", idx.tdtype, idx.shape, idx.estrides, idx.offset), vload]
    store = Store("out", "v", acc.tdtype, shape, st, acc.offset, (("i", acc.estrides[dim]),), reduce == "add")
    _launch("scatter_add" if reduce == "add" else "scatter", idx.shape, loads, (), [store],
            {"i": idx, "v": varr, "out": acc})
    _finish(out, acc)
    return [_like_input(out, args[0])]


def _like_input(out: DeviceArray, t) -> DeviceArray:
    """out with the input tensor's shape again (a 0-d input ran as a 1-element row)."""
    return DeviceArray(out.buffer, (), (), out.offset, out.tdtype) if t.ndim == 0 else out


def take(args, attrs, dtype, compute):
    """Elements of the row-major flattened x at idx (negative indices count from the end)."""
    x, idx = _arr(args[0]), _arr(args[1])
    n = x.size
    if idx.size:
        lo, hi = index_range(idx)
        if lo < -n or hi >= n:
            raise IndexError(f"out of range: tried to access index {hi if hi >= n else lo} on a tensor of {n} "
                             "elements.")
    if not x.contiguous:
        x = eager.copy_array(x)
    out = eager.empty(idx.shape, x.tdtype)
    i = _as_1d(idx)
    # wrap negative indices in the kernel: i + n where i < 0 (the index load itself stays plain)
    body = [Step("neg", "lt", ("i", 0), {}, D.bool_), Step("up", "add", ("i", n), {}, D.int64),
            Step("w", "where", ("neg", "up", "i"), {}, D.int64)]
    wrapped = eager.empty(i.shape, D.int64)
    _launch("wrap_index", i.shape, [Load("i", i.tdtype, i.shape, i.estrides, i.offset)], body,
            [Store("out", "w", D.int64, wrapped.shape, wrapped.estrides)], {"i": i, "out": wrapped})
    o = _as_1d(out)
    loads = [Load("i", D.int64, wrapped.shape, wrapped.estrides),
             Load("x", x.tdtype, o.shape, (0,) * o.ndim, x.offset, (("i", 1),))]
    _launch("take", o.shape, loads, (), [Store("out", "x", o.tdtype, o.shape, o.estrides)],
            {"i": wrapped, "x": x, "out": o})
    return [out]


def embedding(args, attrs, dtype, compute):
    """Rows of the (V, D) weight picked by an index tensor of any shape: out is idx.shape + (D,)."""
    w, idx = _arr(args[0]), _arr(args[1])
    if w.ndim != 2:
        raise LoweringError("embedding of a weight that is not 2-d")
    if idx.size:
        lo, hi = index_range(idx)
        if lo < 0 or hi >= w.shape[0]:
            raise IndexError("index out of range in self")
    shape = idx.shape + (w.shape[1],)
    out = eager.empty(shape, w.tdtype)
    loads = [Load("i", idx.tdtype, idx.shape + (1,), idx.estrides + (0,), idx.offset),
             Load("w", w.tdtype, shape, (0,) * idx.ndim + (w.estrides[1],), w.offset, (("i", w.estrides[0]),))]
    _launch("embedding", shape, loads, (), [Store("out", "w", out.tdtype, out.shape, out.estrides)],
            {"i": idx, "w": w, "out": out})
    return [out]


def embedding_backward(args, attrs, dtype, compute):
    """The (V, D) weight gradient: each gradient row added into the row its index names; the
    padding row stays zero."""
    g, idx = _arr(args[0]), _arr(args[1])
    v, d = int(attrs["num_weights"]), g.shape[-1]
    out = eager.empty((v, d), g.tdtype)
    eager.write(out, 0)
    acc = _accumulator(out)
    iload = Load("i", idx.tdtype, idx.shape + (1,), idx.estrides + (0,), idx.offset)
    loads, body, arrays, value = [iload, Load("g", g.tdtype, g.shape, g.estrides, g.offset)], [], {}, "g"
    if attrs.get("scale_grad_by_freq"):
        # each occurrence's row divided by how often its index occurs: the counts first, by atomic adds
        counts = eager.empty((v,), D.float32)
        eager.write(counts, 0)
        one, one_arr = _value_load("one", 1.0, D.float32)
        _launch("embedding_counts", idx.shape, [Load("i", idx.tdtype, idx.shape, idx.estrides, idx.offset), one],
                (), [Store("counts", "one", D.float32, idx.shape, (0,) * idx.ndim, 0, (("i", 1),), True)],
                {"i": idx, "one": one_arr, "counts": counts})
        loads.append(Load("c", D.float32, g.shape, (0,) * g.ndim, 0, (("i", 1),)))
        body = [Step("gs", "div", ("g", "c"), {}, acc.tdtype)]
        arrays, value = {"c": counts}, "gs"
    store = Store("out", value, acc.tdtype, g.shape, (0,) * idx.ndim + (1,), 0, (("i", d),), True)
    _launch("embedding_backward", g.shape, loads, body, [store], {"i": idx, "g": g, "out": acc, **arrays})
    _finish(out, acc)
    pad = attrs.get("padding_idx")
    if pad is not None:
        eager.write(DeviceArray(out.buffer, (1, d), (d, 1), (pad % v) * d, out.tdtype), 0)
    return [out]


# ---- host index parts: x[idx], index_put, index_fill, index_add, masked_select --------------------
class Plan:
    """Where x[index] reads, worked out on the host from the index's parts.

    shape     the result's shape
    strides   x's element strides over the result's dims (0 on the dims the index arrays make)
    offset    x's offset plus the starts of any partial slices
    offsets   one int64 array: for each element of the broadcast index arrays, the sum of
              index * stride over the dims they index (None when nothing is indexed by arrays)
    at        where in the result's dims the broadcast index dims sit"""

    def __init__(self, x: DeviceArray, index: tuple):
        from ...ops.index import indexed

        stand = np.lib.stride_tricks.as_strided(np.zeros(1, np.uint8), x.shape, (0,) * x.ndim)
        self.shape = tuple(indexed(stand, index).shape)  # torch's checks and errors, no data read
        kept: list[tuple[int, int]] = []  # (size, stride) of each dim a slice keeps
        arrays, dims, where = [], [], []
        offset, d = x.offset, 0
        for k, i in enumerate(index):
            if isinstance(i, slice):
                start, stop, step = i.indices(x.shape[d])
                offset += start * x.estrides[d]
                kept.append((len(range(start, stop, step)), x.estrides[d] * step))
                d += 1
            elif isinstance(i, (bool, np.bool_)):
                raise LoweringError("a Python bool in an index")
            elif isinstance(i, np.ndarray) and i.dtype == np.bool_:
                for nz in np.nonzero(i):
                    arrays.append(nz)
                    dims.append(d)
                    where.append(k)
                    d += 1
            else:
                arrays.append(np.asarray(i, np.int64))
                dims.append(d)
                where.append(k)
                d += 1
        kept += [(x.shape[j], x.estrides[j]) for j in range(d, x.ndim)]
        self.offset = offset
        if not arrays:
            self.offsets, self.at = None, 0
            self.strides = tuple(s for _, s in kept)
            return
        bshape = np.broadcast_shapes(*(a.shape for a in arrays))
        flat = np.zeros(bshape, np.int64)
        for a, dd in zip(arrays, dims):
            n = x.shape[dd]
            flat += np.where(a < 0, a + n, a) * x.estrides[dd]  # (bounds were checked by `indexed`)
        self.offsets = flat
        ks = sorted(set(where))  # (a mask of several dims adds one array per dim, all at its position)
        adjacent = ks == list(range(ks[0], ks[0] + len(ks)))
        # NumPy's rule, which torch follows: adjacent index arrays put their dims where they stood,
        # separated ones put them first
        self.at = sum(1 for i in index[:where[0]] if isinstance(i, slice)) if adjacent else 0
        nb = len(bshape)
        st = [s for _, s in kept]
        self.strides = tuple(st[:self.at] + [0] * nb + st[self.at:])
        if len(self.strides) != len(self.shape):
            raise LoweringError("an index whose result dims this plan does not place")

    def offsets_load(self, name: str) -> tuple[list[Load], dict]:
        """The index offsets as a load aligned with the result's dims (nothing when no arrays)."""
        if self.offsets is None:
            return [], {}
        off = eager.from_host(self.offsets, D.int64)
        nb = self.offsets.ndim
        st = contiguous_strides(self.offsets.shape)
        n = len(self.shape)
        strides = (0,) * self.at + st + (0,) * (n - self.at - nb)
        return [Load(name, D.int64, self.shape, strides)], {name: off}

    def terms(self, name: str) -> tuple:
        return () if self.offsets is None else ((name, 1),)


def _layout(x: DeviceArray, index, shape, row_major: bool) -> tuple | None:
    if row_major:
        return None
    from ...ops.index import index_result_strides

    return index_result_strides(x.estrides, index, shape)


def index(args, attrs, dtype, compute):
    """x[index]: one gather kernel over the result, laid out as torch lays it out."""
    return [_index(_arr(args[0]), attrs["index"], attrs.get("contiguous", False))]


def _index(x: DeviceArray, idx: tuple, row_major: bool) -> DeviceArray:
    plan = Plan(x, idx)
    out = eager.empty(plan.shape, x.tdtype, _layout(x, idx, plan.shape, row_major))
    loads, arrays = plan.offsets_load("i")
    loads.append(Load("x", x.tdtype, plan.shape, plan.strides, plan.offset, plan.terms("i")))
    arrays.update(x=x, out=out)
    _launch("index", plan.shape, loads, (), [Store("out", "x", out.tdtype, out.shape, out.estrides)], arrays)
    return out


def _put(name: str, out: DeviceArray, index, value, accumulate: bool, scale=None) -> None:
    """out[index] = value (or += with accumulate), value broadcast to the indexing result."""
    shape = Plan(out, index).shape
    vload, varr = _value_load("v", value, out.tdtype)
    if len(vload.shape) > len(shape) or any(a != b and a != 1 for a, b in zip(vload.shape[::-1], shape[::-1])):
        raise RuntimeError(f"shape mismatch: value tensor of shape {list(vload.shape)} cannot be broadcast to "
                           f"indexing result of shape {list(shape)}")
    acc = _accumulator(out) if accumulate else out
    plan = Plan(acc, index)  # (a scratch copy has its own strides)
    loads, arrays = plan.offsets_load("i")
    loads.append(vload)
    body, value_name = [], "v"
    if scale is not None and scale != 1:
        body.append(Step("sv", "mul", ("v", scale), {}, acc.tdtype))
        value_name = "sv"
    store = Store("out", value_name, acc.tdtype, plan.shape, plan.strides, plan.offset, plan.terms("i"), accumulate)
    arrays.update(v=varr, out=acc)
    _launch(name, plan.shape, loads, body, [store], arrays)
    _finish(out, acc)


def _value(a):
    return _arr(a) if hasattr(a, "_data") else a


def index_put(args, attrs, dtype, compute):
    """A copy of x with values written (or added) at x[index]."""
    x = _arr(args[0])
    out = _copy_like(x, x.tdtype, attrs.get("contiguous", False))
    _put("index_put", out, attrs["index"], _value(args[1]), attrs.get("accumulate", False))
    return [out]


def index_fill(args, attrs, dtype, compute):
    """A copy of x (in its own memory order) with one value written at x[index]."""
    x = _arr(args[0])
    out = _copy_like(x, x.tdtype, False)
    _put("index_fill", out, attrs["index"], _value(args[1]), False)
    return [out]


def index_add(args, attrs, dtype, compute):
    """A row-major copy of x with alpha * source added at x[index]."""
    x = _arr(args[0])
    out = eager.copy_array(x)
    _put("index_add", out, attrs["index"], _value(args[1]), True, attrs.get("alpha", 1))
    return [out]


def masked_select(args, attrs, dtype, compute):
    """The elements of x where the mask is true, in row-major order: the mask comes to the host
    (the result's size depends on it), the data stays on the device."""
    x, m = _arr(args[0]), args[1]
    shape = tuple(np.broadcast_shapes(x.shape, m.shape))
    mask = np.broadcast_to(m._values(), shape)
    xb = DeviceArray(x.buffer, shape, (0,) * (len(shape) - x.ndim) +
                     tuple(0 if n == 1 else s for n, s in zip(x.shape, x.estrides)), x.offset, x.tdtype)
    return [_index(xb, (mask,), True)]


# ---- a view's backward ----------------------------------------------------------------------------
def view_scatter(args, attrs, dtype, compute):
    """Zeros of the input's shape with the gradient copied into the same view of them."""
    from ...ops.table import OPS

    g = _arr(args[0])
    name = attrs["view"]
    out = eager.empty(tuple(attrs["shape"]), g.tdtype)
    if out.size:
        eager.write(out, 0)
    if name == "as_strided":  # its strides and offset are the input's storage's, not a fresh buffer's
        raise LoweringError("the backward of as_strided, whose view is defined on the input's storage")
    overlapping = name == "unfold"  # its windows may share elements
    acc = _accumulator(out) if overlapping else out
    views = eager.view(OPS[name], acc, (), attrs.get("attrs", {}))
    if views is None:
        raise LoweringError(f"{name} of the gradient's zeros is not a view")
    v = views[0]
    if not overlapping:
        eager.copy_into(v, g)
        return [out]
    # every element of the gradient is added at its position: those that share one sum there
    _launch(f"{name}_backward", v.shape, [Load("g", g.tdtype, g.shape, g.estrides, g.offset)], (),
            [Store("out", "g", acc.tdtype, v.shape, v.estrides, v.offset, (), True)], {"g": g, "out": acc})
    _finish(out, acc)
    return [out]


HANDLERS: dict[str, Callable] = {
    "gather": gather, "scatter": scatter, "scatter_add": scatter, "take": take, "embedding": embedding,
    "embedding_backward": embedding_backward, "index": index, "index_put": index_put, "index_fill": index_fill,
    "index_add": index_add, "masked_select": masked_select, "view_scatter": view_scatter,
}
