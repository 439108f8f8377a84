"""Views and data movement: view/reshape, permute, expand, squeeze, slicing, cat, stack...

A view op's NumPy implementation returns a NumPy view of its input, so the
result shares storage; the dispatcher then shares the base's version counter.
`reshape`/`contiguous` copy only when a view is impossible. The vjp of a view
that selects part of its input (select, slice, split, as_strided...) writes the
gradient into zeros through the same view: the `view_scatter` op below."""
from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import as_strided as _np_strided_view

from .. import dtypes as D
from ..dispatch import apply
from ..tensor import Tensor, Size
from .shape_util import broadcast_shapes, is_non_overlapping_and_dense, sum_to, wrap_dim
from .table import defop, OPS


def _prod(xs):
    n = 1
    for x in xs:
        n *= x
    return n


# ---- the view fast path ------------------------------------------------------------------------
# A view is a NumPy view plus bookkeeping; when NumPy's view has torch's strides, the ops below make
# it here instead of through apply() (view, reshape, t, transpose, unsqueeze run inside every vjp).
from ..dispatch import TRACER as _TRACER, _record_grad  # noqa: E402
from ..autograd.grad_mode import _state as _grad_state  # noqa: E402
from .inplace import with_out  # noqa: E402

_new = object.__new__
_EMPTY: dict = {}


def _view_of(self, arr, op, attrs):
    """`arr`, a NumPy view of self's data that op made, as the tensor torch returns. `attrs` is the
    op's attrs, or a function of `arr` giving them (only called when the view is recorded)."""
    t = _new(Tensor)
    t._data = arr
    t.dtype = self.dtype
    base = self._base
    t._base = self if base is None else base
    t._vc = self._vc
    if self._requires_grad and _grad_state["enabled"]:
        _record_grad(op, (self,), attrs(arr) if callable(attrs) else attrs, (t,))
    return t


def _view_attrs(r):
    return {"shape": r.shape, "strides": _elem_strides(r)}


def _reshape_attrs(r):
    return {"shape": r.shape, "strides": _elem_strides(r), "alias": False}


def _dense_reshape(self, shape):
    """NumPy's reshape of self when it is a view with torch's strides: the data is row-major with no
    size-1 dims (NumPy calls an array contiguous whatever the strides of its size-1 dims, torch
    does not). None otherwise, or for a shape NumPy refuses (the full path gives torch's error)."""
    x = self._data
    if _TRACER[0] is not None or not x.flags.c_contiguous or 1 in x.shape:
        return None
    try:
        if shape and min(shape) < -1:  # NumPy takes any negative size as "infer", torch only -1
            return None
        return x.reshape(shape)
    except (ValueError, TypeError):
        return None


def _elem_strides(r):
    item = r.itemsize
    return tuple(s // item for s in r.strides)


def infer_size(shape, numel: int) -> tuple:
    """Resolve one -1 in a requested shape, with torch's errors."""
    shape = tuple(int(s) for s in shape)
    neg = [i for i, s in enumerate(shape) if s == -1]
    if len(neg) > 1:
        raise RuntimeError("only one dimension can be inferred")
    for i, s in enumerate(shape):
        if s < -1:
            raise RuntimeError(f"invalid shape dimension {s} at index {i} of shape [{', '.join(map(str, shape))}]")
    known = _prod(s for s in shape if s != -1)
    if neg:
        if known == 0 and numel == 0:
            raise RuntimeError(f"cannot reshape tensor of 0 elements into shape [{', '.join(map(str, shape))}] because "
                               "the unspecified dimension size -1 can be any value and is ambiguous")
        if known == 0 or numel % known:
            raise RuntimeError(f"shape '[{', '.join(map(str, shape))}]' is invalid for input of size {numel}")
        shape = shape[: neg[0]] + (numel // known,) + shape[neg[0] + 1:]
    elif known != numel:
        raise RuntimeError(f"shape '[{', '.join(map(str, shape))}]' is invalid for input of size {numel}")
    return shape


def view_strides(oldshape, oldstride, newshape):
    """Strides that let `newshape` view memory laid out as (oldshape, oldstride), or None.

    Walks both shapes from the right in chunks of dims that are contiguous with
    each other; a new dim may split or merge dims only inside one chunk."""
    numel = _prod(oldshape)
    if numel == 0:
        st, acc = [], 1
        for n in reversed(newshape):
            st.append(acc)
            acc *= max(n, 1)
        return tuple(reversed(st))
    if not oldshape:
        return tuple(1 for _ in newshape)
    newstride = [0] * len(newshape)
    view_d = len(newshape) - 1
    chunk_base = oldstride[-1]
    tensor_numel = 1
    view_numel = 1
    for td in range(len(oldshape) - 1, -1, -1):
        tensor_numel *= oldshape[td]
        if td == 0 or (oldshape[td - 1] != 1 and oldstride[td - 1] != tensor_numel * chunk_base):
            while view_d >= 0 and (view_numel < tensor_numel or newshape[view_d] == 1):
                newstride[view_d] = view_numel * chunk_base
                view_numel *= newshape[view_d]
                view_d -= 1
            if view_numel != tensor_numel:
                return None
            if td > 0:
                chunk_base = oldstride[td - 1]
                tensor_numel = 1
                view_numel = 1
    if view_d != -1:
        return None
    return tuple(newstride)


def _np_view(a, shape, strides=None):
    """`a` seen with a new shape; `strides` (in elements) are torch's for the view when known: they
    differ from NumPy's only on size-1 dims, where torch's rule gives them from their neighbours."""
    item = a.itemsize
    if a.flags.c_contiguous:
        r = a.reshape(shape)
        if strides is None or r.strides == tuple(s * item for s in strides):
            return r
    st = strides if strides is not None else view_strides(a.shape, tuple(s // item for s in a.strides), shape)
    return _np_strided_view(a, shape, tuple(s * item for s in st))


def _vjp_view(ctx, saved, g):
    return (g.reshape(ctx.shapes[0]),)


# reshape of a non-contiguous (but viewable) tensor is torch's _reshape_alias
VIEW = defop("view", "view", _np_view, vjp=_vjp_view,
             grad_name=lambda a: "ReshapeAliasBackward0" if a.get("alias") else "ViewBackward0")
# a view of a fresh copy (reshape's copying path, matmul's folding): torch names it UnsafeView
UNSAFE_VIEW = defop("unsafe_view", "view", _np_view, vjp=_vjp_view, grad_name="UnsafeViewBackward0")


def view(self, *shape):
    if len(shape) == 1:
        s0 = shape[0]
        if type(s0) is not int:
            if isinstance(s0, D.DType):
                return _view_dtype(self, s0)
            shape = tuple(s0)
    r = _dense_reshape(self, shape)
    if r is not None:
        return _view_of(self, r, VIEW, _view_attrs)
    shape = infer_size(shape, self.numel())
    st = view_strides(self._data.shape, self.stride(), shape)
    if st is None:
        raise RuntimeError(
            "view size is not compatible with input tensor's size and stride (at least one dimension spans "
            "across two contiguous subspaces). Use .reshape(...) instead."
        )
    return apply(VIEW, (self,), {"shape": shape, "strides": st})


def _view_dtype(self, dt):
    """x.view(dtype): the same bytes read as another dtype, sharing storage and version counter.
    A different element size rescales the last dim, with torch's checks in torch's order."""
    a, b = self.dtype.itemsize, dt.itemsize
    if a == b:
        r = Tensor._make(self._data.view(dt.np), dt)
        r._vc = self._vc  # (writes through either show in the other's _version, as in torch)
        return r
    what = f"to view {self.dtype.short} as {dt.short} (different element sizes)"
    if self.ndim == 0:
        raise RuntimeError(f"self.dim() cannot be 0 {what}")
    st, shape, off = list(self.stride()), list(self.shape), self.storage_offset()
    if st[-1] != 1:
        raise RuntimeError(f"self.stride(-1) must be 1 {what}, but got {st[-1]}")
    if a > b:
        k = a // b
        st = [s * k for s in st[:-1]] + [1]
        shape[-1] *= k
    else:
        k = b // a
        if shape[-1] % k:
            raise RuntimeError(f"self.size(-1) must be divisible by {k} {what}, but got {shape[-1]}")
        if off % k:
            raise RuntimeError(f"self.storage_offset() must be divisible by {k} {what}, but got {off}")
        for i, s in enumerate(st[:-1]):
            if s % k:
                raise RuntimeError(f"self.stride({i}) must be divisible by {k} {what}, but got {s}")
        st = [s // k for s in st[:-1]] + [1]
        shape[-1] //= k
    data = self._data
    if type(data) is not np.ndarray:
        raise RuntimeError("view(dtype) with a different element size is only supported for CPU tensors")
    # a NumPy view of the same bytes (over the array that owns them) with the new dtype, shape, strides
    from ..tensor import _root

    root = _root(data)
    offset = data.__array_interface__["data"][0] - root.__array_interface__["data"][0]
    r = Tensor._make(np.ndarray(tuple(shape), dtype=dt.np, buffer=root, offset=offset,
                                strides=tuple(s * b for s in st)), dt)
    r._vc = self._vc
    return r


def reshape(self, *shape):
    if len(shape) == 1 and type(shape[0]) is not int:
        shape = tuple(shape[0])
    r = _dense_reshape(self, shape)
    if r is not None:
        return _view_of(self, r, VIEW, _reshape_attrs)
    shape = infer_size(shape, self.numel())
    st = view_strides(self._data.shape, self.stride(), shape)
    if st is not None:
        return apply(VIEW, (self,), {"shape": shape, "strides": st, "alias": not self.is_contiguous()})
    # no view possible: a contiguous copy, viewed (torch: _unsafe_view(clone(contiguous)))
    return apply(UNSAFE_VIEW, (apply(CONTIG, (self,)),), {"shape": shape})


def view_as(self, other):
    return view(self, other.shape)


def reshape_as(self, other):
    return reshape(self, other.shape)


def flatten(self, start_dim=0, end_dim=-1):
    if self.ndim == 0:
        return reshape(self, (1,))
    s = wrap_dim(start_dim, self.ndim)
    e = wrap_dim(end_dim, self.ndim)
    if s > e:
        raise RuntimeError("flatten() has invalid args: start_dim cannot come after end_dim")
    if s == e:
        return self
    shape = self.shape[:s] + (_prod(self.shape[s:e + 1]),) + self.shape[e + 1:]
    return reshape(self, shape)


def unflatten(self, dim, sizes):
    d = wrap_dim(dim, self.ndim)
    if -1 not in tuple(sizes) and _prod(sizes) != self.shape[d]:
        raise RuntimeError(f"unflatten: Provided sizes [{', '.join(map(str, sizes))}] don't multiply up to the size "
                           f"of dim {dim} ({self.shape[d]}) in the input tensor")
    sizes = infer_size(sizes, self.shape[d])
    return view(self, self.shape[:d] + tuple(sizes) + self.shape[d + 1:]) if self.is_contiguous() else \
        reshape(self, self.shape[:d] + tuple(sizes) + self.shape[d + 1:])


# ---- permutations -----------------------------------------------------------------------
def _vjp_permute(ctx, saved, g):
    inv = [0] * len(ctx.dims)
    for i, d in enumerate(ctx.dims):
        inv[d] = i
    return (g.permute(inv),)


PERMUTE = defop("permute", "view", lambda a, dims: a.transpose(dims), vjp=_vjp_permute)
TRANSPOSE = defop("transpose", "view", lambda a, d0, d1: np.swapaxes(a, d0, d1) if a.ndim else a[...],
                  vjp=lambda ctx, s, g: (g.transpose(ctx.d0, ctx.d1),))
T = defop("t", "view", lambda a: a.T, vjp=lambda ctx, s, g: (g.t(),), grad_name="TBackward0")


def permute(self, *dims):
    if len(dims) == 1 and not isinstance(dims[0], int):
        dims = tuple(dims[0])
    if len(dims) != self.ndim:
        raise RuntimeError(
            f"permute(sparse_coo): number of dimensions in the tensor input does not match the length of the "
            f"desired ordering of dimensions i.e. input.dim() = {self.ndim} is not equal to len(dims) = {len(dims)}")
    dims = tuple(wrap_dim(d, self.ndim) for d in dims)
    if len(set(dims)) != len(dims):
        raise RuntimeError("permute(): duplicate dims are not allowed.")
    return apply(PERMUTE, (self,), {"dims": dims})


def transpose(self, dim0, dim1):
    x = self._data
    d0, d1 = wrap_dim(dim0, x.ndim), wrap_dim(dim1, x.ndim)
    if _TRACER[0] is None and x.ndim and type(x) is np.ndarray:
        return _view_of(self, x.swapaxes(d0, d1), TRANSPOSE, {"d0": d0, "d1": d1})
    return apply(TRANSPOSE, (self,), {"d0": d0, "d1": d1})


swapaxes = swapdims = transpose


def t(self):
    x = self._data
    if x.ndim > 2:
        raise RuntimeError(f"t() expects a tensor with <= 2 dimensions, but self is {x.ndim}D")
    if _TRACER[0] is None and type(x) is np.ndarray:
        return _view_of(self, x.T, T, _EMPTY)
    return apply(T, (self,))


def _mT(self):
    return transpose(self, -2, -1)


# ---- expand / squeeze / unsqueeze -------------------------------------------------------------
def _np_expand(a, shape):
    lead = len(shape) - a.ndim
    strides = (0,) * lead + tuple(0 if (n == 1 and s != 1) else st
                                  for n, s, st in zip(a.shape, shape[lead:], a.strides))
    if a.flags.c_contiguous and a.size:
        # the same view, built by the ndarray constructor over a's buffer: ~10x cheaper than
        # as_strided, which matters on the backward path (every reduction's vjp expands)
        return np.ndarray(shape, a.dtype, a, 0, strides)
    return _np_strided_view(a, shape, strides)


EXPAND = defop("expand", "view", _np_expand, vjp=lambda ctx, s, g: (sum_to(g, ctx.shapes[0]),))


def expand(self, *sizes):
    if len(sizes) == 1 and not isinstance(sizes[0], int):
        sizes = tuple(sizes[0])
    if len(sizes) < self.ndim:
        raise RuntimeError(
            f"expand(torch.{self.dtype.short}Tensor{{[{', '.join(map(str, self.shape))}]}}, "
            f"size=[{', '.join(map(str, sizes))}]): "
            "the number of sizes provided (%d) must be greater or equal to the number of dimensions in the tensor (%d)"
            % (len(sizes), self.ndim))
    lead = len(sizes) - self.ndim
    out = list(sizes)
    for i, n in enumerate(self.shape):
        want = sizes[lead + i]
        if want == -1:
            out[lead + i] = n
        elif n != 1 and n != want:
            raise RuntimeError(
                f"The expanded size of the tensor ({want}) must match the existing size ({n}) at non-singleton "
                f"dimension {lead + i}.  Target sizes: [{', '.join(map(str, sizes))}].  Tensor sizes: "
                f"[{', '.join(map(str, self.shape))}]")
    for i in range(lead):
        if sizes[i] < 0:
            raise RuntimeError(
                f"The expanded size of the tensor ({sizes[i]}) isn't allowed in a leading, non-existing dimension {i}")
    out = tuple(out)
    if out == tuple(self.shape):
        return apply(EXPAND, (self,), {"shape": out})
    return apply(EXPAND, (self,), {"shape": out})


def expand_as(self, other):
    return expand(self, other.shape)


def broadcast_to(self, shape):
    return expand(self, shape)


def broadcast_tensors(*tensors):
    shape = broadcast_shapes(*(t.shape for t in tensors))
    return tuple(expand(t, shape) for t in tensors)


def _np_unsqueeze(a, dim):
    r = np.expand_dims(a, dim)
    # torch keeps every stride and gives the new dim size * stride of the dim after it (1 at the end);
    # NumPy's reshape may renumber the strides of size-1 dims
    want = a.strides[:dim] + (a.shape[dim] * a.strides[dim] if dim < a.ndim else a.itemsize,) + a.strides[dim:]
    return r if r.strides == want else _np_strided_view(a, r.shape, want)


UNSQUEEZE = defop("unsqueeze", "view", _np_unsqueeze,
                  vjp=lambda ctx, s, g: (g.squeeze(ctx.dim),))
SQUEEZE = defop("squeeze", "view", lambda a, dims: np.squeeze(a, dims) if dims else a[...],
                vjp=lambda ctx, s, g: (g.reshape(ctx.shapes[0]),),
                grad_name=lambda a: f"SqueezeBackward{int(a.get('explicit', 0))}")


def unsqueeze(self, dim):
    x = self._data
    d = wrap_dim(dim, x.ndim + 1)
    r = _dense_reshape(self, x.shape[:d] + (1,) + x.shape[d:])
    if r is not None:  # (row-major, so the new dim's stride is torch's: the stride of the dim before it)
        return _view_of(self, r, UNSQUEEZE, {"dim": d})
    return apply(UNSQUEEZE, (self,), {"dim": d})


def squeeze(self, dim=None):
    if dim is None:
        dims = tuple(i for i, n in enumerate(self.shape) if n == 1)
    else:
        ds = (dim,) if isinstance(dim, int) else tuple(dim)
        dims = tuple(d for d in (wrap_dim(x, self.ndim) for x in ds) if self.ndim and self.shape[d] == 1)
    return apply(SQUEEZE, (self,), {"dims": dims, "explicit": 0 if dim is None else 1 if isinstance(dim, int) else 2})


# ---- selecting parts: select, slice, narrow, split, unbind, as_strided, diagonal ----------------
_OVERLAPPING = ("as_strided", "unfold")  # views whose elements may alias each other


def _np_view_scatter(g, shape, view, attrs):
    out = np.zeros(shape, dtype=g.dtype)
    if view == "as_strided":
        return _np_as_strided_scatter(g, out, attrs)
    op = OPS[view]
    if op.np_attrs is not None:
        attrs = {k: v for k, v in attrs.items() if k in op.np_attrs}
    if view in _OVERLAPPING:
        # apply the same view to the flat positions, then add g at each position it names
        pos = OPS[view].numpy(np.arange(out.size).reshape(shape), **attrs)
        acc = np.bincount(pos.reshape(-1), weights=g.reshape(-1), minlength=out.size)
        return acc.astype(g.dtype).reshape(shape)
    OPS[view].numpy(out, **attrs)[...] = g
    return out


def _np_as_strided_scatter(g, out, attrs):
    """as_strided's backward: each element of the view sits at a storage position; add its
    gradient to the input element at that position (none there: dropped). Positions are
    counted in elements from the input's first element, with the input's own strides."""
    shape = out.shape
    in_stride = attrs.get("in_stride") or _row_major(shape)

    def positions(sizes, strides, start=0):
        pos = np.full(sizes, start, dtype=np.int64)
        for d, (n, st) in enumerate(zip(sizes, strides)):
            view_shape = [1] * len(sizes)
            view_shape[d] = n
            pos = pos + (np.arange(n, dtype=np.int64) * st).reshape(view_shape)
        return pos.reshape(-1)

    in_pos = positions(shape, in_stride)
    out_pos = positions(attrs["size"], attrs["stride"], attrs["offset"])
    order = np.argsort(in_pos, kind="stable")
    ranked = in_pos[order]
    k = np.minimum(np.searchsorted(ranked, out_pos), max(ranked.size - 1, 0))
    hit = ranked[k] == out_pos if ranked.size else np.zeros(out_pos.shape, bool)
    flat = out.reshape(-1)
    np.add.at(flat, order[k[hit]], g.reshape(-1)[hit])
    return flat.reshape(shape)


def _row_major(shape):
    st, acc = [], 1
    for n in reversed(shape):
        st.append(acc)
        acc *= n
    return tuple(reversed(st))


def _vjp_view_scatter(ctx, saved, g):
    return (apply(OPS[ctx.view], (g,), ctx.attrs["attrs"]),)


VIEW_SCATTER = defop("view_scatter", "index", _np_view_scatter, vjp=_vjp_view_scatter)


def _part_view(name, fn, grad_name=None):
    op = defop(name, "view", fn, grad_name=grad_name)

    def vjp(ctx, saved, g):
        return (apply(VIEW_SCATTER, (g,), {"shape": ctx.shapes[0], "view": name, "attrs": dict(ctx.attrs)}),)

    op.vjp = vjp
    op.differentiable = True
    return op


# the trailing Ellipsis keeps a 0-d result a view (NumPy would hand back a scalar copy)
SELECT = _part_view("select", lambda a, dim, index: a[(slice(None),) * dim + (index, Ellipsis)])
SLICE = _part_view("slice", lambda a, dim, start, stop, step: a[(slice(None),) * dim + (slice(start, stop, step),)])
def _np_diagonal(a, offset, dim1, dim2):
    """np.diagonal as a writable view: the other dims, then the diagonal as the last dim."""
    n1, n2 = a.shape[dim1], a.shape[dim2]
    length = max(min(n1, n2 - offset), 0) if offset >= 0 else max(min(n1 + offset, n2), 0)
    keep = [i for i in range(a.ndim) if i not in (dim1, dim2)]
    shape = tuple(a.shape[i] for i in keep) + (length,)
    strides = tuple(a.strides[i] for i in keep) + (a.strides[dim1] + a.strides[dim2],)
    if length == 0:
        return np.zeros(shape, a.dtype)
    # start from the diagonal's first element by slicing (a writable view of the same memory)
    start = [slice(None)] * a.ndim
    if offset >= 0:
        start[dim2] = slice(offset, None)
    else:
        start[dim1] = slice(-offset, None)
    return _np_strided_view(a[tuple(start)], shape, strides)


DIAGONAL = _part_view("diagonal", _np_diagonal)


def _np_as_strided(a, size, stride, offset):
    """size/stride in elements; offset relative to `a`'s first element."""
    if offset:
        from ..tensor import _root

        root = _root(a)
        flat = root.reshape(-1) if root.flags.c_contiguous else root.T.reshape(-1)
        start = (a.__array_interface__["data"][0] - flat.__array_interface__["data"][0]) // a.itemsize
        a = flat[start + offset:]
    return _np_strided_view(a, size, tuple(s * a.itemsize for s in stride))


def _np_unfold(a, dim, size, step):
    count = (a.shape[dim] - size) // step + 1
    shape = a.shape[:dim] + (count,) + a.shape[dim + 1:] + (size,)
    st = a.strides
    return _np_strided_view(a, shape, st[:dim] + (st[dim] * step,) + st[dim + 1:] + (st[dim],))


AS_STRIDED = _part_view("as_strided", _np_as_strided)
UNFOLD = _part_view("unfold", _np_unfold)


def select(self, dim, index):
    if self.ndim == 0:
        raise IndexError("select() cannot be applied to a 0-dim tensor.")
    d = wrap_dim(dim, self.ndim)
    n = self.shape[d]
    if not -n <= index < n:
        raise IndexError(f"select(): index {index} out of range for tensor of size [{', '.join(map(str, self.shape))}] "
                         f"at dimension {d}")
    return apply(SELECT, (self,), {"dim": d, "index": index + n if index < 0 else index})


def slice_dim(self, dim, start, stop, step=1):
    d = wrap_dim(dim, self.ndim)
    if step <= 0:
        raise ValueError("step must be greater than zero")
    n = self.shape[d]
    start, stop, _ = slice(start, stop).indices(n)
    stop = max(stop, start)
    return apply(SLICE, (self,), {"dim": d, "start": start, "stop": stop, "step": step})


def narrow(self, dim, start, length):
    if self.ndim == 0:
        raise RuntimeError("narrow() cannot be applied to a 0-dim tensor.")
    d = wrap_dim(dim, self.ndim)
    if isinstance(start, Tensor):
        start = int(start)
    n = self.shape[d]
    if not -n <= start <= n:
        raise IndexError(f"start out of range (expected to be in range of [{-n}, {n}], but got {start})")
    if start < 0:
        start += n
    if length < 0:
        raise RuntimeError("narrow(): length must be non-negative.")
    if start + length > n:
        raise RuntimeError(f"start ({start}) + length ({length}) exceeds dimension size ({n}).")
    return apply(SLICE, (self,), {"dim": d, "start": start, "stop": start + length, "step": 1})


def as_strided(self, size, stride, storage_offset=None):
    off = self.storage_offset() if storage_offset is None else storage_offset
    base_off = self.storage_offset()
    return apply(AS_STRIDED, (self,), {"size": tuple(size), "stride": tuple(stride), "offset": off - base_off,
                                       "in_stride": self.stride()})


def diagonal(self, offset=0, dim1=0, dim2=1):
    d1, d2 = wrap_dim(dim1, self.ndim), wrap_dim(dim2, self.ndim)
    if d1 == d2:  # (NumPy would read past the storage)
        raise RuntimeError(f"diagonal dimensions cannot be identical {dim1}, {dim2}")
    return apply(DIAGONAL, (self,), {"offset": offset, "dim1": d1, "dim2": d2})


def _np_split(a, dim, bounds):
    return tuple(a[(slice(None),) * dim + (slice(s, e),)] for s, e in bounds)


def _vjp_split(ctx, saved, *gs):
    return (cat(list(gs), ctx.dim),)


SPLIT = defop("split", "view", _np_split, vjp=_vjp_split, nout=0,
              grad_name=lambda a: "SplitWithSizesBackward0" if a.get("sizes") else "SplitBackward0")


def _np_unbind(a, dim):
    return tuple(a[(slice(None),) * dim + (i, Ellipsis)] for i in range(a.shape[dim]))


def _vjp_unbind(ctx, saved, *gs):
    return (stack(list(gs), ctx.dim),)


UNBIND = defop("unbind", "view", _np_unbind, vjp=_vjp_unbind, nout=0, grad_name="UnbindBackward0")


def _multi(op, self, attrs, n, name):
    outs = apply(op, (self,), attrs)
    if isinstance(outs, tuple) and outs and outs[0]._requires_grad:
        # torch forbids writing in place into one of several views a single op returned (their
        # gradients share one node): in-place ops check this mark
        for i, t in enumerate(outs):
            t._multi_view = (name, i)
    return outs


def split(self, split_size_or_sections, dim=0):
    if self.ndim == 0:
        raise RuntimeError("split expects at least a 1-dimensional tensor")
    d = wrap_dim(dim, self.ndim)
    n = self.shape[d]
    if isinstance(split_size_or_sections, int):
        s = split_size_or_sections
        if s < 0:
            raise RuntimeError(f"split expects split_size be non-negative, but got split_size={s}")
        if s == 0 and n:
            raise RuntimeError(f"split_size can only be 0 if dimension size is 0, but got dimension size of {n}")
        # an empty dim still gives one (empty) piece
        bounds = [(i, min(i + s, n)) for i in range(0, n, s)] if s and n else [(0, 0)]
    else:
        sizes = list(split_size_or_sections)
        if any(s < 0 for s in sizes):
            raise RuntimeError(f"split_with_sizes expects split_sizes have only non-negative entries, but got "
                               f"split_sizes={sizes}")
        if sum(sizes) != n:
            raise RuntimeError(
                f"split_with_sizes expects split_sizes to sum exactly to {n} (input tensor's size at dimension {d}), "
                f"but got split_sizes={sizes}")
        bounds, acc = [], 0
        for s in sizes:
            bounds.append((acc, acc + s))
            acc += s
    outs = _multi(SPLIT, self, {"dim": d, "bounds": tuple(bounds),
                                "sizes": not isinstance(split_size_or_sections, int)}, len(bounds),
                "Split" if isinstance(split_size_or_sections, int) else "SplitWithSizes")
    return tuple(outs) if isinstance(outs, tuple) else (outs,)


def chunk(self, chunks, dim=0):
    if self.ndim == 0:
        raise RuntimeError("chunk expects at least a 1-dimensional tensor")
    if chunks <= 0:
        raise RuntimeError("chunk expects `chunks` to be greater than 0, got: %d" % chunks)
    d = wrap_dim(dim, self.ndim)
    n = self.shape[d]
    if n == 0:  # an empty dim splits into `chunks` empty pieces
        return split(self, [0] * chunks, d)
    return split(self, -(-n // chunks), d)


def tensor_split(self, sections, dim=0):
    """Pieces as slices (torch makes each one a SliceBackward0 view)."""
    d = wrap_dim(dim, self.ndim)
    n = self.shape[d]
    if isinstance(sections, int):
        q, r = divmod(n, sections)
        sizes = [q + 1] * r + [q] * (sections - r)
        bounds, acc = [], 0
        for k in sizes:
            bounds.append((acc, acc + k))
            acc += k
    else:
        cuts = [min(max(int(c), 0), n) for c in sections]
        starts = [0] + cuts
        ends = cuts + [n]
        bounds = [(a, max(a, b)) for a, b in zip(starts, ends)]
    return tuple(apply(SLICE, (self,), {"dim": d, "start": a, "stop": b, "step": 1}) for a, b in bounds)


def unbind(self, dim=0):
    d = wrap_dim(dim, self.ndim)
    r = _multi(UNBIND, self, {"dim": d}, self.shape[d], "Unbind")
    return r if isinstance(r, tuple) else (r,)


# ---- copies: clone, contiguous, flip, repeat, cat, stack ----------------------------------------
def _np_preserve_copy(a):
    """A copy laid out as torch's preserve_format does: a dense input (say a transposed one) keeps its
    strides; anything else (step-sliced, expanded) becomes row-major."""
    if a.ndim < 2:
        return a.copy()
    item = a.itemsize
    if all(s >= 0 for s in a.strides) and is_non_overlapping_and_dense(a.shape, [s // item for s in a.strides]):
        return np.array(a, copy=True, order="K")
    return np.array(a, copy=True, order="C")


CLONE = defop("clone", "movement", _np_preserve_copy,
              vjp=lambda ctx, s, g: (g,), lowering="{0}")


def clone(self, *, memory_format=None):
    r = apply(CLONE, (self,))
    return r


def contiguous(self, memory_format=None):
    if self.is_contiguous():
        return self
    return apply(CONTIG, (self,))


CONTIG = defop("contiguous", "movement", lambda a: np.ascontiguousarray(a), vjp=lambda ctx, s, g: (g,),
               grad_name="CloneBackward0", lowering="{0}")


def _np_flip(a, dims):
    r = _np_preserve_copy(a)  # the output takes the input's layout, then we write the flipped values
    r[...] = np.flip(a, dims)
    return r


FLIP = defop("flip", "movement", _np_flip, vjp=lambda ctx, s, g: (g.flip(ctx.dims),))


def flip(self, *dims):
    if len(dims) == 1 and not isinstance(dims[0], int):
        dims = tuple(dims[0])
    dims = tuple(wrap_dim(d, self.ndim) for d in dims)
    for i, d in enumerate(dims):
        if d in dims[:i]:
            raise RuntimeError(f"dim {d} appears multiple times in the list of dims")
    if not self.ndim:  # a 0-d tensor flips to (a copy of) itself
        dims = ()
    return apply(FLIP, (self,), {"dims": dims})


def fliplr(self):
    return flip(self, 1)


def flipud(self):
    return flip(self, 0)


def _np_repeat(a, reps):
    lead = len(reps) - a.ndim
    return np.tile(a.reshape((1,) * lead + a.shape), reps)


def _vjp_repeat(ctx, saved, g):
    shape = ctx.shapes[0]
    reps = ctx.reps
    lead = len(reps) - len(shape)
    full = (1,) * lead + tuple(shape)
    # view each repeated dim as (rep, size) and sum the reps away
    split_shape = []
    for r, n in zip(reps, full):
        split_shape += [r, n]
    gg = g.reshape(split_shape).sum(tuple(range(0, 2 * len(reps), 2)))
    return (gg.reshape(shape),)


REPEAT = defop("repeat", "movement", _np_repeat, vjp=_vjp_repeat)


def repeat(self, *reps):
    if len(reps) == 1 and not isinstance(reps[0], int):
        reps = tuple(reps[0])
    if len(reps) < self.ndim:
        raise RuntimeError("Number of dimensions of repeat dims can not be smaller than number of dimensions of tensor")
    shape = (1,) * (len(reps) - self.ndim) + tuple(self.shape)
    if any(r < 0 for r in reps):
        out = [n * r for n, r in zip(shape, reps)]
        if any(x < 0 for x in out):
            bad = next(x for x in out if x < 0)
            raise RuntimeError(f"Trying to create tensor with negative dimension {bad}: [{', '.join(map(str, out))}]")
        reps = tuple(max(r, 0) for r in reps)  # (a negative count of an empty dim is still empty)
    return apply(REPEAT, (self,), {"reps": tuple(reps)})


def tile(self, *reps):
    if len(reps) == 1 and not isinstance(reps[0], int):
        reps = tuple(reps[0])
    reps = (1,) * (self.ndim - len(reps)) + tuple(reps)
    return repeat(self, reps)


def _channels_last(a) -> bool:
    """torch's test for a 4-d NCHW tensor stored as NHWC (its suggest_memory_format)."""
    if a.ndim != 4:
        return False
    st = [s // a.itemsize for s in a.strides]
    if st[1] == 0:
        return False
    lo = 0
    for d in (1, 3, 2, 0):
        if a.shape[d] == 0 or st[d] < lo or (d == 0 and lo == st[1]):
            return False
        lo = st[d] * (a.shape[d] if a.shape[d] > 1 else 1)
    return True


def _np_cat(arrays, dim):
    r = np.concatenate(arrays, axis=dim)
    if r.ndim == 4 and all(_channels_last(a) for a in arrays):  # torch keeps a shared channels-last format
        return np.ascontiguousarray(r.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)
    return np.ascontiguousarray(r)  # otherwise row-major, whatever the inputs' layouts


def _vjp_cat(ctx, saved, g):
    out, start = [], 0
    for shp in ctx.shapes:
        n = shp[ctx.dim]
        out.append(narrow(g, ctx.dim, start, n))
        start += n
    return tuple(out)


CAT = defop("cat", "movement", _np_cat, dtype=lambda args, attrs: D.result_type(*args[0]) if args[0] else D.float32,
            vjp=_vjp_cat, cast_inputs=False)


def cat(tensors, dim=0, *, out=None):
    if isinstance(tensors, Tensor):  # (list() would unbind it)
        raise TypeError("cat(): argument 'tensors' (position 1) must be tuple of Tensors, not Tensor")
    tensors = list(tensors)
    if not tensors:
        raise ValueError("torch.cat(): expected a non-empty list of Tensors")
    for i, t in enumerate(tensors):
        if not isinstance(t, Tensor):
            raise TypeError(f"expected Tensor as element {i} in argument 0, but got {type(t).__name__}")
    for i, t in enumerate(tensors):
        if t.ndim == 0:
            raise RuntimeError(f"zero-dimensional tensor (at position {i}) cannot be concatenated")
    # legacy rule: 1-D empty tensors are skipped
    live = [t for t in tensors if not (t.ndim == 1 and t.shape[0] == 0)]
    ref = live[0] if live else tensors[0]
    d = wrap_dim(dim, ref.ndim) if live else 0  # (all skipped: torch checks no dim)
    for i, t in enumerate(live):
        if t.ndim != ref.ndim:
            raise RuntimeError(
                f"Tensors must have same number of dimensions: got {ref.ndim} and {t.ndim}")
        for j in range(ref.ndim):
            if j != d and t.shape[j] != ref.shape[j]:
                raise RuntimeError(
                    f"Sizes of tensors must match except in dimension {d}. Expected size {ref.shape[j]} but got "
                    f"size {t.shape[j]} for tensor number {i} in the list.")
    dt = D.result_type(*tensors)
    conv = [t if t.dtype is dt else t.to(dt) for t in tensors]
    live = [t for t in conv if not (t.ndim == 1 and t.shape[0] == 0)] or conv[:1]
    r = apply(CAT, (live,), {"dim": d}, dtype=dt)
    if out is not None:
        from .inplace import write_out

        return write_out(out, r)
    return r


concat = concatenate = cat


def stack(tensors, dim=0, *, out=None):
    if isinstance(tensors, Tensor):  # (list() would unbind it)
        raise TypeError("stack(): argument 'tensors' (position 1) must be tuple of Tensors, not Tensor")
    tensors = list(tensors)
    if not tensors:
        raise RuntimeError("stack expects a non-empty TensorList")
    shape = tensors[0].shape
    d = wrap_dim(dim, len(shape) + 1)  # (torch checks the dim first)
    for i, t in enumerate(tensors):
        if t.shape != shape:
            raise RuntimeError(
                f"stack expects each tensor to be equal size, but got [{', '.join(map(str, shape))}] at entry 0 and "
                f"[{', '.join(map(str, t.shape))}] at entry {i}")
    dt = D.result_type(*tensors)
    r = apply(STACK, ([t if t.dtype is dt else t.to(dt) for t in tensors],), {"dim": d}, dtype=dt)
    if out is not None:
        from .inplace import write_out

        return write_out(out, r)
    return r


STACK = defop("stack", "movement", lambda arrays, dim: np.ascontiguousarray(np.stack(arrays, axis=dim)),
              vjp=lambda ctx, s, g: tuple(g.unbind(ctx.dim)))


def hstack(tensors):
    return cat(tensors, 0 if tensors[0].ndim == 1 else 1)


def vstack(tensors):
    return cat([t.reshape(1, -1) if t.ndim == 1 else t for t in tensors], 0)


def movedim(self, source, destination):
    src = [source] if isinstance(source, int) else list(source)
    dst = [destination] if isinstance(destination, int) else list(destination)
    src = [wrap_dim(s, self.ndim) for s in src]
    dst = [wrap_dim(s, self.ndim) for s in dst]
    order = [i for i in range(self.ndim) if i not in src]
    for d, s in sorted(zip(dst, src)):
        order.insert(d, s)
    return permute(self, order)


moveaxis = movedim


def unfold(self, dimension, size, step):
    """Sliding windows of `size` every `step` along `dimension`, as a view (conv and pooling use it)."""
    d = wrap_dim(dimension, self.ndim)
    if size > self.shape[d]:
        raise RuntimeError(f"maximum size for tensor at dimension {d} is {self.shape[d]} but size is {size}")
    return apply(UNFOLD, (self,), {"dim": d, "size": size, "step": step})


# ---- tril / triu / roll: compositions of primitives, shown as torch's one node ---------------------
def _triangle(name: str, input: Tensor, diagonal: int, lower: bool) -> Tensor:
    """input with the elements above (tril) or below (triu) the `diagonal`-th diagonal of its last
    two dims zeroed: a where() against an (M, N) mask of column - row offsets."""
    from ..autograd.composite import composite
    from ..creation import arange, zeros
    from .pointwise import where

    if input.ndim < 2:
        raise RuntimeError(f"{name}: input tensor must have at least 2 dimensions")
    m, n = input.shape[-2:]

    def run(x):
        offset = arange(n, device=x.device).unsqueeze(0) - arange(m, device=x.device).unsqueeze(1)
        keep = offset <= diagonal if lower else offset >= diagonal
        return where(keep, x, zeros((), dtype=x.dtype, device=x.device))

    return composite(f"{name.capitalize()}Backward0", run, input)


def tril(input: Tensor, diagonal: int = 0, *, out=None) -> Tensor:
    return with_out(out, _triangle("tril", input, int(diagonal), True))


def triu(input: Tensor, diagonal: int = 0, *, out=None) -> Tensor:
    return with_out(out, _triangle("triu", input, int(diagonal), False))


def roll(input: Tensor, shifts, dims=None) -> Tensor:
    """Elements shifted along dims, those pushed off one end coming back at the other: per dim,
    the last `shift` elements cut off and put first (two narrows and a cat). Without dims, the
    flattened tensor is rolled and given its shape back."""
    from ..autograd.composite import composite

    shifts = (shifts,) if isinstance(shifts, int) else tuple(shifts)
    if dims is None:
        if len(shifts) != 1:
            raise RuntimeError("`shifts` required" if not shifts else
                               f"shifts and dimensions must align. shifts: {len(shifts)}, dims:0")
        return composite("RollBackward0", lambda x: roll(x.flatten(), shifts, 0).view(x.shape), input)
    dims = (dims,) if isinstance(dims, int) else tuple(dims)
    if not shifts:
        raise RuntimeError("`shifts` required")
    if len(shifts) != len(dims):
        raise RuntimeError(f"shifts and dimensions must align. shifts: {len(shifts)}, dims:{len(dims)}")
    dims = tuple(wrap_dim(d, max(input.ndim, 1)) for d in dims)

    def run(x):
        for s, d in zip(shifts, dims):
            size = x.shape[d] if x.ndim else 1
            k = s % size if size else 0
            if k and x.ndim:
                x = cat([narrow(x, d, size - k, k), narrow(x, d, 0, size - k)], d)
        return x if x is not input else clone(x)

    return composite("RollBackward0", run, input)


# ---- diag / repeat_interleave / meshgrid --------------------------------------------------------------
_diagonal = diagonal  # (diag's own argument is called `diagonal`, as torch's is)


def diag(input: Tensor, diagonal: int = 0, *, out=None) -> Tensor:
    """A 1-d input becomes the `diagonal`-th diagonal of a square matrix (zeros elsewhere); a 2-d one
    gives that diagonal back, copied."""
    from ..autograd.composite import composite
    from ..creation import arange, zeros
    from .index import index_put

    k = int(diagonal)
    if input.ndim == 2:
        return with_out(out, composite("DiagonalBackward0_copy", lambda x: clone(_diagonal(x, k)), input))
    if input.ndim != 1:
        raise RuntimeError(f"diag(): Supports 1D or 2D tensors. Got {input.ndim}D")
    n = input.shape[0] + abs(k)

    def embed(x):
        # element i of x lands at flat position i * (n + 1) plus the diagonal's start
        pos = arange(x.shape[0], device=x.device) * (n + 1) + (k if k >= 0 else -k * n)
        return index_put(zeros((n * n,), dtype=x.dtype, device=x.device), (pos,), x).view(n, n)

    return with_out(out, composite("DiagEmbedBackward0", embed, input))



def repeat_interleave(input: Tensor, repeats=None, dim=None, *, output_size=None) -> Tensor:
    """Each element (or each slice along `dim`) repeated `repeats` times in place: an index_select
    with the repeated positions (worked out on the host, as torch reads a repeats tensor)."""
    from ..creation import arange, tensor
    from .index import index_select

    if repeats is None:  # repeat_interleave(counts): each position repeated counts[i] times
        counts = input
        return repeat_interleave(arange(counts.shape[0], device=counts.device), counts, 0)
    x = input.reshape(-1) if dim is None else input
    d = 0 if dim is None else wrap_dim(dim, max(x.ndim, 1))
    n = x.shape[d] if x.ndim else 1
    reps = np.asarray(repeats.tolist() if isinstance(repeats, Tensor) else repeats, dtype=np.int64).reshape(-1)
    if (reps < 0).any():
        raise RuntimeError("Repeats must be non-negative")
    if reps.size == 1:
        reps = np.full(n, int(reps[0]), np.int64)
    elif reps.size != n:
        raise RuntimeError(f"repeats must have the same size as input along dim, but got repeats.size(0) = "
                           f"{reps.size} and input.size({d}) = {n}")
    idx = tensor(np.repeat(np.arange(n, dtype=np.int64), reps), device=x.device)
    r = index_select(x, d, idx)
    if isinstance(repeats, Tensor) and repeats.numel() != 1:
        return r
    return r.view(r.shape)  # (torch's int-repeats path ends in a view: ViewBackward0)


def meshgrid(*tensors, indexing: str | None = None) -> tuple:
    """Coordinate grids: output i is tensor i laid along its own dim of the grid and expanded over the
    others (a view, no copy). indexing='ij' puts tensor i on dim i; 'xy' swaps the first two dims."""
    import warnings

    if len(tensors) == 1 and isinstance(tensors[0], (list, tuple)):
        tensors = tuple(tensors[0])
    if indexing is None:
        warnings.warn("torch.meshgrid: in an upcoming release, it will be required to pass the indexing "
                      "argument.", UserWarning, stacklevel=2)
        indexing = "ij"
    if indexing not in ("ij", "xy"):
        raise RuntimeError(f'torch.meshgrid: indexing must be one of "xy" or "ij", but received: {indexing}')
    for t in tensors:
        if t.ndim > 1:
            raise RuntimeError("torch.meshgrid: Expected 0D or 1D tensor in the tensor list")
    sizes = [t.numel() for t in tensors]
    place = list(range(len(tensors)))
    if indexing == "xy" and len(tensors) >= 2:
        place[0], place[1] = 1, 0
    shape = [0] * len(tensors)
    for i, p in enumerate(place):
        shape[p] = sizes[i]
    outs = []
    for i, t in enumerate(tensors):
        view_shape = [1] * len(tensors)
        view_shape[place[i]] = sizes[i]
        outs.append(t.reshape(view_shape).expand(shape))
    return tuple(outs)
