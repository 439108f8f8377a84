"""Symbolic tensors: what a traced function computes with.

A `SymbolicTensor` is a Tensor whose `_sym` names the graph Value it stands
for. Its `_data` is a stand-in array with the real shape, dtype and strides
but no meaningful contents: freshly mapped zero pages that are never written,
so a 10M-element stand-in costs no memory. View ops run on the stand-in (a
NumPy view of it), which gives them exactly the strides and offsets eager mode
would give; everything else reads only metadata.

Reading values is impossible while tracing: `bool(x)`, `x.item()`,
`float(x)`, `x.tolist()`, `x.numpy()` raise `DataDependentError`, naming the
line of the user's code that asked, instead of silently baking in whatever
the stand-in holds.

`Sym` (what `_sym` holds) follows in-place writes: every tensor sharing memory
with a base shares one `Storage`; a write into any of them makes a new value
for the whole storage (functionalization), and the others re-derive theirs
from it the next time an op reads them.
"""
from __future__ import annotations

import linecache
import os
import sys
from typing import NoReturn

import numpy as np

from ..tensor import Tensor

_PKG = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # .../tracegrad


class DataDependentError(RuntimeError):
    """A traced function needed the values of a tensor (Python control flow on data)."""


def user_frame(skip: int = 1):
    """The innermost frame outside the tracegrad package: the user's line that is running."""
    f = sys._getframe(skip)
    while f is not None:
        fn = f.f_code.co_filename
        if not fn.startswith(_PKG) and not fn.startswith("<tracegrad"):
            return f
        f = f.f_back
    return None


def user_loc(skip: int = 2) -> str:
    """'file.py:12' for the user's line that made the current op ('' if none)."""
    f = user_frame(skip)
    if f is None:
        return ""
    return f"{os.path.basename(f.f_code.co_filename)}:{f.f_lineno}"


def describe_frame(f) -> str:
    fn = f.f_code.co_filename
    line = linecache.getline(fn, f.f_lineno).strip()
    s = f'  File "{fn}", line {f.f_lineno}, in {f.f_code.co_name}'
    return s + (f"\n    {line}" if line else "")


def data_dependent(t: Tensor, what: str) -> NoReturn:
    """Raise the error for code that needs the values of traced tensor `t`."""
    f = user_frame(2)
    where = describe_frame(f) if f is not None else "  (no user frame found)"
    shape = f"{t.dtype.name}[{', '.join(map(str, t.shape))}]"
    raise DataDependentError(
        f"{what} needs the values of a traced tensor, but tracing sees only its shape and dtype ({shape}):\n"
        f"{where}\n"
        "Python control flow on tensor values can't be traced. Use tensor ops for value-dependent choices "
        "(tracegrad.where, clamp, masks), or move this code out of the compiled function.")


# ---- stand-in arrays --------------------------------------------------------------------------
# Integer stand-ins hold this value instead of zeros: code that reads an index tensor's memory
# directly (bypassing the ops) gets indices no array has, and an index array built from it is
# recognised when it reaches an op's attrs, even after a copy.
SENTINEL = {np.dtype(np.int64): -(2 ** 62) + 7, np.dtype(np.int32): -(2 ** 30) + 7}


def stand_in(shape, strides, np_dtype) -> np.ndarray:
    """An array with this shape and these element strides over fresh zero memory.

    Large zero allocations are mapped lazily by the OS, so an array that is
    never written costs address space only."""
    shape = tuple(int(s) for s in shape)
    np_dtype = np.dtype(np_dtype)
    if any(n == 0 for n in shape):
        return np.zeros(shape, np_dtype)
    span = 1 + sum((n - 1) * s for n, s in zip(shape, strides))
    fill = SENTINEL.get(np_dtype)
    buf = np.zeros(max(span, 1), np_dtype) if fill is None else np.full(max(span, 1), fill, np_dtype)
    item = np_dtype.itemsize
    return np.lib.stride_tricks.as_strided(buf, shape, tuple(s * item for s in strides))


class Storage:
    """The memory shared by a base tensor and its views, as a value that changes on writes."""

    __slots__ = ("value", "version", "array", "owner", "mutated", "base_shape")

    def __init__(self, value, array: np.ndarray, owner=None):
        self.value = value  # the Value of the base tensor as of `version`
        self.version = 0
        self.array = array  # the base's stand-in: views find their positions in it by address
        self.owner = owner  # what the memory belongs to outside the trace (an input source), or None
        self.mutated = False
        self.base_shape = array.shape


class Sym:
    """What `Tensor._sym` holds: the Value a tensor stands for, kept fresh across writes."""

    __slots__ = ("value", "storage", "version", "is_base", "frozen")

    def __init__(self, value, storage: Storage | None, is_base: bool, frozen: bool = False):
        self.value = value
        self.storage = storage
        self.version = storage.version if storage is not None else 0
        self.is_base = is_base
        self.frozen = frozen  # a snapshot: keeps its value whatever is written later


def make_symbolic(arr: np.ndarray, dtype, sym: Sym, *, requires_grad: bool = False) -> "SymbolicTensor":
    t = SymbolicTensor._make(arr, dtype)
    t._requires_grad = requires_grad
    t._sym = sym
    return t


def alias(t: Tensor, *, share_version: bool, frozen: bool = False) -> "SymbolicTensor":
    """A symbolic tensor for the same value (detach(), .data, a saved snapshot)."""
    s = t._sym
    if frozen:
        sym = Sym(s.value, None, False, frozen=True)
    else:
        sym = Sym(s.value, s.storage, s.is_base)
        sym.version = s.version
    r = make_symbolic(t._data, t.dtype, sym)
    if not frozen:
        r._base = t._base if t._base is not None else t
    if share_version:
        r._vc = t._vc
    return r


def snapshot(t: Tensor) -> "SymbolicTensor":
    """Keep `t`'s current value for a node that saved it, before an in-place write replaces it."""
    r = alias(t, share_version=False, frozen=True)
    r._requires_grad = t._requires_grad
    r.grad_fn = t.grad_fn
    r._output_nr = t._output_nr
    return r


class SymbolicTensor(Tensor):
    """A Tensor seen by the tracer: shape, dtype, strides, autograd fields; no values."""

    __slots__ = ()

    # ---- value reads are data-dependent ------------------------------------------------------
    def _values(self):
        data_dependent(self, "reading the tensor's values")

    def item(self):
        data_dependent(self, ".item()")

    def tolist(self):
        data_dependent(self, ".tolist()")

    def numpy(self, *, force: bool = False):
        data_dependent(self, ".numpy()")

    def __array__(self, dtype=None, copy=None):
        data_dependent(self, "conversion to a NumPy array")

    def __float__(self):
        data_dependent(self, "float()")

    def __int__(self):
        data_dependent(self, "int()")

    def __index__(self):
        data_dependent(self, "using a tensor as an index")

    def __complex__(self):
        data_dependent(self, "complex()")

    def __format__(self, spec: str) -> str:
        return self.__repr__()

    def __repr__(self, *, tensor_contents=None) -> str:
        s = self._sym
        name = s.value.name if s is not None and s.value is not None else "?"
        extra = ""
        if self.grad_fn is not None:
            extra = f", grad_fn=<{type(self.grad_fn).__name__}>"
        elif self._requires_grad:
            extra = ", requires_grad=True"
        return (f"SymbolicTensor({name}: {self.dtype.name}[{', '.join(map(str, self.shape))}]{extra})")

    __str__ = __repr__

    def __reduce_ex__(self, proto):
        data_dependent(self, "pickling")

    def __deepcopy__(self, memo):
        data_dependent(self, "copy.deepcopy()")

    # ---- aliases keep their symbolic value ----------------------------------------------------
    def detach(self) -> "SymbolicTensor":
        return alias(self, share_version=True)

    @property
    def data(self) -> "SymbolicTensor":
        return alias(self, share_version=False)

    @data.setter
    def data(self, other) -> None:
        self._data = other._data
        self.dtype = other.dtype
        if isinstance(other, SymbolicTensor):
            self._sym = Sym(other._sym.value, other._sym.storage, False)
            self._sym.version = other._sym.version
        else:
            from ..dispatch import TRACER

            tr = TRACER[0]
            if tr is None:
                data_dependent(self, ".data assignment")
            self._sym = Sym(tr.value_of(other), None, False, frozen=True)

    # in-place metadata changes (t_, transpose_, ...) make this tensor the view
    def t_(self):
        from ..ops import movement as M

        return _adopt(self, M.t(self))

    def transpose_(self, d0, d1):
        from ..ops import movement as M

        return _adopt(self, M.transpose(self, d0, d1))

    swapaxes_ = transpose_

    def unsqueeze_(self, dim):
        from ..ops import movement as M

        return _adopt(self, M.unsqueeze(self, dim))

    def squeeze_(self, dim=None):
        from ..ops import movement as M

        return _adopt(self, M.squeeze(self, dim))


def _adopt(self: Tensor, r: Tensor) -> Tensor:
    self._data = r._data
    self._sym = r._sym
    if r.grad_fn is not None:
        self.grad_fn, self._output_nr = r.grad_fn, r._output_nr
    return self
