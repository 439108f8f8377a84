"""Running generated kernels on the CPU under Triton's interpreter, on NumPy memory.

Triton's interpreter (`TRITON_INTERPRET=1`) executes a kernel's Python source
with NumPy, one program at a time. It expects torch tensors as arguments; what it
actually uses of them is small, and `NumpyBuffer` provides exactly that:

    data_ptr(), dtype                     the pointer and its element type (str(dtype)
                                          ends in a torch dtype name: 'tracegrad.float32')
    untyped_storage(), storage_offset(),  the interpreter copies "device" arguments to
    size(), stride(), new_empty(), set_(), the host and back; NumPy memory already is
    cpu(), copy_()                        on the host, so these hand back the same memory

The kernel indexes with the strides and offset baked into its source, so a buffer
is always a whole storage (a 1-D array), never a view: `storage_of(view)` gives
the storage and the (shape, strides, offset) that describe the view in it.

Triton's interpreter cannot call CUDA's libdevice; `LIBDEVICE` stands in for it
with NumPy's functions of the same meaning, so the same source runs both ways.
Likewise the generated `_tg_reduce_*` helpers (a `tl.reduce` with a jit combine,
which the interpreter would run one element at a time) become NumPy reductions,
and `_tg_dot*` a NumPy matmul that reads bfloat16 bits as numbers (Triton's
interpreter multiplies the raw uint16 bits) and rounds TF32 inputs as tensor
cores do.

How the interpreter is switched on: Triton reads its `TRITON_INTERPRET` knob when
`@triton.jit` decorates a function. Generated modules are executed with the knob
set (launch.interpret_mode), so their kernels are interpreted while the rest of the
process compiles for real; they call only Triton builtins, never @jit functions of
Triton's standard library (tl.sum, tl.sigmoid, tl.zeros), which were decorated when
Triton was first imported and would need the variable set before that.
"""
from __future__ import annotations

import contextlib
from typing import Any, Iterator, Mapping

import numpy as np

from ... import dtypes as D
from .render import KernelSource, render
from .spec import KernelSpec


class _Storage:
    """The storage of a NumpyBuffer: the interpreter only asks its address and copies it."""

    def __init__(self, buf: "NumpyBuffer"):
        self._buf = buf

    def data_ptr(self) -> int:
        return self._buf.array.__array_interface__["data"][0]

    def cpu(self) -> "_Storage":
        return self  # already host memory

    def copy_(self, other: "_Storage") -> None:
        if other.data_ptr() != self.data_ptr():
            np.copyto(self._buf.array, other._buf.array)


class NumpyBuffer:
    """A 1-D NumPy array (a whole storage) as the tensor-like argument Triton takes.

    dtype is the tracegrad dtype of the elements; bfloat16 storages are uint16
    arrays holding the bits, as tracegrad keeps them."""

    device = "cpu"

    def __init__(self, array: np.ndarray, dtype: "D.DType | None" = None, _offset: int = 0):
        if array.ndim != 1 or not array.flags.c_contiguous:
            raise ValueError("a NumpyBuffer wraps a contiguous 1-D array (a storage); describe views by strides")
        self.array = array
        self.dtype = dtype if dtype is not None else D.from_numpy_dtype(array.dtype)
        if self.dtype.itemsize != array.itemsize:
            raise TypeError(f"{array.dtype} memory cannot hold {self.dtype.name} elements")
        self._offset = _offset

    # what the interpreter reads
    def data_ptr(self) -> int:
        return self.array.__array_interface__["data"][0] + self._offset * self.array.itemsize

    def element_size(self) -> int:
        return self.array.itemsize

    def untyped_storage(self) -> _Storage:
        return _Storage(self)

    def storage_offset(self) -> int:
        return self._offset

    def size(self) -> tuple[int, ...]:
        return (self.array.shape[0] - self._offset,)

    def stride(self) -> tuple[int, ...]:
        return (1,)

    @property
    def shape(self) -> tuple[int, ...]:
        return self.size()

    def new_empty(self, *size, device=None) -> "NumpyBuffer":
        return NumpyBuffer(self.array, self.dtype)

    def set_(self, storage: _Storage, offset: int, size, stride) -> "NumpyBuffer":
        self.array = storage._buf.array
        self._offset = int(offset)
        return self

    def cpu(self) -> "NumpyBuffer":
        return self

    def copy_(self, other: "NumpyBuffer") -> None:
        if other.data_ptr() != self.data_ptr():
            np.copyto(self.array[self._offset:], other.array[other._offset:])

    def __repr__(self) -> str:
        return f"NumpyBuffer({self.array.shape[0]} x {self.dtype.name})"


def storage_of(view: np.ndarray) -> tuple[np.ndarray, tuple[int, ...], tuple[int, ...], int]:
    """(storage, shape, strides, offset) of a NumPy view, strides and offset in elements.

    The storage is the view's base array flattened; what Load/Store take to read
    or write the view inside it."""
    root = view
    while isinstance(root.base, np.ndarray):
        root = root.base
    if not root.flags.c_contiguous:
        raise ValueError("the view's base array is not contiguous")
    flat = root.reshape(-1).view(view.dtype) if root.dtype == view.dtype else None
    if flat is None:
        raise TypeError("the view reinterprets its base's dtype; pass the storage explicitly")
    item = view.itemsize
    off_bytes = view.__array_interface__["data"][0] - root.__array_interface__["data"][0]
    strides = tuple(s // item for s in view.strides)
    return flat, tuple(view.shape), strides, off_bytes // item


def run(kernel: "KernelSpec | KernelSource", buffers: Mapping[str, Any]) -> KernelSource:
    """Render (if given a spec) and run a kernel under the interpreter on NumPy storages.

    buffers maps each load/store name to a 1-D array (or a NumpyBuffer); the
    spec's dtypes say how to read them. Stores write into the arrays in place."""
    from .launch import launch

    source = render(kernel) if isinstance(kernel, KernelSpec) else kernel
    wrapped: dict[str, NumpyBuffer] = {}
    for p in source.params:
        b = buffers[p.buffer]
        wrapped[p.buffer] = b if isinstance(b, NumpyBuffer) else NumpyBuffer(np.asarray(b), p.dtype)
    with np.errstate(all="ignore"):  # a GPU does not warn on inf/nan; neither do we
        launch(source, wrapped, interpret=True)
    return source


@contextlib.contextmanager
def gpu_rounding() -> Iterator[None]:
    """Inside the block, the interpreter narrows float32 to bfloat16 as a GPU does.

    `x.to(tl.bfloat16)` compiles to cvt.rn.bf16.f32 (round to nearest even) on
    the GPU, but Triton's interpreter truncates, which drifts a chain of bfloat16
    ops away from torch by an ulp per op. The interpreter's cast is swapped for
    tracegrad's own rounding (the one the CPU ops use) while the block runs."""
    import triton.language as tl
    from triton.runtime import interpreter as I

    from ...dispatch import f32_to_bf16

    original = I.InterpreterBuilder.cast_impl

    def cast_impl(self, src, dst_type):
        if src.dtype.scalar == tl.float32 and dst_type.scalar == tl.bfloat16:
            data = np.asarray(src.data, np.float32)
            return I.TensorHandle(f32_to_bf16(data).reshape(data.shape), dst_type.scalar)
        return original(self, src, dst_type)

    I.InterpreterBuilder.cast_impl = cast_impl
    try:
        yield
    finally:
        I.InterpreterBuilder.cast_impl = original


# ---- libdevice on NumPy -----------------------------------------------------------------------
def _lift(fn):
    """A libdevice function over interpreter tensors, computed with NumPy `fn`."""

    def call(*args, _semantic=None, **_):
        import triton.language as tl
        from triton.runtime.interpreter import TensorHandle

        tensors = [a for a in args if isinstance(a, tl.tensor)]
        ref = tensors[0]
        sty = ref.dtype
        data = [a.handle.data if isinstance(a, tl.tensor) else a for a in args]
        npty = ref.handle.data.dtype
        data = [d if isinstance(d, np.ndarray) else np.asarray(d, dtype=npty) for d in data]
        with np.errstate(all="ignore"):
            out = np.asarray(fn(*data)).astype(npty, copy=False)
        shapes = [list(a.shape) for a in tensors if a.type.is_block()]
        if shapes:
            shape = list(np.broadcast_shapes(*[tuple(s) for s in shapes]))
            out = np.broadcast_to(out, shape).copy() if list(out.shape) != shape else out
            return tl.tensor(TensorHandle(out, sty), tl.block_type(sty, shape))
        return tl.tensor(TensorHandle(out.reshape(ref.handle.data.shape), sty), sty)

    return call


def _erf(x):
    import math

    flat = np.asarray(x).reshape(-1)
    return np.fromiter((math.erf(v) for v in flat.tolist()), dtype=flat.dtype, count=flat.size).reshape(np.shape(x))


class _Libdevice:
    """libdevice's functions (the ones the op table lowers to) on NumPy."""

    _FUNCS = {
        "exp": np.exp, "expm1": np.expm1, "log": np.log, "log10": np.log10, "log1p": np.log1p, "log2": np.log2,
        "sqrt": np.sqrt, "rsqrt": lambda x: 1 / np.sqrt(x), "sin": np.sin, "cos": np.cos, "tan": np.tan,
        "asin": np.arcsin, "acos": np.arccos, "atan": np.arctan, "sinh": np.sinh, "cosh": np.cosh,
        "tanh": np.tanh, "erf": _erf, "trunc": np.trunc, "floor": np.floor, "ceil": np.ceil,
        "nearbyint": np.rint, "rint": np.rint, "round": lambda x: np.sign(x) * np.floor(np.abs(x) + 0.5),
        "pow": np.power, "fmod": np.fmod, "atan2": np.arctan2, "div_rn": np.divide, "fabs": np.abs,
    }

    def __getattr__(self, name: str):
        try:
            return _lift(self._FUNCS[name])
        except KeyError:
            raise AttributeError(f"libdevice.{name} has no NumPy stand-in for the interpreter") from None


LIBDEVICE = _Libdevice()


def _reducer(np_fn):
    """A `_tg_reduce_*` helper on NumPy: reduce over an axis, keeping it (size 1)."""

    def call(x, axis, *_, **__):
        import triton.language as tl
        from triton.runtime.interpreter import TensorHandle

        data = x.handle.data
        axis = getattr(axis, "value", axis)
        with np.errstate(all="ignore"):
            out = np.asarray(np_fn(data, axis=axis, keepdims=True)).astype(data.dtype, copy=False)
        return tl.tensor(TensorHandle(out, x.dtype), tl.block_type(x.dtype, list(out.shape)))

    return call


def _as_f32(t) -> np.ndarray:
    """An interpreter tensor's values as float32 (bfloat16 arrives as its uint16 bits)."""
    import triton.language as tl

    data = t.handle.data
    if t.dtype == tl.bfloat16:
        return (data.astype(np.uint32) << 16).view(np.float32)
    return data.astype(np.float32)


def _round_tf32(x: np.ndarray) -> np.ndarray:
    """float32 rounded to TF32's 10-bit mantissa (to nearest even), as tensor cores read it."""
    b = x.astype(np.float32).view(np.uint32)
    r = (b + np.uint32(0xFFF) + ((b >> 13) & np.uint32(1))) & np.uint32(0xFFFFE000)
    return np.where(np.isfinite(x), r.view(np.float32), x)


def _dot(precision: str):
    """The matmul template's `_tg_dot*` helper on NumPy: products summed in the accumulator's type."""

    def call(a, b, acc, *_, **__):
        import triton.language as tl
        from triton.runtime.interpreter import TensorHandle

        acc_np = acc.handle.data
        if acc_np.dtype == np.float64:
            x, y = a.handle.data.astype(np.float64), b.handle.data.astype(np.float64)
        else:
            x, y = _as_f32(a), _as_f32(b)
            if precision == "tf32":
                x, y = _round_tf32(x), _round_tf32(y)
        out = (np.matmul(x, y) + acc_np).astype(acc_np.dtype)
        return tl.tensor(TensorHandle(out, acc.dtype), acc.type)

    return call


def _sort_rows(x, *_, **__):
    """The `_tg_sort_rows` helper (tl.sort along the last axis) on NumPy."""
    import triton.language as tl
    from triton.runtime.interpreter import TensorHandle

    out = np.sort(x.handle.data, axis=-1)
    return tl.tensor(TensorHandle(out, x.dtype), x.type)


# the tree reductions of generated kernels, as NumPy reductions (np.max/np.min propagate NaN,
# as torch's max does; np.sum sums pairwise, close to the GPU's tree)
REDUCERS = {
    "_tg_reduce_add": _reducer(np.sum),
    "_tg_reduce_mul": _reducer(np.prod),
    "_tg_reduce_max": _reducer(np.max),
    "_tg_reduce_min": _reducer(np.min),
    "_tg_sort_rows": _sort_rows,
    "_tg_dot": _dot("ieee"),
    "_tg_dot_ieee": _dot("ieee"),
    "_tg_dot_tf32": _dot("tf32"),
}
