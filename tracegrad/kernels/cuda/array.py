"""DeviceArray: what a CUDA tensor's `_data` is, a strided view of device memory.

A CPU tensor's `_data` is a NumPy array; a CUDA tensor's is a DeviceArray with
the metadata NumPy arrays have (shape, strides in bytes, dtype, size, flags), so
everything in tracegrad that only *reads metadata* works unchanged: shapes,
strides, broadcasting checks, autograd's bookkeeping.

Anything that would *compute* with it (a ufunc, `np.concatenate`, indexing,
arithmetic, a method NumPy arrays have and this class does not) raises
`OnDevice`. That is how ops reach the GPU without the CPU paths paying for a
device check: `dispatch.apply` catches OnDevice and hands the op to the device
dispatcher (eager.py), which runs a Triton kernel.

Three writes are real device operations, because tracegrad's in-place code and
autograd's gradient accumulation write into `_data` directly:

    a[...] = b                        a copy kernel (casting to a's dtype, broadcasting b)
    np.add(a, b, out=a) and friends   the op's kernel, stored into a
    a.copy()                          a contiguous copy on the device
    np.empty_like(a), np.ascontiguousarray(a)   new device memory / a row-major copy

`flags.c_contiguous` is always False: the contiguous fast paths of the CPU code
hand memory to NumPy directly (np.ndarray(buffer=...)), which cannot be caught;
their general paths reach a NumPy call that raises OnDevice.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from ... import dtypes as D
from ...device import OnDevice


class _Flags:
    __slots__ = ("c_contiguous", "f_contiguous")
    writeable = True
    owndata = False

    def __init__(self, c: bool, f: bool):
        self.c_contiguous, self.f_contiguous = c, f

    def __getitem__(self, key: str) -> bool:
        return {"C_CONTIGUOUS": self.c_contiguous, "F_CONTIGUOUS": self.f_contiguous,
                "WRITEABLE": True, "OWNDATA": False}[key.upper()]


_NOT_CONTIGUOUS = _Flags(False, False)


def contiguous_strides(shape) -> tuple[int, ...]:
    """Row-major element strides (a size-0 dim counts as 1, as torch counts it)."""
    st, acc = [], 1
    for n in reversed(tuple(shape)):
        st.append(acc)
        acc *= max(int(n), 1)
    return tuple(reversed(st))


def _is_contiguous(shape, strides) -> bool:
    expected = 1
    for n, s in zip(reversed(shape), reversed(strides)):
        if n == 1:
            continue
        if s != expected:
            return False
        expected *= n
    return True


# ufuncs whose `out=` form (gradient accumulation, in-place arithmetic) runs on the device
_UFUNC_OPS = {"add": "add", "subtract": "sub", "multiply": "mul", "divide": "div", "true_divide": "div",
              "maximum": "maximum", "minimum": "minimum", "negative": "neg"}


class DeviceArray:
    """A view of a DeviceBuffer: shape, element strides and offset into it, and dtypes.

    `dtype` is the NumPy dtype of the storage elements (bfloat16: uint16, as on
    the CPU), `tdtype` the tracegrad dtype the kernels read them as."""

    __slots__ = ("buffer", "shape", "estrides", "offset", "dtype", "tdtype", "device")

    def __init__(self, buffer, shape, estrides, offset: int, tdtype: D.DType):
        self.buffer = buffer
        self.shape = tuple(int(n) for n in shape)
        self.estrides = tuple(int(s) for s in estrides)
        self.offset = int(offset)
        self.tdtype = tdtype
        self.dtype = np.dtype(tdtype.np)
        from ...device import CUDA0

        self.device = CUDA0

    # ---- the metadata NumPy arrays have -------------------------------------------------
    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def size(self) -> int:
        n = 1
        for s in self.shape:
            n *= s
        return n

    @property
    def itemsize(self) -> int:
        return self.dtype.itemsize

    @property
    def nbytes(self) -> int:
        return self.size * self.dtype.itemsize

    @property
    def strides(self) -> tuple[int, ...]:
        item = self.dtype.itemsize
        return tuple(s * item for s in self.estrides)

    @property
    def flags(self) -> _Flags:
        # never contiguous to NumPy's eyes: the CPU code's contiguous fast paths hand the memory to
        # NumPy (np.ndarray(buffer=...), reshape), which device memory cannot take; their general
        # paths end in a NumPy call that raises OnDevice. `contiguous` says what the layout is.
        return _NOT_CONTIGUOUS

    @property
    def contiguous(self) -> bool:
        """Row-major and dense (what NumPy's flags.c_contiguous would say of host memory)."""
        return self.size <= 1 or _is_contiguous(self.shape, self.estrides)

    @property
    def base(self):
        return None

    def data_ptr(self) -> int:
        """The address of the first element (the storage's address plus the offset)."""
        return self.buffer.data_ptr() + self.offset * self.dtype.itemsize

    def __repr__(self) -> str:
        return (f"DeviceArray(shape={self.shape}, strides={self.estrides}, offset={self.offset}, "
                f"dtype={self.tdtype.name}, device='{self.device}')")

    # ---- the device operations tracegrad's CPU code reaches directly ----------------------
    def copy(self, order: str = "C") -> "DeviceArray":
        from . import eager

        return eager.copy_array(self)

    def __setitem__(self, key, value) -> None:
        if key is not Ellipsis and key != ():
            raise OnDevice("only whole-tensor writes (t[...] = v) reach device memory directly")
        from . import eager

        eager.write(self, value)

    def __array_ufunc__(self, ufunc, method, *inputs, out=None, **kwargs):
        name = _UFUNC_OPS.get(ufunc.__name__)
        if (method == "__call__" and name is not None and out is not None and len(out) == 1
                and isinstance(out[0], DeviceArray) and not kwargs):
            from . import eager

            eager.ufunc_into(name, inputs, out[0])
            return out[0]
        raise OnDevice(f"NumPy's {ufunc.__name__} on device memory")

    # ---- everything else computes on host memory: refuse ----------------------------------
    def __array_function__(self, func, types, args, kwargs):
        # the two allocations tracegrad's CPU code makes for results it then writes (gradient
        # accumulation, row-major outputs) mean the same on the device
        if func is np.empty_like and len(args) == 1 and not kwargs:
            from . import eager

            return eager.empty(self.shape, self.tdtype)
        if func is np.ascontiguousarray and len(args) == 1 and not kwargs:
            from . import eager

            return self if self.contiguous else eager.copy_array(self)
        raise OnDevice(f"NumPy's {getattr(func, '__name__', func)} on device memory")

    def __array__(self, dtype=None, copy=None):
        raise OnDevice("device memory cannot be read as a NumPy array; copy it to the host (.cpu()) first")

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):  # protocol probes (copy, pickle, NumPy's interfaces) see nothing
            raise AttributeError(name)
        raise OnDevice(f"ndarray.{name} on device memory")

    def __getitem__(self, key):
        raise OnDevice("indexing device memory as a NumPy array")

    def __len__(self) -> int:
        raise OnDevice("len() of device memory as a NumPy array")

    def __iter__(self):
        raise OnDevice("iterating device memory as a NumPy array")

    def __bool__(self) -> bool:
        raise OnDevice("bool() of device memory")

    def __float__(self) -> float:
        raise OnDevice("float() of device memory")

    def __int__(self) -> int:
        raise OnDevice("int() of device memory")

    __index__ = __int__


def _refuse(name: str):
    def method(self, *args, **kwargs):
        raise OnDevice(f"the {name} operator on device memory as a NumPy array")

    method.__name__ = name
    return method


for _name in ("add", "sub", "mul", "truediv", "floordiv", "mod", "pow", "matmul", "and", "or", "xor",
              "lshift", "rshift", "lt", "le", "gt", "ge", "neg", "pos", "abs", "invert"):
    for _form in ("__{}__", "__r{}__", "__i{}__"):
        _n = _form.format(_name)
        if _form != "__{}__" and _name in ("lt", "le", "gt", "ge", "neg", "pos", "abs", "invert"):
            continue
        setattr(DeviceArray, _n, _refuse(_n))
DeviceArray.__eq__ = _refuse("__eq__")
DeviceArray.__ne__ = _refuse("__ne__")
DeviceArray.__hash__ = object.__hash__
