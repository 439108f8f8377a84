"""Indexing: `x[...]` on both sides of `=`, gather/scatter, masks, nonzero.

Basic indexing (ints, slices, None, ...) is a chain of view ops (select, slice,
unsqueeze), so it shares storage and autograd names each step as torch does.
Advanced indexing (integer tensors/lists, bool masks) is one `index` op that
copies; its vjp is `index_put` with accumulation, and vice versa."""
from __future__ import annotations

import math
from builtins import max as builtins_max

import numpy as np

from .. import dtypes as D
from ..device import OnDevice
from ..dispatch import apply
from ..tensor import Tensor
from . import movement as M
from .shape_util import pointwise_strides, sum_to, wrap_dim
from .table import defop
from ..autograd.record import name_by_args
from ..autograd.grad_mode import _state as _grad_state
from ..dispatch import TRACER as _TRACER
from .inplace import with_out


# ---- turning a Python index into parts --------------------------------------------------
def _host(t: Tensor):
    """An index tensor's values as the index op's attrs hold them: a NumPy array (a CUDA index is
    copied over: bounds, masks and result sizes are worked out on the host, as torch's CPU side does)."""
    return t._values() if t.is_cuda else t._data


def _is_advanced(i) -> bool:
    """Tensors, lists, arrays and Python bools index "advanced" (a copy); a 0-d integer tensor counts as an int."""
    if isinstance(i, Tensor):
        return i._data.ndim != 0 or i.dtype.category != D._INT
    return isinstance(i, (list, np.ndarray)) or (isinstance(i, bool))


def _to_np_index(i):
    if isinstance(i, Tensor):
        if i.dtype is D.bool_:
            m = _host(i)  # (a CUDA mask's values come to the host: the result's size depends on them)
            return bool(m) if m.ndim == 0 else m  # a 0-d mask indexes as True/False does: a new dim
        if i.dtype is D.uint8:  # the old mask dtype: still a mask, with torch's warning
            import warnings

            warnings.warn("indexing with dtype torch.uint8 is now deprecated, please use a dtype torch.bool "
                          "instead.", UserWarning, stacklevel=4)
            return _host(i).astype(np.bool_)
        if i.dtype.category != D._INT and i.dtype is not D.bool_:
            raise IndexError("tensors used as indices must be long, int, byte or bool tensors")
        return _host(i).astype(np.int64, copy=False)
    if isinstance(i, list):
        arr = np.asarray([x.item() if isinstance(x, Tensor) else x for x in i])
        if arr.dtype.kind == "f":
            raise IndexError("tensors used as indices must be long, int, byte or bool tensors")
        return arr
    return i


def _index_positions(idx: tuple, ndim: int) -> list:
    """For each entry of the ellipsis-expanded `idx`, its position in `idx` as written: torch's
    "index 3 is out of bounds for dimension 1" counts index entries (`...` as one), not tensor dims."""
    e = next((j for j, i in enumerate(idx) if i is Ellipsis), None)
    if e is None:
        return list(range(len(idx)))
    k = len(_expand_ellipsis(idx, ndim)) - len(idx) + 1  # how many slices the ellipsis became
    return [j if j < e else e if j < e + k else j - k + 1 for j in range(len(idx) - 1 + k)]


def _int_index(i) -> int:
    """An index entry that selects: an int (or something with __index__); torch refuses floats."""
    if isinstance(i, float):
        raise IndexError("only integers, slices (`:`), ellipsis (`...`), None and long or byte Variables are "
                         "valid indices (got float)")
    if isinstance(i, str):
        raise TypeError("new(): invalid data type 'str'")
    return int(i)


def _expand_ellipsis(idx: tuple, ndim: int) -> tuple:
    if not any(i is Ellipsis for i in idx):  # (`in` would call Tensor.__eq__)
        return idx
    used = sum(1 for i in idx if i is not None and i is not Ellipsis and not isinstance(i, bool)
               and not (isinstance(i, Tensor) and i.dtype is D.bool_) and not (
                   isinstance(i, np.ndarray) and i.dtype == np.bool_))
    # a mask indexes as many dims as it has
    used += sum(i.ndim for i in idx if (isinstance(i, Tensor) and i.dtype is D.bool_) or
                (isinstance(i, np.ndarray) and i.dtype == np.bool_))
    n_ell = sum(1 for i in idx if i is Ellipsis)
    if n_ell > 1:
        raise IndexError("an index can only have a single ellipsis ('...')")
    if n_ell == 0:
        return idx
    k = next(j for j, i in enumerate(idx) if i is Ellipsis)  # (`index` would call Tensor.__eq__)
    return idx[:k] + (slice(None),) * max(ndim - used, 0) + idx[k + 1:]


_BASIC = frozenset((slice, int, type(Ellipsis)))  # not None: NumPy's new axis has stride 0, torch's does not
_ndarray = np.ndarray
_new = object.__new__


def _basic_view(self: Tensor, index):
    """`x[1:, :2]`, `x[0]`, `x[..., 0]` with nothing to record: NumPy's basic indexing gives the
    very view torch makes (same strides and offset), so it is taken directly. None when the index
    is anything else, or NumPy refuses it (the full path below then raises torch's error)."""
    if type(index) is tuple:
        for i in index:
            t = type(i)
            if t not in _BASIC or (t is slice and i.step is not None and (type(i.step) is not int or i.step <= 0)):
                return None
    elif type(index) is int:
        index = (index,)
    elif type(index) is slice:  # x[a:b], as a training loop takes its batches
        if index.step is not None and (type(index.step) is not int or index.step <= 0):
            return None
        index = (index,)
    else:
        return None
    x = self._data
    try:
        r = x[index]
        if type(r) is not _ndarray:  # an element: NumPy copies it out, torch keeps a 0-d view
            r = x[index + (Ellipsis,)]
    except (IndexError, ValueError, TypeError, OnDevice):
        return None
    if r.ndim == 0 and x.ndim == 0:
        return None  # x[()] and x[...] of a 0-d tensor: rare, and torch's errors differ
    t = _new(Tensor)
    t._data = r
    t.dtype = self.dtype
    base = self._base
    t._base = self if base is None else base
    t._vc = self._vc
    return t


def getitem(self: Tensor, index):
    if _TRACER[0] is None and not (self._requires_grad and _grad_state["enabled"]):
        r = _basic_view(self, index)
        if r is not None:
            return r
    if type(index) is slice:  # a lone slice is always a slice op, even x[:] (torch: SliceBackward0)
        if self.ndim == 0:
            raise IndexError("slice() cannot be applied to a 0-dim tensor.")
        step = 1 if index.step is None else int(index.step)
        if step <= 0:
            raise ValueError("step must be greater than zero")
        return M.slice_dim(self, 0, index.start, index.stop, step)
    idx = index if isinstance(index, tuple) else (index,)
    if any(_is_advanced(i) for i in idx):
        return _advanced_get(self, idx)
    if len(idx) == 1 and idx[0] is Ellipsis:
        return apply(ALIAS, (self,))
    if self.ndim == 0 and len(idx) == 1 and not isinstance(idx[0], (slice, bool)) and idx[0] is not None \
            and idx[0] is not Ellipsis:
        raise IndexError("invalid index of a 0-dim tensor. Use `tensor.item()` in Python or `tensor.item<T>()` "
                         "in C++ to convert a 0-dim tensor to a number")
    pos = _index_positions(idx, self.ndim)
    idx = _expand_ellipsis(idx, self.ndim)
    n_real = sum(1 for i in idx if i is not None)
    if n_real > self.ndim:
        raise IndexError(f"too many indices for tensor of dimension {self.ndim}")
    r = self
    d = 0
    for j, i in enumerate(idx):
        if i is None:
            r = M.unsqueeze(r, d)
            d += 1
        elif isinstance(i, slice):
            if i != slice(None):
                step = 1 if i.step is None else int(i.step)
                if step <= 0:
                    raise ValueError("step must be greater than zero")
                r = M.slice_dim(r, d, i.start, i.stop, step)
            d += 1
        else:
            n = r.shape[d]
            k = _int_index(i)
            if not -n <= k < n:
                raise IndexError(f"index {k} is out of bounds for dimension {pos[j]} with size {n}")
            r = M.select(r, d, k)
    if r is self:
        return apply(ALIAS, (self,))
    return r


ALIAS = defop("alias", "view", lambda a: a[...], vjp=lambda ctx, s, g: (g,), grad_name="AliasBackward0")


def _np_index(a, index, name=None, contiguous=False):
    r = indexed(a, index)
    if contiguous:  # index_select: torch's kernel writes a row-major result
        return np.array(r, copy=True, order="C")
    return _index_layout(a, index, r)


def indexed(a, index):
    """a[index] with torch's checks and errors (NumPy's IndexErrors reworded as torch's).

    The device runs it on a stand-in with a's shape and zero strides: that gives the result's
    shape and every error without reading a value."""
    _check_masks(a.shape, index)
    try:
        return a[index]
    except IndexError as e:
        if a.size:
            raise _torch_index_error(e, a.shape, index) from None
        return a[_empty_input_index(a.shape, index)]


def _index_layout(a, index, r):
    """A fresh copy of advanced-indexing result `r`, laid out in memory as torch lays it out."""
    if r.ndim < 2 or r.size < 2:
        return np.array(r, copy=True)
    want = index_result_strides(tuple(s // a.itemsize for s in a.strides), index, r.shape)
    if want is None:
        return np.array(r, copy=True, order="C")
    out = np.lib.stride_tricks.as_strided(np.empty(r.size, r.dtype), r.shape, [s * r.itemsize for s in want])
    out[...] = r
    return out


def index_result_strides(strides, index, shape):
    """The element strides torch gives the result (of `shape`) of indexing a tensor with element
    `strides` by `index`, or None for row-major.

    torch runs the gather as an elementwise loop over the input "restrided" to the result's shape
    (stride 0 on the indexed dims) and the index tensors (broadcast to it), so the result keeps the
    input's memory order on the dims it did not index (a transposed input gives a transposed result)."""
    if len(shape) < 2 or math.prod(shape) < 2:
        return None
    parts, d = [], 0  # ("s", stride) for a dim kept whole, ("a", int array) for an index
    for i in index:
        if isinstance(i, slice):
            parts.append(("s", strides[d]))
            d += 1
        elif isinstance(i, (bool, np.bool_)):  # a new dim, indexed by [0] (or by nothing)
            parts.append(("a", np.zeros(1 if i else 0, np.int64)))
        elif isinstance(i, np.ndarray) and i.dtype == np.bool_:
            parts.extend(("a", nz) for nz in np.nonzero(i))
            d += i.ndim
        else:
            parts.append(("a", np.asarray(i)))
            d += 1
    parts.extend(("s", strides[k]) for k in range(d, len(strides)))
    adv = [k for k, (kind, _) in enumerate(parts) if kind == "a"]
    arrays = [v for kind, v in parts if kind == "a"]
    try:
        bshape = np.broadcast_shapes(*(v.shape for v in arrays))
    except ValueError:
        return None
    nb = len(bshape)
    kept = [v for kind, v in parts if kind == "s"]
    if adv == list(range(adv[0], adv[0] + len(adv))):  # adjacent: the index dims replace them in place
        lead = sum(1 for kind, _ in parts[:adv[0]] if kind == "s")
    else:  # separated: the index dims go first
        lead = 0
    self_st = kept[:lead] + [0] * nb + kept[lead:]
    shape = tuple(shape)
    if len(self_st) != len(shape):
        return None
    operands = [(shape, tuple(self_st))]
    for v in arrays:
        bst = [s // v.itemsize for s in np.broadcast_to(v, bshape).strides] if v.size else [0] * nb
        operands.append((shape, tuple([0] * lead + bst + [0] * (len(shape) - lead - nb))))
    return pointwise_strides(shape, operands)


def _torch_index_error(e, shape, index=None):
    msg = str(e)
    import re

    m = re.match(r"index (-?\d+) is out of bounds for axis (\d+) with size (\d+)", msg)
    if m:
        dim = int(m.group(2))
        if isinstance(index, tuple):
            # torch counts the index tensors, not the dims: x[:, :, [5]] is out of bounds "for dimension 0"
            axis, dim = 0, None
            for k, i in enumerate(index):
                nd = i.ndim if isinstance(i, np.ndarray) and i.dtype == np.bool_ else 1
                if axis <= int(m.group(2)) < axis + nd:
                    dim = sum(x.ndim if isinstance(x, np.ndarray) and x.dtype == np.bool_ else 1
                              for x in index[:k] if not isinstance(x, slice))  # (a mask counts its dims)
                    break
                axis += nd
            dim = int(m.group(2)) if dim is None else dim
        return IndexError(f"index {m.group(1)} is out of bounds for dimension {dim} with size {m.group(3)}")
    m = re.match(r"boolean index did not match indexed array along (?:axis|dimension) (\d+); size of (?:axis|dimension) is (\d+) but size of corresponding boolean (?:axis|dimension) is (\d+)", msg)
    if m:
        return IndexError(f"The shape of the mask [{m.group(3)}] at index {m.group(1)} does not match the shape of "
                          f"the indexed tensor [{m.group(2)}] at index {m.group(1)}")
    if "too many indices" in msg:
        return IndexError(f"too many indices for tensor of dimension {len(shape)}")
    if "shape mismatch" in msg:  # NumPy writes "(2,) (3,)", torch "[2], [3]"
        shapes = re.findall(r"\(([\d, ]*)\)", msg.split("shapes", 1)[-1])
        return IndexError("shape mismatch: indexing tensors could not be broadcast together with shapes " +
                          ", ".join("[" + ", ".join(x.strip() for x in sh.split(",") if x.strip()) + "]"
                                    for sh in shapes))
    return IndexError(msg)


def _empty_input_index(shape, index):
    """torch checks no bounds when the input is empty, except on a dim of size 0; clip the indices so
    NumPy computes the (empty) result's shape."""
    out, d = [], 0
    for i in index:
        if isinstance(i, np.ndarray) and i.dtype != np.bool_:
            n = shape[d]
            if n == 0 and i.size:
                raise IndexError("index is out of bounds for dimension with size 0")
            out.append(np.clip(i, -n, n - 1) if n else i)
            d += 1
        else:
            out.append(i)
            if isinstance(i, np.ndarray):
                d += i.ndim
            elif i is not None and not isinstance(i, (bool, np.bool_)):
                d += 1
    return tuple(out)


def _check_masks(shape, index) -> None:
    """torch's error for a bool mask whose shape does not match the dims it indexes."""
    d = 0
    for i in index:
        if isinstance(i, np.ndarray) and i.dtype == np.bool_:
            for j, n in enumerate(i.shape):
                if d + j >= len(shape) or n != shape[d + j]:
                    raise IndexError(f"The shape of the mask [{', '.join(map(str, i.shape))}] at index {j} does not "
                                     f"match the shape of the indexed tensor [{', '.join(map(str, shape))}] at index "
                                     f"{d + j}")
            d += i.ndim
        elif i is not None and not isinstance(i, (bool, np.bool_)):
            d += 1


def _vjp_index(ctx, saved, g):
    from ..creation import zeros

    return (index_put(zeros(ctx.shapes[0], dtype=g.dtype, device=g.device), ctx.index, g, accumulate=True),)


INDEX = defop("index", "index", _np_index, vjp=_vjp_index, grad_name=lambda a: a.get("name", "IndexBackward0"))


def _advanced_get(self, idx):
    """Advanced indexing as torch does it: ints, slices and None first, as views (select,
    slice, unsqueeze), then one `index` op over the tensor/list/mask indices that remain.
    (This is also where torch and NumPy differ: x[0, :, [0, 1]] has shape (3, 2) in torch.)"""
    if _TRACER[0] is not None:
        e = _expand_ellipsis(idx, self.ndim)
        adv = [j for j, i in enumerate(e) if _is_advanced(i)]
        if len(adv) == 1 and _traced_int_index(e[adv[0]]):
            k = adv[0]
            r, _ = _split_basic(self, e[:k] + (slice(None),) + e[k + 1:])
            d = sum(1 for i in e[:k] if i is None or isinstance(i, slice))
            return _traced_take(r, d, e[k])
    r, rest = _split_basic(self, idx)
    return apply(INDEX, (r,), {"index": rest})


def _traced_int_index(i) -> bool:
    return isinstance(i, Tensor) and i._sym is not None and i.dtype.category == D._INT and i.dtype is not D.uint8


def _traced_take(r, d: int, i):
    """r indexed along dim d by a traced integer tensor i (x[i], x[:, i], index_select): tracing has no
    index values to bake into an `index` op, so this is a gather, which takes its index as a graph input.
    Negative indices count from the end, as in x[i]."""
    from .pointwise import where

    if r.ndim == 0:
        raise IndexError("too many indices for tensor of dimension 0")
    n = r.shape[d]
    i = i.long()
    i = where(i < 0, i + n, i)
    flat = i.reshape(-1)
    shape = list(r.shape)
    shape[d] = flat.shape[0]
    idx = flat.reshape([1] * d + [-1] + [1] * (r.ndim - d - 1)).expand(shape)
    out = gather(r, d, idx)
    return out.reshape(tuple(r.shape[:d]) + tuple(i.shape) + tuple(r.shape[d + 1:]))


def _split_basic(self, idx):
    """(view, rest): the view after the basic parts of `idx` (ints, slices, None) and the index
    the advanced step gets (full slices where the basic parts were)."""
    pos = _index_positions(idx, self.ndim)
    idx = _expand_ellipsis(idx, self.ndim)
    r = self
    d = 0
    rest = []  # the index the `index` op gets: full slices where the basic parts were
    for j, i in enumerate(idx):
        if i is None:
            r = M.unsqueeze(r, d)
            rest.append(slice(None))
            d += 1
        elif isinstance(i, slice):
            if d >= r.ndim:
                raise IndexError(f"too many indices for tensor of dimension {self.ndim}")
            if i != slice(None):
                step = 1 if i.step is None else int(i.step)
                if step <= 0:
                    raise ValueError("step must be greater than zero")
                r = M.slice_dim(r, d, i.start, i.stop, step)
            rest.append(slice(None))
            d += 1
        elif _is_advanced(i):
            a = _to_np_index(i)
            rest.append(a)
            d += a.ndim if isinstance(a, np.ndarray) and a.dtype == np.bool_ else (0 if isinstance(a, bool) else 1)
        else:
            if d >= r.ndim:
                raise IndexError(f"too many indices for tensor of dimension {self.ndim}")
            n = r.shape[d]
            k = _int_index(i)
            if not -n <= k < n:
                raise IndexError(f"index {k} is out of bounds for dimension {pos[j]} with size {n}")
            r = M.select(r, d, k)
    while rest and type(rest[-1]) is slice:
        rest.pop()
    return r, tuple(rest)


# ---- index_put (advanced assignment) ------------------------------------------------------
def _np_index_put(a, v, index, accumulate, contiguous=False):
    # torch's out-of-place index_put clones the input keeping its layout (index_add: row-major)
    out = np.array(a, copy=True, order="C") if contiguous else _np_preserve_copy(a)
    try:
        if accumulate:
            np.add.at(out, index, v)
        else:
            out[index] = v
    except IndexError as e:
        raise _torch_index_error(e, a.shape, index) from None
    except ValueError as e:
        raise RuntimeError(f"shape mismatch: value tensor of shape {list(np.shape(v))} cannot be broadcast to "
                           f"indexing result of shape {list(a[index].shape)}") from None
    return out


def _vjp_index_put(ctx, saved, g):
    gself = None
    if ctx.needs[0]:
        gself = g if ctx.accumulate else index_put(g, ctx.index, 0.0)
    gv = None
    if len(ctx.needs) > 1 and ctx.needs[1]:
        gv = sum_to(apply(INDEX, (g,), {"index": ctx.index}), ctx.shapes[1])
    return gself, gv


INDEX_PUT = defop("index_put", "index", _np_index_put, dtype=lambda args, attrs: args[0].dtype,
                  vjp=_vjp_index_put, grad_name="IndexPutBackward0")


def _single_mask(idx, rest, value):
    """The mask tensor when the only advanced index is one bool/uint8 tensor and the value has one element."""
    if isinstance(value, Tensor):
        if value.numel() != 1:
            return None
    elif not isinstance(value, (int, float, bool)):
        return None
    adv = [i for i in idx if _is_advanced(i)]
    if len(adv) == 1 and isinstance(adv[0], Tensor) and adv[0].dtype in (D.bool_, D.uint8):
        return adv[0]
    return None


def _check_put_dtype(self, values) -> None:
    if isinstance(values, Tensor) and values.dtype is not self.dtype:
        raise RuntimeError(f"Index put requires the source and destination dtypes match, got {self.dtype.short} "
                           f"for the destination and {values.dtype.short} for the source.")


def index_put(self, indices, values, accumulate=False):
    _check_put_dtype(self, values)
    return _index_put(self, indices, values, accumulate)


def _index_put(self, indices, values, accumulate=False):
    """index_put for internal callers, which may pass values of another dtype (cast here)."""
    np_idx = tuple(_to_np_index(i) for i in (indices if isinstance(indices, tuple) else (indices,)))
    if isinstance(values, Tensor) and values.dtype is not self.dtype:
        values = values.to(self.dtype)
    return apply(INDEX_PUT, (self, values), {"index": np_idx, "accumulate": accumulate})


def setitem(self: Tensor, index, value) -> None:
    from .inplace import check_writable, commit
    from ..autograd import grad_mode

    if not isinstance(value, Tensor) and self.dtype not in (D.float16, D.bfloat16):
        # torch checks that a Python number fits the target (x[0] = 300 on int8 raises); it converts
        # through float for half and bfloat16, which makes 1e5 inf there instead
        D.check_scalar_fits(value, self.dtype)
    idx = index if isinstance(index, tuple) else (index,)
    # the write goes to the view the basic parts of the index make, so the leaf rules (and
    # autograd: CopySlices on the base) apply to that view; views are made with grad mode as it is
    if any(_is_advanced(i) for i in idx):
        if len(idx) == 1 and idx[0] is False:  # selects nothing: torch writes nothing (the version stays)
            return
        if len(idx) == 1 and idx[0] is True:  # x[True] = v copies into x.unsqueeze(0)
            copy_(M.unsqueeze(self, 0), value)
            return
        # like getitem: ints, slices and None first (a view), then index_put_ on that view
        target, rest = _split_basic(self, idx)
        check_writable(target)
        mask = _single_mask(idx, rest, value)
        needs_graph = grad_mode.is_grad_enabled() and (target.requires_grad or getattr(value, "requires_grad", False))
        if mask is not None and not needs_graph:  # torch's index_put_ hands one mask and a one-element value to masked_fill_
            from .inplace import inplace

            lead = 0
            while type(rest[lead]) is slice:
                lead += 1
            for j, n in enumerate(mask.shape):
                if target.ndim <= lead + j or n != target.shape[lead + j]:
                    raise IndexError(f"The shape of the mask [{', '.join(map(str, mask.shape))}] at index {j} does not "
                                     f"match the shape of the indexed tensor [{', '.join(map(str, target.shape))}] at "
                                     f"index {lead + j}")
            m = mask.reshape(tuple(mask.shape) + (1,) * (target.ndim - lead - mask.ndim))
            inplace(masked_fill)(target, m, value.item() if isinstance(value, Tensor) else value)
            return
        _check_put_dtype(self, value)
        commit(target, _index_put(target, rest, _strip_ones(value)))
        return
    target, _ = _split_basic(self, idx)  # full slices and `...` leave the tensor itself
    if isinstance(value, Tensor) and value.shape != target.shape:
        value = _strip_ones(value)
        if value.ndim <= target.ndim and value.shape != target.shape:
            # torch expands the value to the target: its error is expand's ("The expanded size of the
            # tensor (3) must match the existing size (4) ..."), not a broadcast error
            M.expand(value, tuple(target.shape))
    copy_(target, value)


def _strip_ones(value):
    """torch's setitem views the value without its leading size-1 dims (so x[0] = v works for v of
    shape (1, n) and x of shape (m, n))."""
    if not isinstance(value, Tensor) or not value.ndim or value.shape[0] != 1:
        return value
    k = 0
    while k < value.ndim and value.shape[k] == 1:
        k += 1
    return value.view(tuple(value.shape[k:]))


# ---- copy_ / fill_ --------------------------------------------------------------------
def _np_copy(dst, src):
    return np.broadcast_to(src, dst.shape).copy() if isinstance(src, np.ndarray) else np.full(dst.shape, src)


def _vjp_copy(ctx, saved, g):
    gsrc = None
    if len(ctx.needs) > 1 and ctx.needs[1]:
        gsrc = sum_to(g, ctx.shapes[1]).to(ctx.dtypes[1])
    return (g * 0.0 if ctx.needs[0] else None), gsrc


COPY = defop("copy", "movement", _np_copy, dtype=lambda args, attrs: args[0].dtype, vjp=_vjp_copy,
             grad_name=lambda attrs: attrs.get("name", "CopyBackwards"))  # fill_/zero_ pass torch's names
_NO_ATTRS: dict = {}


def copy_(self: Tensor, src, non_blocking=False, *, _grad_name=None) -> Tensor:
    from .inplace import check_writable, commit
    from .shape_util import broadcast_shapes

    # fill_ and zero_ (which come here with a Python number or a 0-d tensor) may write an expanded tensor
    check_writable(self, allow_overlap=_grad_name is not None and _grad_name.startswith(("Fill", "Zero")))
    if isinstance(src, Tensor):
        if src.shape != self.shape:  # src must broadcast to self's shape: torch's two errors
            b = broadcast_shapes(self.shape, src.shape)
            if tuple(b) != tuple(self.shape):
                raise RuntimeError(f"output with shape [{', '.join(map(str, self.shape))}] doesn't match the "
                                   f"broadcast shape [{', '.join(map(str, b))}]")
        r = apply(COPY, (self, src), {"name": _grad_name} if _grad_name else _NO_ATTRS, dtype=self.dtype,
                  compute=None)
    else:
        r = apply(COPY, (self, src), {"name": _grad_name} if _grad_name else _NO_ATTRS, dtype=self.dtype)
    # copy_ may narrow the dtype (float -> int truncates), unlike arithmetic in-place ops
    r.dtype = self.dtype
    from .inplace import _write, _rebase

    _write(self, r)
    if r.grad_fn is not None:
        _rebase(self, r)
    return self


def fill_(self: Tensor, value) -> Tensor:
    if isinstance(value, Tensor) and value.ndim:
        raise RuntimeError(
            f"fill_ only supports 0-dimension value tensor but got tensor with {value.ndim} dimensions.")
    if not isinstance(value, Tensor):
        D.check_scalar_fits(value, self.dtype, self.numel())  # torch: fill_(300) on int8 is an overflow error, not a wrap
    return copy_(self, value, _grad_name="FillBackward3" if isinstance(value, Tensor) else "FillBackward2")


def zero_(self: Tensor) -> Tensor:
    return copy_(self, 0, _grad_name="ZeroBackward0")


# ---- gather / scatter / index_select -------------------------------------------------------
def _check_index(index, name):
    if not isinstance(index, Tensor) or index.dtype not in (D.int64, D.int32):
        raise RuntimeError(f"{name}(): Expected dtype int32/int64 for index")


def _check_bounds(idx, dim, n):
    """gather/scatter indices must lie in [0, n): torch does not wrap negative ones."""
    bad = (idx < 0) | (idx >= n)
    if bad.any():
        raise RuntimeError(f"index {idx.flat[int(np.argmax(bad))]} is out of bounds for dimension {dim} with size {n}")


def _np_gather(a, idx, dim):
    if a.ndim != idx.ndim:  # a 0-d input or index (the other at most 1-d) gathers as vectors do
        return _np_gather(a.reshape(-1), idx.reshape(-1), 0).reshape(idx.shape)
    if a.ndim == 0:
        return _np_gather(a.reshape(1), idx.reshape(1), 0).reshape(())
    _check_bounds(idx, dim, a.shape[dim])
    sl = tuple(slice(0, n) for n in idx.shape)
    src = a[tuple(slice(0, n) if d != dim else slice(None) for d, n in enumerate(idx.shape))]
    return np.take_along_axis(src, idx, axis=dim)


def _vjp_gather(ctx, saved, g):
    from ..creation import zeros

    (idx,) = saved
    shape = ctx.shapes[0]
    if len(shape) != idx.ndim:  # gathered as vectors: add back as vectors
        flat = zeros((max(1, math.prod(shape)),), dtype=g.dtype, device=g.device)
        return scatter_add(flat, 0, idx.reshape(-1), g.reshape(-1)).reshape(shape), None
    return scatter_add(zeros(shape, dtype=g.dtype, device=g.device), ctx.dim, idx, g), None


GATHER = defop("gather", "index", _np_gather, dtype=lambda args, attrs: args[0].dtype, vjp=_vjp_gather, save=(1,))


def gather(input, dim, index, *, sparse_grad=False, out=None):
    _check_index(index, "gather")
    if index.numel() == 0:  # nothing to gather: torch checks nothing else
        # an empty result that is still on input's graph (torch's has a GatherBackward0 too)
        return input.reshape(-1)[:0].reshape(index.shape).clone()
    d = wrap_dim(dim, input.ndim)
    if index.ndim > 1 and input.ndim != index.ndim:
        raise RuntimeError("Index tensor must have the same number of dimensions as input tensor")
    if input.ndim == 0 or index.ndim != input.ndim and index.ndim <= 1 and input.ndim <= 1:
        # a 0-d input (or index) gathers like a vector (the kernels reshape; one GatherBackward0 node)
        return with_out(out, apply(GATHER, (input, index), {"dim": 0}))
    if index.ndim != input.ndim and not (index.ndim <= 1 and input.ndim <= 1):
        raise RuntimeError("Index tensor must have the same number of dimensions as input tensor")
    for k in range(index.ndim):
        if k != d and index.shape[k] > input.shape[k]:
            raise RuntimeError(
                f"Size does not match at dimension {k} expected index {list(index.shape)} to be no larger than "
                f"self {list(input.shape)} apart from dimension {d}")
    return with_out(out, apply(GATHER, (input, index), {"dim": d}))


def _scatter_positions(shape, idx, dim):
    grids = list(np.meshgrid(*[np.arange(n) for n in idx.shape], indexing="ij"))
    grids[dim] = idx
    return tuple(grids)


def _np_scatter(a, idx, src, dim, reduce=None):
    if a.ndim == 0:  # 0-d tensors scatter as one-element vectors
        if isinstance(src, np.ndarray):
            src = src.reshape(-1)
        return _np_scatter(a.reshape(1), idx.reshape(-1), src, 0, reduce).reshape(())
    out = a.copy()
    _check_bounds(idx, dim, a.shape[dim])
    pos = _scatter_positions(a.shape, idx, dim)
    if isinstance(src, np.ndarray):
        vals = src[tuple(slice(0, n) for n in idx.shape)]
    else:
        vals = src
    if reduce == "add":
        np.add.at(out, pos, vals)
    elif reduce == "multiply":
        np.multiply.at(out, pos, vals)
    else:
        out[pos] = vals
    return out


def _vjp_scatter(ctx, saved, g):
    (idx,) = saved
    gself = g.scatter(ctx.dim, idx, 0.0) if ctx.needs[0] else None
    gsrc = None
    if len(ctx.needs) > 2 and ctx.needs[2]:
        gsrc = _pad_to(g.gather(ctx.dim, idx), ctx.shapes[2])
    return gself, None, gsrc


def _vjp_scatter_add(ctx, saved, g):
    (idx,) = saved
    gsrc = None
    if len(ctx.needs) > 2 and ctx.needs[2]:
        gsrc = _pad_to(g.gather(ctx.dim, idx), ctx.shapes[2])
    return (g if ctx.needs[0] else None), None, gsrc


def _pad_to(t, shape):
    """The gradient of src: `t` (the gathered gradient, index-shaped) in src's first positions, zeros
    elsewhere. A 0-d t or src (0-d scatters run as vectors) takes src's rank first."""
    if tuple(t.shape) == tuple(shape):
        return t
    if t.ndim != len(shape):
        t = t.reshape(-1) if len(shape) == 1 else t.reshape(()) if not shape and t.numel() == 1 else t
    if tuple(t.shape) == tuple(shape):
        return t
    from ..creation import zeros

    z = zeros(shape, dtype=t.dtype, device=t.device)
    return index_put(z, tuple(slice(0, n) for n in t.shape), t)


SCATTER = defop("scatter", "index", _np_scatter, dtype=lambda args, attrs: args[0].dtype, vjp=_vjp_scatter,
                save=(1,), grad_name=lambda a: "ScatterBackward1" if a.get("scalar") else "ScatterBackward0")
SCATTER_ADD = defop("scatter_add", "index", _np_scatter, dtype=lambda args, attrs: args[0].dtype,
                    vjp=_vjp_scatter_add, save=(1,))


def _scatter_shape_check(input, d, index, src):
    """torch's scatter_shape_check: index has self's dims (a 0-d counts as 1-d) and is no larger than
    self apart from `d`, nor than a tensor src anywhere (NumPy would silently write a part or fail)."""
    if index.numel() == 0:
        return
    if max(input.ndim, 1) != max(index.ndim, 1):
        raise RuntimeError("Index tensor must have the same number of dimensions as self tensor")

    def size(t, k):
        if t.ndim == 0:
            wrap_dim(k, 0)
            return 1
        return t.shape[wrap_dim(k, t.ndim)]

    n = max(input.ndim, 1)
    wrong = any(k != d and size(index, k) > size(input, k) for k in range(n))
    if not wrong and isinstance(src, Tensor):
        wrong = any(size(index, k) > size(src, k) for k in range(n))
    if wrong:
        msg = (f"Expected index {list(index.shape)} to be no larger than self {list(input.shape)} apart from "
               f"dimension {d}")
        if isinstance(src, Tensor):
            msg += f" and to be no larger size than src {list(src.shape)}"
        raise RuntimeError(msg)


def scatter(input, dim, index, src=None, *, value=None, reduce=None):
    _check_index(index, "scatter")
    if isinstance(src, Tensor) and src.dtype is not input.dtype:
        raise RuntimeError("scatter(): Expected self.dtype to be equal to src.dtype")
    if input.ndim == 1 and index.ndim == 0:  # a 0-d index scatters as a one-element vector
        index = index.reshape(1)
        src = src.reshape(1) if isinstance(src, Tensor) and src.ndim == 0 else src
    d = wrap_dim(dim, input.ndim)  # (a 0-d input scatters as a one-element vector: the kernels reshape)
    if src is None:
        src = value
    _scatter_shape_check(input, d, index, src)
    if isinstance(src, Tensor):
        return apply(SCATTER, (input, index, src), {"dim": d, "reduce": reduce})
    return apply(SCATTER, (input, index, src), {"dim": d, "reduce": reduce, "scalar": True})


def scatter_add(input, dim, index, src):
    _check_index(index, "scatter")  # (torch words scatter_add's checks as scatter's)
    if src.dtype is not input.dtype:
        raise RuntimeError("scatter(): Expected self.dtype to be equal to src.dtype")
    if input.ndim == 1 and index.ndim == 0:  # a 0-d index scatters as a one-element vector
        index = index.reshape(1)
        src = src.reshape(1) if src.ndim == 0 else src
    d = wrap_dim(dim, input.ndim)
    _scatter_shape_check(input, d, index, src)
    return apply(SCATTER_ADD, (input, index, src), {"dim": d, "reduce": "add"})


def scatter_reduce(input, dim, index, src, reduce, *, include_self=True):
    if reduce == "sum":
        return scatter_add(input, dim, index, src)
    raise NotImplementedError(f"scatter_reduce with reduce={reduce!r} is not supported yet")


def index_select(input, dim, index, *, out=None):
    if not isinstance(index, Tensor) or index.dtype not in (D.int32, D.int64):
        raise RuntimeError("index_select(): Expected dtype int32 or int64 for index")
    if index.ndim > 1:
        raise IndexError("index_select(): Index is supposed to be a vector")
    d = wrap_dim(dim, input.ndim)
    if _traced_int_index(index):  # traced: no values to check or to bake in (see _traced_take)
        r = _traced_take(input.reshape(1) if input.ndim == 0 else input, d, index.reshape(-1))
        r = r.reshape(()) if input.ndim == 0 else r
        if out is not None:
            from .inplace import write_out

            return write_out(out, r)
        return r
    n = input.shape[d] if input.ndim else 1
    iv = index._values().reshape(-1)  # (host values: a CUDA index is copied over for the checks)
    if n == 0 and iv.size and input.ndim > 1:
        raise RuntimeError("index_select(): self indexing axis dim should be positive")
    if input.numel() == 0 and input.ndim > 1 and iv.size and (iv.min() < 0 or iv.max() >= n):
        bad = iv[(iv < 0) | (iv >= n)][0]  # (an empty input takes another kernel in torch, worded so)
        raise RuntimeError(f"INDICES element is out of DATA bounds, id={bad} axis_dim={n}")
    if iv.size and (iv.min() < 0 or iv.max() >= n):
        bad = iv.max() if iv.max() >= n else iv.min()
        raise IndexError(f"index out of range in self")
    idx = (slice(None),) * d + (iv.astype(np.int64),)
    attrs = {"index": idx, "name": "IndexSelectBackward0", "contiguous": True}
    r = apply(INDEX, (input,), attrs) if input.ndim else apply(INDEX, (input.reshape(1),), attrs).reshape(())
    if out is not None:
        from .inplace import write_out

        return write_out(out, r)
    return r


def _np_take(a, idx):
    flat = a.reshape(-1)
    n = flat.size
    if idx.size and (idx.min() < -n or idx.max() >= n):
        bad = idx.max() if idx.max() >= n else idx.min()
        raise IndexError(f"out of range: tried to access index {bad} on a tensor of {n} elements.")
    return flat[idx]


def _vjp_take(ctx, saved, g):
    from ..creation import zeros

    (idx,) = saved
    n = 1
    for s in ctx.shapes[0]:
        n *= s
    flat = index_put(zeros((n,), dtype=g.dtype, device=g.device), (_host(idx),), g, accumulate=True)
    return flat.reshape(ctx.shapes[0]), None


TAKE = defop("take", "index", _np_take, dtype=lambda args, attrs: args[0].dtype, vjp=_vjp_take, save=(1,),
             edges=(0,))


def take(input, index):
    """Elements of the flattened input at `index` (the result has index's shape)."""
    if not isinstance(index, Tensor) or index.dtype is not D.int64:
        raise RuntimeError("take(): Expected a long tensor for index, but got "
                           f"{index.dtype.short if isinstance(index, Tensor) else type(index).__name__}")
    return apply(TAKE, (input, index))


def masked_fill(input, mask, value):
    if not isinstance(mask, Tensor) or mask.dtype is not D.bool_:
        from .pointwise import _c_name

        raise RuntimeError(f"masked_fill_ only supports boolean masks, but got mask with dtype "
                           f"{_c_name(mask.dtype) if isinstance(mask, Tensor) else type(mask).__name__}")
    if isinstance(value, Tensor) and value.ndim:
        raise RuntimeError(
            f"masked_fill_ only supports a 0-dimensional value tensor, but got tensor with {value.ndim} dimension(s).")
    from .shape_util import broadcast_shapes

    broadcast_shapes(mask.shape, input.shape)  # (torch names the mask "a")
    # the fill value must fit the tensor's dtype (a 0-d tensor value is checked by its item too)
    D.check_scalar_fits(value.item() if isinstance(value, Tensor) else value, input.dtype)
    r = apply(MASKED_FILL, (input, mask, value), dtype=input.dtype)
    if _TRACER[0] is not None:  # traced: the layout is the graph value's, so row-major is an op there
        return r if r.is_contiguous() else r.contiguous()
    d = r._data  # torch's out-of-place masked_fill is row-major (r is brand new, so relaying it out is safe)
    if type(d) is np.ndarray:
        if not d.flags.c_contiguous:
            r._data = np.ascontiguousarray(d)
    elif not d.contiguous:  # device memory (whose flags never say contiguous): a copy kernel
        from ..kernels.cuda.eager import copy_array

        r._data = copy_array(d)
    return r


def _np_masked_fill(a, m, v):
    if a.dtype.kind in "iu" and isinstance(v, (int, float, np.number)) and not isinstance(v, bool):
        # the value was range-checked already; -1 into uint8 wraps to 255, a float truncates
        v = np.array(int(v) % (1 << 64), dtype=np.uint64).astype(a.dtype) if np.isfinite(v) else v
    with np.errstate(invalid="ignore", over="ignore"):
        return np.where(m, np.asarray(v).astype(a.dtype), a)


def _vjp_masked_fill(ctx, saved, g):
    (m,) = saved
    from .pointwise import where

    gin = sum_to(where(m, g * 0.0, g), ctx.shapes[0]) if ctx.needs[0] else None
    gv = None
    if len(ctx.needs) > 2 and ctx.needs[2]:
        gv = where(m, g, g * 0.0).sum()
    return gin, None, gv


MASKED_FILL = defop("masked_fill", "pointwise", _np_masked_fill, vjp=_vjp_masked_fill, save=(1,),
                    lowering="tl.where({1}, {2}, {0})")


def _np_masked_select(a, m):
    shape = np.broadcast_shapes(a.shape, m.shape)
    return np.broadcast_to(a, shape)[np.broadcast_to(m, shape)]


def _vjp_masked_select(ctx, saved, g):
    from ..creation import zeros
    from .shape_util import broadcast_shapes

    (m,) = saved
    shape = broadcast_shapes(ctx.shapes[0], ctx.shapes[1])
    full = index_put(zeros(shape, dtype=g.dtype, device=g.device), (np.broadcast_to(_host(m), shape),), g)
    return sum_to(full, ctx.shapes[0]), None


MASKED_SELECT = defop("masked_select", "index", _np_masked_select, dtype=lambda args, attrs: args[0].dtype,
                      vjp=_vjp_masked_select, save=(1,), edges=(0,))


def masked_select(input, mask):
    if mask.dtype is not D.bool_:
        raise RuntimeError(f"masked_select: expected BoolTensor for mask")
    from .shape_util import broadcast_shapes

    broadcast_shapes(mask.shape, input.shape)  # (torch names the mask "a")
    return apply(MASKED_SELECT, (input, mask))


def nonzero(input, *, as_tuple=False):
    from ..creation import from_values

    nz = np.nonzero(input._values() if input.ndim else input._values().reshape(1))
    if as_tuple:
        return tuple(from_values(np.ascontiguousarray(x, dtype=np.int64), D.int64) for x in nz)
    if input.ndim == 0:
        return from_values(np.zeros((int(bool(input.item())), 0), dtype=np.int64), D.int64)
    # torch stores the (n, ndim) result column by column: strides (1, n)
    return from_values(np.stack(nz, axis=0).astype(np.int64).T, D.int64)


def argwhere(input):
    return nonzero(input)


def _np_index_fill(a, v, index):
    out = _np_preserve_copy(a)  # torch's index_fill keeps the input's layout
    out[index] = v
    return out


def _vjp_index_fill(ctx, saved, g):
    gin = index_put(g, ctx.index, 0.0) if ctx.needs[0] else None
    gv = None
    if len(ctx.needs) > 1 and ctx.needs[1]:
        gv = apply(INDEX, (g,), {"index": ctx.index}).sum()
    return (gin, gv) if len(ctx.needs) > 1 else (gin,)


INDEX_FILL = defop("index_fill", "index", _np_index_fill, dtype=lambda args, attrs: args[0].dtype,
                   vjp=_vjp_index_fill, grad_name=name_by_args(
                       lambda attrs, args: "IndexFillBackward1" if isinstance(args[1], Tensor) else
                       "IndexFillBackward0"))


def _np_preserve_copy(a):
    from .movement import _np_preserve_copy as copy

    return copy(a)


def index_fill(input, dim, index, value):
    # torch's checks, in its order (NumPy would take a float index or word the bounds error its own way)
    if not isinstance(index, Tensor) or index.dtype is not D.int64:
        raise IndexError("index_fill_(): Expected dtype int64 for index.")
    if isinstance(value, Tensor) and value.ndim:
        raise RuntimeError(f"index_fill_ only supports a 0-dimensional value tensor, but got tensor with "
                           f"{value.ndim} dimension(s).")
    if index.ndim > 1:
        raise RuntimeError("Index has to be a vector/scalar")
    d = wrap_dim(dim, input.ndim)
    iv = _host(index).astype(np.int64).reshape(-1)
    n = input.shape[d] if input.ndim else 1
    bad = iv[(iv < -n) | (iv >= n)]
    if bad.size:
        raise IndexError(f"index {bad[0]} is out of bounds for dimension {d} with size {n}")
    idx = (slice(None),) * d + (iv,)
    if not isinstance(value, Tensor):
        D.check_scalar_fits(value, input.dtype)
        if input.dtype.category == D._INT and isinstance(value, int):
            value = D.wrap_int(value, input.dtype)  # -2 into uint8 is 254, as torch (NumPy refuses it)
    if isinstance(value, Tensor) and value.dtype is not input.dtype:
        value = value.to(input.dtype)
    return apply(INDEX_FILL, (input, value), {"index": idx})


def _np_index_add(a, src, index, alpha=1):
    out = a.copy()
    np.add.at(out, index, src * alpha if alpha != 1 else src)
    return out


def _vjp_index_add(ctx, saved, g):
    gsrc = None
    if ctx.needs[1]:
        gsrc = apply(INDEX, (g,), {"index": ctx.index})
        if ctx.alpha != 1:
            gsrc = gsrc * ctx.alpha
        gsrc = sum_to(gsrc, ctx.shapes[1])
    return (g if ctx.needs[0] else None), gsrc


INDEX_ADD = defop("index_add", "index", _np_index_add, dtype=lambda args, attrs: args[0].dtype,
                  cast_inputs=True, vjp=_vjp_index_add)


def index_add(input, dim, index, source, *, alpha=1):
    # torch's index_func_meta_impl checks, in its order (NumPy would broadcast, or fail in its own words)
    if index.ndim > 1:
        raise IndexError(f"index_add_(): Index is supposed to be a vector, but got dim: {index.ndim} with type: "
                         f"{index.dtype.short} and size: {list(index.shape)}")
    if index.dtype not in (D.int32, D.int64):
        raise RuntimeError(f"index_add_(): Expected dtype int32/int64 for index but got: {index.dtype.short}")
    if source.dtype is not input.dtype:
        raise RuntimeError(f"index_add_(): self ({input.dtype.short}) and source ({source.dtype.short}) must have "
                           "the same scalar type")
    if input.ndim == 0:  # a 0-d tensor adds as a one-element vector
        wrap_dim(dim, 0)
        return index_add(input.reshape(1), 0, index, source.reshape(1) if source.ndim == 0 else source,
                         alpha=alpha).reshape(())
    d = wrap_dim(dim, input.ndim)
    if d != 0 and d >= source.ndim:
        raise RuntimeError(f"index_add_(): Indexing dim {d} is out of bounds of the source tensor with dim "
                           f"{source.ndim}")
    ns = source.shape[d] if source.ndim else 1
    if index.numel() != ns:
        raise RuntimeError(f"index_add_(): Number of indices ({index.numel()}) should be equal to source.size(dim): "
                           f"({ns}), for dim: {d}")
    ss, xs = list(input.shape), list(source.shape)
    if source.ndim and input.ndim:
        del ss[d], xs[d]
    if ss != xs:
        raise RuntimeError(f"source tensor shape must match self tensor shape, excluding the specified dimension. "
                           f"Got self.shape = {list(input.shape)} source.shape = {list(source.shape)}")
    iv = _host(index).astype(np.int64).reshape(-1)
    n = input.shape[d] if input.ndim else 1
    bad = iv[(iv < 0) | (iv >= n)]  # (index_add does not wrap negative indices)
    if bad.size:
        raise RuntimeError(f"index {bad[0]} is out of bounds for dimension {d} with size {n}")
    idx = (slice(None),) * d + (iv,)
    return apply(INDEX_ADD, (input, source), {"index": idx, "alpha": alpha})


# ---- autograd: which arguments torch lists in next_functions --------------------------------
# indices and masks are never differentiable, so torch leaves them out
GATHER.edges = (0,)
INDEX_PUT.edges = (0, 1)  # a Python number value is wrapped into a tensor by torch: (None, 0)
SCATTER.edges = lambda args, attrs: (0, 2) if isinstance(args[2], Tensor) else (0,)
SCATTER_ADD.edges = (0, 2)
MASKED_FILL.edges = lambda args, attrs: (0, 2) if isinstance(args[2], Tensor) else (0,)
MASKED_FILL.grad_name = name_by_args(lambda attrs, args: "MaskedFillBackward1" if isinstance(args[2], Tensor)
                                     else "MaskedFillBackward0")


# ---- sort / argsort / topk -------------------------------------------------------------------------
def _np_argsort(x, dim, descending):
    """Stable sort order along dim, NaN ordered above every number (as torch orders it).
    Descending keeps ties in index order: the stable ascending order of the reversed row, reversed."""
    if x.ndim == 0:
        return np.zeros((), np.int64)
    out = np.empty_like(x, dtype=np.int64)  # (torch's results keep a permuted input's layout)
    if not descending:
        out[...] = np.argsort(x, axis=dim, kind="stable")
        return out
    n = x.shape[dim]
    out[...] = n - 1 - np.flip(np.argsort(np.flip(x, dim), axis=dim, kind="stable"), dim)
    return out


ARGSORT = defop("argsort", "index", _np_argsort, dtype=lambda args, attrs: D.int64)  # (indices: no gradient)


def _sort_order(input, dim, descending):
    d = wrap_dim(dim, builtins_max(input.ndim, 1))
    return d, apply(ARGSORT, (input,), {"dim": d if input.ndim else 0, "descending": bool(descending)})


def _take_sorted(name, input, d, idx):
    """input's values at idx along d, presented as torch's one backward node (SortBackward0...)."""
    from ..autograd.composite import composite

    def take(t):
        v = gather(t, d, idx)
        if idx.is_contiguous():
            return v
        # the values in the indices' (the input's permuted) layout: a copy in that dim order, viewed back
        order = sorted(range(idx.ndim), key=lambda k: -idx.stride(k))
        back = sorted(range(idx.ndim), key=lambda k: order[k])
        return M.permute(M.permute(v, order).contiguous(), back)

    return composite(name, take, input, torch_args=(0,))


def argsort(input, dim=-1, descending=False, stable=False):
    return _sort_order(input, dim, descending)[1]


def sort(input, dim=-1, descending=False, stable=False, *, out=None):
    """(values, indices) along dim; the indices are a stable order (torch's stable=True order, which
    its default order matches for distinct values)."""
    from .reduce import return_types

    d, idx = _sort_order(input, dim, descending)
    values = _take_sorted("SortBackward1" if stable else "SortBackward0", input, d, idx)
    return return_types.sort(values, idx)


def topk(input, k, dim=-1, largest=True, sorted=True, *, out=None):
    from .reduce import return_types

    d = wrap_dim(dim, builtins_max(input.ndim, 1))
    n = input.shape[d] if input.ndim else 1
    if not 0 <= k <= n:
        raise RuntimeError("selected index k out of range")
    d, idx = _sort_order(input, d, largest)
    if input.ndim:
        idx = M.narrow(idx, d, 0, k).contiguous()
    values = _take_sorted("TopkBackward0", input, d, idx)
    return return_types.topk(values, idx)


def msort(input, *, out=None):
    return sort(input, 0).values
