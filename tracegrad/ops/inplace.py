"""In-place ops and `out=`: compute out of place, then write into the tensor.

Writing is where torch's in-place rules live, so they live here once:
  - a leaf that requires grad (or a view of one) may not be written under grad mode;
  - a tensor whose elements alias each other (an expanded view) may not be written;
  - the result may not need a higher dtype category than the tensor has;
  - the version counter is bumped, so autograd can tell a saved tensor changed;
  - autograd is rebased: the tensor's grad_fn becomes the op's node, and when
    the tensor is a view, its base gets a `CopySlices` node, as in torch."""
from __future__ import annotations

import numpy as np

from .. import dtypes as D
from ..autograd import grad_mode
from ..autograd.node import node_class
from ..autograd.record import standin
from ..dispatch import values, to_storage, apply, TRACER
from ..tensor import Tensor

_grad = grad_mode._state


def check_writable(self: Tensor, allow_overlap: bool = False) -> None:
    """`allow_overlap`: fill_ and zero_ write one value everywhere, which torch allows into an
    expanded tensor (no element's result depends on which alias is written last)."""
    if _grad["enabled"] and not self._requires_grad and self._base is not None and self._base._requires_grad:
        # a view that does not require grad of a base that does was made under no_grad
        raise RuntimeError(
            "A view was created in no_grad mode and is being modified inplace with grad mode enabled. Given that "
            "this use case is ambiguous and error-prone, it is forbidden. You can clarify your code by moving both "
            "the view and the inplace either both inside the no_grad block (if you don't want the inplace to be "
            "tracked) or both outside (if you want the inplace to be tracked).")
    if _grad["enabled"] and self._requires_grad:
        multi = self.__dict__.get("_multi_view")  # (op name, output number), set by split/unbind
        if multi is not None:
            raise RuntimeError(
                f"Output {multi[1]} of {multi[0]} is a view and is being modified inplace. This view is the output "
                "of a function that returns multiple views. Such functions do not allow the output views to be "
                "modified inplace. You should replace the inplace operation by an out-of-place one.")
        if self.grad_fn is None:
            raise RuntimeError("a leaf Variable that requires grad is being used in an in-place operation.")
        base = self._base
        if base is not None and base.grad_fn is None and base._requires_grad:
            raise RuntimeError("a view of a leaf Variable that requires grad is being used in an in-place operation.")
    if allow_overlap:
        return
    st = self._data.strides if self._data.size else ()  # (NumPy gives empty arrays zero strides)
    for n, s in zip(self._data.shape, st):
        if s == 0 and n > 1:
            raise RuntimeError(
                "unsupported operation: more than one element of the written-to tensor refers to a single memory "
                "location. Please clone() the tensor before performing the operation.")


def _check_cast(r: Tensor, self: Tensor) -> None:
    _check_cast_dtype(r.dtype, self)


def _check_cast_dtype(dt: D.DType, self: Tensor) -> None:
    if dt.category > self.dtype.category:
        raise RuntimeError(f"result type {dt.short} can't be cast to the desired output type {self.dtype.short}")


def commit(self: Tensor, r: Tensor) -> Tensor:
    """Write result `r` (computed from `self`) into `self`, with torch's autograd semantics."""
    _check_cast(r, self)
    node = r.grad_fn
    if r.shape != self.shape:
        raise RuntimeError(
            f"output with shape [{', '.join(map(str, self.shape))}] doesn't match the broadcast shape "
            f"[{', '.join(map(str, r.shape))}]")
    saved = node._saved if node is not None else ()
    if saved:
        # a saved `self` (an input of the op) must keep the values from before the write: torch
        # saves a copy of the original then
        saved = [_snapshot(t) if t is self else t for t in saved]
        # a saved input is recorded at its version from before the write: one that shares self's
        # version counter (self.detach(), a view of self) is then caught as modified at backward
        before = [t._vc[0] if t is not None else 0 for t in saved]
    _write(self, r)
    if node is not None:
        if saved:
            # a saved output is `self` after the write (torch saves the in-place result itself),
            # so changing it again in place is caught at backward time
            out = node._saved_out
            saved = tuple(standin(self) if out and out[i] is not None and t is not None else t
                          for i, t in enumerate(saved))
            node._saved = saved
            node._versions = tuple(t._vc[0] if out and out[i] is not None and t is not None else before[i]
                                   for i, t in enumerate(saved))
        _rebase(self, r)
    return self


def _snapshot(t: Tensor) -> Tensor:
    if t._sym is not None:  # traced: keep the symbolic value, not a copy of its stand-in
        from ..tracer.symbolic import snapshot

        return snapshot(t)
    s = Tensor._make(t._data.copy(), t.dtype)
    s._requires_grad = t._requires_grad
    s.grad_fn = t.grad_fn
    s._output_nr = t._output_nr
    return s


def _write(self: Tensor, r: Tensor) -> None:
    if TRACER[0] is not None:  # traced: the tracer records the write as a new value (functionalization)
        TRACER[0].write(self, r)
        return
    src = r._data if r.dtype is self.dtype else to_storage(values(r).astype(D.compute_np(self.dtype))
                                                           if self.dtype is not D.bfloat16 else values(r), self.dtype)
    if self._data.ndim == 0:
        self._data[()] = src
    else:
        self._data[...] = src
    self._vc[0] += 1


def _rebase(self: Tensor, r: Tensor) -> None:
    """`self` now holds r's values: its history becomes r's node (torch's rebase_history)."""
    node = r.grad_fn
    base = self._base
    old_node = self.grad_fn
    if base is None:
        self.grad_fn = node
        self._output_nr = r._output_nr
        self._requires_grad = True
        _move_retained(self, old_node)
        return
    # self is a view: the base's history gains a CopySlices step that routes the gradient of
    # the written region through `node`, and the view is re-derived from the new base
    from ..autograd.node import CopySlices
    from ..autograd.record import edge_of
    from ..creation import from_values

    pos = from_values(_view_positions(base, self), D.int64)
    edges = (edge_of(base),) + tuple(node._edges[1:])
    cs = CopySlices(copy_slices_vjp, edges, (), (node, pos, tuple(base.shape)), 1)
    cs._in_dtypes = (base.dtype,) + tuple(node._in_dtypes[1:]) if node._in_dtypes is not None else None
    base.grad_fn = cs
    base._output_nr = 0
    base._requires_grad = True
    from .movement import AS_STRIDED

    tmp = apply(AS_STRIDED, (base,), {"size": tuple(self.shape), "stride": self.stride(),
                                      "offset": self.storage_offset() - base.storage_offset(),
                                      "in_stride": base.stride()})
    self.grad_fn = tmp.grad_fn
    self._output_nr = 0
    self._requires_grad = True
    _move_retained(self, old_node)


def _move_retained(t: Tensor, old_node) -> None:
    """retain_grad() follows the tensor to its new grad_fn, as in torch."""
    if t._retains_grad and old_node is not None and old_node._retained:
        ref = None
        for nr, w in list(old_node._retained.items()):
            if w() is t:
                ref = w
                del old_node._retained[nr]
        if ref is not None and t.grad_fn is not None:
            if t.grad_fn._retained is None:
                t.grad_fn._retained = {}
            t.grad_fn._retained[t._output_nr] = ref


def _storage_offsets(shape, strides, start: int = 0) -> np.ndarray:
    """Each element's offset in storage, in elements, as an array of `shape`."""
    pos = np.full(shape, start, dtype=np.int64)
    for d, (n, s) in enumerate(zip(shape, strides)):
        dims = [1] * len(shape)
        dims[d] = n
        pos = pos + (np.arange(n, dtype=np.int64) * s).reshape(dims)
    return pos


def _view_positions(base: Tensor, view: Tensor) -> np.ndarray:
    """For each element of `view`, its flat (row-major) index in `base` (from shapes, strides and
    offsets only: a CUDA tensor's memory is not read)."""
    start = view.storage_offset() - base.storage_offset()
    bpos = _storage_offsets(base.shape, base.stride()).reshape(-1)
    vpos = _storage_offsets(view.shape, view.stride(), start)
    order = np.argsort(bpos, kind="stable")
    return order[np.searchsorted(bpos[order], vpos)]


def copy_slices_vjp(ctx, saved, g):
    """CopySlices' rule: the base's gradient is g with the written region replaced by what the
    in-place op sends to its `self` input; the op's other inputs get their gradients as usual.
    Written with tracegrad ops (index / index_put on the flat gradient), so it records a graph
    under create_graph=True."""
    fn, pos, base_shape = ctx
    from .index import INDEX, INDEX_PUT

    flat = g.reshape(-1)
    g_view = apply(INDEX, (flat,), {"index": (pos._data,)})
    grads = fn.apply([g_view])
    g_self = grads[0]
    if g_self is None:
        g_self = g_view * 0
    if g_self.dtype is not g.dtype:
        g_self = g_self.to(g.dtype)
    if tuple(g_self.shape) != tuple(pos.shape):
        g_self = g_self.expand(pos.shape)
    flat = apply(INDEX_PUT, (flat, g_self), {"index": (pos._data,), "accumulate": False})
    return (flat.reshape(base_shape),) + tuple(grads[1:])


def _check_partial_overlap(self: Tensor, a: Tensor) -> None:
    """torch's assert_no_partial_overlap: an input that covers part of the written memory (y[1:] += y[:-1],
    y.mul_(y[0])) is an error; the same memory seen the same way, or layouts too irregular to tell
    (step slices), are not. Only dense tensors on one storage are compared, as torch does."""
    da, ds = a._data, self._data
    if type(da) is not np.ndarray or type(ds) is not np.ndarray or not da.size or not ds.size:
        return
    from ..tensor import _root
    from .shape_util import is_non_overlapping_and_dense

    if _root(da) is not _root(ds):
        return
    item = ds.itemsize
    if da.itemsize != item or not is_non_overlapping_and_dense(da.shape, [x // item for x in da.strides]) \
            or not is_non_overlapping_and_dense(ds.shape, [x // item for x in ds.strides]):
        return
    a0 = da.__array_interface__["data"][0] + min(0, *(st * (n - 1) for n, st in zip(da.shape, da.strides)), 0)
    s0 = ds.__array_interface__["data"][0] + min(0, *(st * (n - 1) for n, st in zip(ds.shape, ds.strides)), 0)
    a1, s1 = a0 + da.size * item, s0 + ds.size * item
    if a0 == s0 and a1 == s1 and da.strides == ds.strides:
        return  # the same elements, in the same order
    if a0 < s1 and s0 < a1:
        raise RuntimeError("unsupported operation: some elements of the input tensor and the written-to tensor "
                           "refer to a single memory location. Please clone() the tensor before performing the "
                           "operation.")


def inplace(fn, promotes: bool = False):
    """Make the in-place method `x.op_(...)` from the out-of-place `op(x, ...)`. `promotes`: the op's
    result dtype is the promotion of self and its first argument, which is checked before computing,
    as torch settles the dtype before its kernel runs (a bool `x //= int_tensor` is a cast error even
    where the division would fail, and `int_x &= float_tensor` is not a missing bitwise kernel)."""

    def method(self, *args, **kwargs):
        check_writable(self)
        if promotes and args and isinstance(args[0], (Tensor, bool, int, float)):
            _check_cast_dtype(D.result_type(self, args[0]), self)
        for a in args:
            if isinstance(a, Tensor) and a is not self:
                _check_partial_overlap(self, a)
        return commit(self, fn(self, *args, **kwargs))

    method.__name__ = fn.__name__ + "_"
    method.__doc__ = f"In-place `{fn.__name__}`: writes the result into self and returns self."
    return method


def with_out(out: Tensor | None, r: Tensor) -> Tensor:
    """What an op with an `out=` argument returns: its result r, or r written into `out`."""
    return r if out is None else write_out(out, r)


def write_out(out: Tensor, r: Tensor) -> Tensor:
    """The `out=` argument: resize if needed, cast, write, and return `out`."""
    if _grad["enabled"] and (r._requires_grad or out._requires_grad):
        # torch names the function: the op that made r, from its node's name (ExpBackward0 -> exp)
        import re

        fn = r.grad_fn.name() if r.grad_fn is not None else "AddBackward0"
        name = re.sub(r"(?<!^)(?=[A-Z])", "_", re.sub(r"Backward\d*$", "", fn)).lower()
        raise RuntimeError(
            f"{name}(): functions with out=... arguments don't support automatic differentiation, but one of "
            "the arguments requires grad.")
    _check_cast(r, out)
    if out.shape != r.shape:
        if out.numel():
            import warnings

            warnings.warn(
                f"An output with one or more elements was resized since it had shape "
                f"[{', '.join(map(str, out.shape))}], which does not match the required output shape "
                f"[{', '.join(map(str, r.shape))}]. This behavior is deprecated, and in a future PyTorch release "
                "outputs will not be resized unless they have zero elements. You can explicitly reuse an out tensor "
                "t by resizing it, inplace, to zero elements with t.resize_(0).", UserWarning, stacklevel=3)
        out._data = np.empty(r.shape, dtype=out.dtype.np)
    _write(out, r)
    return out
