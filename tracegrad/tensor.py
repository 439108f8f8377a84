"""Tensor: a NumPy array view over shared storage, plus autograd fields.

Storage and views work as in torch: `_data` is a NumPy view into one buffer, so
`view`, slicing, `t()`... share memory, and `stride()` / `storage_offset()` are
read off NumPy's byte strides and data pointer. Views share the base's version
counter `_vc`, which in-place ops bump so autograd can spot stale saved tensors.

Math lives in `tracegrad/ops/`; the methods are attached at the bottom of this
file, so `x.add(y)`, `tracegrad.add(x, y)` and `x + y` are the same function."""
from __future__ import annotations

import warnings

import numpy as np

from . import dtypes as D
from .device import CPU, check_device
from .autograd import grad_mode
from . import autograd as _autograd  # Tensor.backward calls into it

_grad = grad_mode._state


class Size(tuple):
    """A tuple of dims that prints as `tracegrad.Size([5, 3])`."""

    def __new__(cls, seq=()):
        items = tuple(seq)
        if all(type(s) is int for s in items):
            return tuple.__new__(cls, items)
        dims = []
        for i, s in enumerate(items):  # torch takes ints and one-element integer tensors, nothing else
            if isinstance(s, (bool, int, np.integer)):
                dims.append(int(s))
            elif isinstance(s, Tensor) and s.numel() == 1 and not s.dtype.is_floating_point:
                dims.append(int(s))
            else:
                raise TypeError(f"torch.Size() takes an iterable of 'int' (item {i} is '{type(s).__name__}')")
        return tuple.__new__(cls, dims)

    def __repr__(self) -> str:
        return f"tracegrad.Size([{', '.join(str(int(s)) for s in self)}])"

    __str__ = __repr__

    def numel(self) -> int:
        n = 1
        for s in self:
            n *= s
        return n

    def __getitem__(self, i):
        r = tuple.__getitem__(self, i)
        return tuple.__new__(Size, r) if isinstance(i, slice) else r

    # tuple arithmetic keeps the Size type, as torch.Size's does (`(1,) + x.shape`, `x.shape * 2`)
    def __add__(self, other):
        if not isinstance(other, tuple):
            raise TypeError(f"can only concatenate tuple (not {type(other).__name__}) to torch.Size")
        return Size(tuple.__add__(self, other))

    def __radd__(self, other):
        if not isinstance(other, tuple):
            return NotImplemented
        return Size(tuple.__add__(other, self))

    def __mul__(self, n):
        return tuple.__new__(Size, tuple.__mul__(self, n))

    __rmul__ = __mul__


_TRACER_SLOT: list = []


def _tracer_slot() -> list:
    """dispatch.TRACER (dispatch imports this module, so it is looked up on first use)."""
    if not _TRACER_SLOT:
        from .dispatch import TRACER

        _TRACER_SLOT.append(TRACER)
    return _TRACER_SLOT[0]


# the C++ type names torch's messages use for a dtype (where they differ from dtype.short)
_CXX_TYPE_NAMES = {"Float": "float", "Double": "double", "Half": "c10::Half", "BFloat16": "c10::BFloat16",
                   "Long": "long int", "Int": "int", "Short": "short int", "Char": "signed char",
                   "Byte": "unsigned char", "Bool": "bool"}

class Tensor:
    # Only what every tensor sets lives in slots: a tensor is made per op, and each attribute
    # set costs time. The autograd fields are class-level defaults until an op or the user
    # changes them (then they live in the instance's __dict__).
    __slots__ = ("_data", "dtype", "_vc", "__weakref__", "__dict__")
    _requires_grad = False
    _grad = None
    grad_fn = None
    _output_nr = 0
    _base = None  # the tensor whose storage this view shares (None: owns its storage)
    _accum = None  # the AccumulateGrad node of a leaf, made on first use
    _hooks = None
    _retains_grad = False
    _sym = None  # the tracer's node, while tracing
    # NumPy defers binary operators to ours (as torch's 1000 makes it): `np.float64(2) * x` is a
    # tensor of x's dtype, not a float64 ndarray
    __array_priority__ = 1000

    # ---- construction -------------------------------------------------------
    def __new__(cls, *args, **kwargs):
        return object.__new__(cls)

    def __init__(self, *args, device=None, dtype=None):
        """The legacy constructor: `Tensor(2, 3)` is uninitialised float, `Tensor(data)` copies
        (or shares a float32 ndarray, as torch does)."""
        from .creation import _legacy_tensor

        if args and isinstance(args[0], Tensor) and len(args) == 1:
            src = args[0]
            self._init(src._data, src.dtype)
            self._base = src if src._base is None else src._base
            self._vc = src._vc
            return
        arr, dt = _legacy_tensor(args, dtype or D.get_default_dtype(), device)
        self._init(arr, dt)

    def _init(self, arr, dt):
        self._data = arr
        self.dtype = dt
        self._vc = [0]
        d = self.__dict__
        if d:
            d.clear()  # a fresh autograd identity (Parameter re-initialises an existing tensor)

    @classmethod
    def _make(cls, arr: np.ndarray, dt: D.DType) -> "Tensor":
        t = object.__new__(cls)
        t._data = arr
        t.dtype = dt
        t._vc = [0]
        return t

    # ---- metadata -------------------------------------------------------------
    @property
    def shape(self) -> Size:
        return tuple.__new__(Size, self._data.shape)

    def size(self, dim: int | None = None):
        if dim is None:
            return tuple.__new__(Size, self._data.shape)
        return self._data.shape[_wrap_dim(dim, self._data.ndim)]

    @property
    def ndim(self) -> int:
        return self._data.ndim

    def dim(self) -> int:
        return self._data.ndim

    ndimension = dim

    def numel(self) -> int:
        return self._data.size

    nelement = numel

    def element_size(self) -> int:
        return self.dtype.itemsize

    @property
    def itemsize(self) -> int:
        return self.dtype.itemsize

    @property
    def nbytes(self) -> int:
        return self._data.size * self.dtype.itemsize

    @property
    def device(self):
        d = self._data
        return CPU if type(d) is np.ndarray else d.device  # a CUDA tensor's _data is a DeviceArray

    @property
    def is_cuda(self) -> bool:
        return self.device.type == "cuda"

    @property
    def is_cpu(self) -> bool:
        return self.device.type == "cpu"

    def get_device(self) -> int:
        return 0 if self.is_cuda else -1

    def is_floating_point(self) -> bool:
        return self.dtype.is_floating_point

    def is_complex(self) -> bool:
        return False

    def is_signed(self) -> bool:
        return self.dtype.is_signed

    def is_same_size(self, other) -> bool:
        return self.shape == other.shape

    def is_nonzero(self) -> bool:
        return self.__bool__()

    def dim_order(self) -> tuple:
        """The dims from outermost to innermost in memory (largest stride first; ties keep dim order)."""
        st = self.stride()
        return tuple(sorted(range(self.ndim), key=lambda d: -st[d]))

    @property
    def layout(self):
        return "strided"

    def stride(self, dim: int | None = None):
        st = tuple(s // self.dtype.itemsize for s in self._data.strides)
        if self._data.size == 0 and not any(st) and st:  # NumPy zeroes an empty array's strides; torch does not
            st = _contiguous_strides(self._data.shape)
        if dim is None:
            return st
        return st[_wrap_dim(dim, self._data.ndim)]

    def storage_offset(self) -> int:
        if type(self._data) is not np.ndarray:  # device memory keeps its offset itself
            return self._data.offset
        root = _root(self._data)
        return (self._data.__array_interface__["data"][0] - root.__array_interface__["data"][0]) // self.dtype.itemsize

    def data_ptr(self) -> int:
        if type(self._data) is not np.ndarray:
            return self._data.data_ptr()
        return self._data.__array_interface__["data"][0]

    def untyped_storage(self):
        return _Storage(_root(self._data))

    def is_contiguous(self, memory_format=None) -> bool:
        if self._data.size == 0:
            return True
        expected = self.dtype.itemsize
        for n, s in zip(reversed(self._data.shape), reversed(self._data.strides)):
            if n == 1:
                continue
            if s != expected:
                return False
            expected *= n
        return True

    def _values(self) -> np.ndarray:
        x = self._data
        if type(x) is np.ndarray and self.dtype is not D.bfloat16:
            return x  # (the common case, without the import below)
        if type(x) is not np.ndarray:  # device memory: a host copy
            from .kernels.cuda.eager import host_values

            return host_values(self)
        from .dispatch import values

        return values(self)

    # ---- autograd fields --------------------------------------------------------
    @property
    def requires_grad(self) -> bool:
        return self._requires_grad

    @requires_grad.setter
    def requires_grad(self, flag: bool) -> None:
        if self.grad_fn is not None:  # torch refuses any assignment on a non-leaf
            msg = "you can only change requires_grad flags of leaf variables."
            if not flag:  # (torch adds the hint when the flag is being turned off)
                msg += (" If you want to use a computed variable in a subgraph that doesn't require "
                        "differentiation use var_no_grad = var.detach().")
            raise RuntimeError(msg)
        if flag and not self.dtype.is_floating_point:
            raise RuntimeError("only Tensors of floating point and complex dtype can require gradients")
        self._requires_grad = bool(flag)

    def requires_grad_(self, requires_grad: bool = True) -> "Tensor":
        if requires_grad and not self.dtype.is_floating_point:
            raise RuntimeError("only Tensors of floating point dtype can require gradients")
        if self.grad_fn is not None and not requires_grad:
            raise RuntimeError(
                "you can only change requires_grad flags of leaf variables. If you want to use a "
                "computed variable in a subgraph that doesn't require differentiation use "
                "var_no_grad = var.detach()."
            )
        self._requires_grad = bool(requires_grad)
        return self

    @property
    def is_leaf(self) -> bool:
        return self.grad_fn is None

    @property
    def grad(self):
        if self.grad_fn is not None and not self._retains_grad:
            warnings.warn(
                "The .grad attribute of a Tensor that is not a leaf Tensor is being accessed. Its .grad "
                "attribute won't be populated during autograd.backward(). If you indeed want the .grad "
                "field to be populated for a non-leaf Tensor, use .retain_grad() on the non-leaf Tensor. "
                "If you access the non-leaf Tensor by mistake, make sure you access the leaf Tensor "
                "instead. See github.com/pytorch/pytorch/pull/30531 for more information.",
                UserWarning,
                stacklevel=2,
            )
        return self._grad

    @grad.setter
    def grad(self, value) -> None:
        if value is not None:
            if not isinstance(value, Tensor):
                raise TypeError(f"assigned grad expected to be a Tensor or None but got grad of type {type(value).__name__}")
            if value.shape != self.shape:
                raise RuntimeError(f"attempting to assign a gradient of size '{list(value.shape)}' to a tensor "
                                   f"of size '{list(self.shape)}'. Please ensure that the gradient and the "
                                   "tensor are the same size")
            if value.dtype is not self.dtype:
                # torch names the gradient's dtype by its C++ type and the tensor's by its scalar type
                cxx = _CXX_TYPE_NAMES.get(value.dtype.short, value.dtype.short)
                raise RuntimeError(
                    f"attempting to assign a gradient with dtype '{cxx}' to a tensor with grad_dtype "
                    f"'{self.dtype.short}'. The gradient must match the tensor's grad_dtype (defaults to the "
                    "tensor's dtype). You can set the tensor's grad_dtype attribute with a specific dtype, or "
                    "None to allow any dtype. Set grad_dtype with caution. Diverging the dtypes of a tensor "
                    "and its gradient may break downstream systems that assume they match.")
        tracer = _tracer_slot()[0]
        if tracer is not None:  # traced: the tracer restores .grad afterwards and replays the change
            tracer.touch_grad(self)
        self._grad = value

    @property
    def retains_grad(self) -> bool:
        return self._retains_grad

    @property
    def _version(self) -> int:
        return self._vc[0]

    @property
    def data(self) -> "Tensor":
        """The same storage, outside autograd: no history, and its own version counter."""
        return Tensor._make(self._data, self.dtype)

    @data.setter
    def data(self, other: "Tensor") -> None:
        self._data = other._data
        self.dtype = other.dtype

    def detach(self) -> "Tensor":
        """The same storage and version counter, cut from the graph (a leaf that needs no grad)."""
        t = Tensor._make(self._data, self.dtype)
        t._vc = self._vc
        return t

    def detach_(self) -> "Tensor":
        if self._base is not None:
            raise RuntimeError(
                "Can't detach views in-place. Use detach() instead. If you are using DistributedDataParallel "
                "(DDP) for training, and gradient_as_bucket_view is set as True, gradients are views of DDP "
                "buckets, and hence detach_() cannot be called on these gradients. To fix this error, please "
                "refer to the Optimizer.zero_grad() function in tracegrad/optim/optimizer.py as the solution.")
        self.grad_fn = None
        self._output_nr = 0
        self._requires_grad = False
        return self

    def register_post_accumulate_grad_hook(self, hook):
        """hook(tensor) runs after a backward pass has accumulated into this leaf's .grad."""
        if self.grad_fn is not None:
            raise RuntimeError("post accumulate grad hooks cannot be registered on non-leaf tensors")
        if not self._requires_grad:
            raise RuntimeError("cannot register a hook on a tensor that doesn't require gradient")
        from .autograd.record import accumulator
        from .autograd.node import RemovableHandle

        acc = accumulator(self)
        if acc._post_hooks is None:
            acc._post_hooks = []
        acc._post_hooks.append(hook)
        return RemovableHandle(acc._post_hooks, hook)

    def retain_grad(self) -> None:
        if not self._requires_grad:
            raise RuntimeError("can't retain_grad on Tensor that has requires_grad=False")
        if self.grad_fn is None:
            return
        import weakref

        if self.grad_fn._retained is None:
            self.grad_fn._retained = {}
        self.grad_fn._retained[self._output_nr] = weakref.ref(self)
        self._retains_grad = True

    def register_hook(self, hook):
        if not self._requires_grad:
            raise RuntimeError("cannot register a hook on a tensor that doesn't require gradient")
        from .autograd.node import _Handle

        if self.grad_fn is None:
            if self._hooks is None:
                self._hooks = []
            self._hooks.append(hook)
            return _Handle(self._hooks, hook)
        d = self.grad_fn._tensor_pre_hooks
        if d is None:
            d = self.grad_fn._tensor_pre_hooks = {}
        lst = d.setdefault(self._output_nr, [])
        lst.append(hook)
        return _Handle(lst, hook)

    def backward(self, gradient=None, retain_graph=None, create_graph=False, inputs=None) -> None:
        """Accumulate the gradient of this tensor into the leaves' .grad (see tracegrad.autograd.backward)."""
        _autograd.backward(self, gradient, retain_graph=retain_graph, create_graph=create_graph, inputs=inputs)

    # ---- conversion ---------------------------------------------------------------
    def numpy(self, *, force: bool = False) -> np.ndarray:
        if self._requires_grad and not force:
            raise RuntimeError("Can't call numpy() on Tensor that requires grad. Use tensor.detach().numpy() instead.")
        if self.dtype is D.bfloat16:
            raise TypeError("Got unsupported ScalarType BFloat16")
        if type(self._data) is not np.ndarray:
            raise TypeError(f"can't convert {self.device} device type tensor to numpy. Use Tensor.cpu() to copy "
                            "the tensor to host memory first.")
        return self._data

    def __array__(self, dtype=None, copy=None):
        if self.dtype is D.bfloat16:  # NumPy has no bfloat16 (torch refuses the same way)
            raise TypeError("Got unsupported ScalarType BFloat16")
        a = self._values()
        return a if dtype is None else a.astype(dtype)

    def tolist(self):
        return self._values().tolist()

    def item(self):
        x = self._data
        if x.size != 1:
            raise RuntimeError(f"a Tensor with {x.size} elements cannot be converted to Scalar")
        if self.dtype is D.bfloat16 or type(x) is not np.ndarray:  # (widened, or copied from the device)
            return self._values().reshape(()).item()
        return x.item()  # (loss.item() runs every step: no widening or reshape for the other dtypes)

    def __len__(self) -> int:
        if self._data.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return self._data.shape[0]

    def __iter__(self):
        if self._data.ndim == 0:
            raise TypeError("iteration over a 0-d tensor")
        return iter(self.unbind(0))

    def __bool__(self) -> bool:
        if self._sym is not None:
            from .tracer.symbolic import data_dependent

            data_dependent(self, "bool()")
        if self._data.size == 0:  # torch words the empty case apart from the many-values case
            raise RuntimeError("Boolean value of Tensor with no values is ambiguous")
        if self._data.size != 1:
            raise RuntimeError("Boolean value of Tensor with more than one value is ambiguous")
        return bool(self._values().reshape(()))

    def __contains__(self, element) -> bool:
        # torch: `element in t` is (element == t).any(); without this Python falls back to iterating
        # and calling bool() on each row, which raises for any tensor of 2+ dims
        if isinstance(element, (Tensor, int, float, bool)):
            return bool((self == element).any().item())
        raise RuntimeError(f"Tensor.__contains__ only supports Tensor or scalar, but you passed in a "
                           f"{type(element)}.")

    def __float__(self) -> float:
        if self._data.size != 1:
            raise ValueError("only one element tensors can be converted to Python scalars")
        return float(self._values().reshape(()))

    def __int__(self) -> int:
        if self._data.size != 1:
            raise ValueError("only one element tensors can be converted to Python scalars")
        return int(self._values().reshape(()))

    def __index__(self) -> int:
        if self.dtype.category != D._INT and self.dtype is not D.bool_ or self._data.size != 1:
            raise TypeError("only integer tensors of a single element can be converted to an index")
        return int(self._data.reshape(()))

    def __complex__(self):
        if self._data.size != 1:
            raise ValueError("only one element tensors can be converted to Python scalars")
        return complex(self.item())

    def __hash__(self) -> int:
        return id(self)

    def __repr__(self, *, tensor_contents=None) -> str:
        from .printing import tensor_repr

        return tensor_repr(self)

    __str__ = __repr__

    def __format__(self, spec: str) -> str:
        if self._data.ndim == 0:
            return format(self.item(), spec)
        return object.__format__(self, spec)

    def __reduce_ex__(self, proto):
        from .creation import _rebuild

        return (_rebuild, (np.array(self._data), self.dtype.name, self._requires_grad))

    def __copy__(self):
        # torch: copy.copy(x) is a new tensor over the same storage (writes show through), not a copy
        t = Tensor._make(self._data, self.dtype)
        t._requires_grad = self._requires_grad
        t.__class__ = type(self)
        return t

    def __deepcopy__(self, memo):
        if id(self) in memo:
            return memo[id(self)]
        if self.grad_fn is not None:
            raise RuntimeError("Only Tensors created explicitly by the user (graph leaves) support the deepcopy "
                               "protocol at the moment.")
        t = Tensor._make(self._data.copy(), self.dtype)
        t._requires_grad = self._requires_grad
        t.__class__ = type(self)  # keeps nn.Parameter a Parameter
        if self._grad is not None:
            t._grad = self._grad.__deepcopy__(memo)
        memo[id(self)] = t
        return t

    # ---- device / dtype movement ----------------------------------------------------
    def to(self, *args, **kwargs) -> "Tensor":
        dtype = kwargs.pop("dtype", None)
        dev = kwargs.pop("device", None)
        copy = kwargs.pop("copy", False)
        kwargs.pop("non_blocking", None)
        dtype = D.canonical(dtype)
        for a in args:
            if isinstance(a, D.DType) or a in (float, int, bool):  # (x.to(float) is float64 in torch)
                dtype = D.canonical(a)
            elif isinstance(a, Tensor):
                dtype, dev = a.dtype, a.device
            elif a is not None:
                dev = a
        t = self
        if dev is not None:
            dev = check_device(dev)
            if dev != self.device:
                from .kernels.cuda.eager import to_device_tensor

                t, copy = to_device_tensor(self, dev), False
        if dtype is None or dtype is t.dtype:
            return t.clone() if copy else t
        from .ops.pointwise import to_dtype

        return to_dtype(t, dtype)

    def cpu(self) -> "Tensor":
        return self if type(self._data) is np.ndarray else self.to("cpu")

    def cuda(self, device=None, non_blocking=False) -> "Tensor":
        return self.to(check_device("cuda" if device is None else device))

    def type(self, dtype=None):
        if dtype is None:
            return f"torch.{self.dtype.short}Tensor"
        if isinstance(dtype, str):
            name = dtype.rsplit(".", 1)[-1]
            for d in D.ALL:
                if d.short + "Tensor" == name:
                    dtype = d
                    break
            else:
                raise ValueError(f"invalid type: '{dtype}'")
        elif isinstance(dtype, type) and isinstance(getattr(dtype, "_legacy_dtype", None), D.DType):
            dtype = dtype._legacy_dtype  # x.type(tracegrad.DoubleTensor)
        return self.to(dtype)

    def float(self):
        return self.to(D.float32)

    def double(self):
        return self.to(D.float64)

    def half(self):
        return self.to(D.float16)

    def bfloat16(self):
        return self.to(D.bfloat16)

    def long(self):
        return self.to(D.int64)

    def int(self):
        return self.to(D.int32)

    def short(self):
        return self.to(D.int16)

    def char(self):
        return self.to(D.int8)

    def byte(self):
        return self.to(D.uint8)

    def bool(self):
        return self.to(D.bool_)

    def type_as(self, other):
        return self.to(other.dtype)

    # ---- new_* factories ------------------------------------------------------------
    def _like_kw(self, dtype, device):
        return dict(dtype=dtype or self.dtype, device=device)

    def new_ones(self, *size, dtype=None, device=None, requires_grad=False):
        from .creation import ones

        return ones(*size, **self._like_kw(dtype, device), requires_grad=requires_grad)

    def new_zeros(self, *size, dtype=None, device=None, requires_grad=False):
        from .creation import zeros

        return zeros(*size, **self._like_kw(dtype, device), requires_grad=requires_grad)

    def new_empty(self, *size, dtype=None, device=None, requires_grad=False):
        from .creation import empty

        return empty(*size, **self._like_kw(dtype, device), requires_grad=requires_grad)

    def new_full(self, size, fill_value, dtype=None, device=None, requires_grad=False):
        from .creation import full

        return full(size, fill_value, **self._like_kw(dtype, device), requires_grad=requires_grad)

    def new_tensor(self, data, dtype=None, device=None, requires_grad=False):
        from .creation import tensor

        return tensor(data, **self._like_kw(dtype, device), requires_grad=requires_grad)


class _Storage:
    """Just enough of torch's UntypedStorage to compare storages and get a pointer."""

    def __init__(self, root):
        self._root = root

    def data_ptr(self) -> int:
        return self._root.__array_interface__["data"][0]

    def nbytes(self) -> int:
        return self._root.nbytes

    def size(self) -> int:
        return self._root.nbytes


def _contiguous_strides(shape) -> tuple:
    """Row-major strides as torch computes them (a size-0 dim counts as size 1)."""
    st, acc = [], 1
    for n in reversed(shape):
        st.append(acc)
        acc *= max(n, 1)
    return tuple(reversed(st))


def _root(a: np.ndarray) -> np.ndarray:
    """The array that owns the memory a view looks into."""
    while True:
        b = a.base
        if isinstance(b, np.ndarray):
            a = b
        elif isinstance(getattr(b, "base", None), np.ndarray):  # as_strided's wrapper object
            a = b.base
        else:
            return a


def _wrap_dim(dim: int, ndim: int) -> int:
    n = max(ndim, 1)
    if not -n <= dim < n:
        raise IndexError(f"Dimension out of range (expected to be in range of [{-n}, {n - 1}], but got {dim})")
    return dim + n if dim < 0 else dim


def is_tensor(x) -> bool:
    return isinstance(x, Tensor)

