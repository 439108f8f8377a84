"""Making tensors: from data, factories (zeros, arange, ...), random numbers.

`tensor(data)` always copies; `from_numpy` and `as_tensor` of a matching ndarray
share memory; the legacy `Tensor(ndarray)` shares a float32 array (as torch does).
Random numbers come from a NumPy PCG64 stream seeded by `manual_seed`: the same
seed gives the same numbers run to run, though not torch's numbers."""
from __future__ import annotations

import math
import numbers

import numpy as np

from . import dtypes as D
from .device import check_device
from .dispatch import quiet_call, to_storage, TRACER as _TRACER
from .tensor import Size, Tensor
from .ops.inplace import with_out as _write_out


# ---- random state --------------------------------------------------------------------
class Generator:
    """A random stream, like torch.Generator: `manual_seed`, `initial_seed`, `get_state`."""

    def __init__(self, device="cpu"):
        self._seed = 67280421310721
        self._rng = np.random.Generator(np.random.PCG64(self._seed))

    def manual_seed(self, seed: int) -> "Generator":
        seed = int(seed)
        self._seed = seed
        self._rng = np.random.Generator(np.random.PCG64(seed & 0xFFFFFFFFFFFFFFFF))
        return self

    def seed(self) -> int:
        s = int(np.random.SeedSequence().entropy) & 0xFFFFFFFFFFFFFFFF
        self.manual_seed(s)
        return s

    def initial_seed(self) -> int:
        return self._seed

    def get_state(self):
        import pickle

        from_ = pickle.dumps(self._rng.bit_generator.state)
        return Tensor._make(np.frombuffer(from_, dtype=np.uint8).copy(), D.uint8)

    def set_state(self, state) -> "Generator":
        import pickle

        if getattr(state, "dtype", None) is not D.uint8:
            raise TypeError("RNG state must be a torch.ByteTensor")
        try:
            self._rng.bit_generator.state = pickle.loads(state.numpy().tobytes())
        except Exception:
            raise RuntimeError("Expected a generator state as get_state returns it, but found "
                               f"{state.numel()} bytes that do not hold one") from None
        return self


default_generator = Generator()


def manual_seed(seed: int) -> Generator:
    """Seed the host's generator and the device's (as torch.manual_seed seeds every device)."""
    from .kernels.cuda.random import manual_seed as seed_device

    seed_device(seed)
    return default_generator.manual_seed(seed)


def seed() -> int:
    """A fresh seed from the operating system for the host, which seeds the device too (as in torch)."""
    from .kernels.cuda.random import manual_seed as seed_device

    s = default_generator.seed()
    seed_device(s)
    return s


def initial_seed() -> int:
    return default_generator.initial_seed()


def get_rng_state():
    return default_generator.get_state()


def set_rng_state(state) -> None:
    default_generator.set_state(state)


def _rng(generator):
    if _TRACER[0] is not None:  # a random draw inside a traced function would be frozen into the graph
        _TRACER[0].random_used()
    return (generator or default_generator)._rng


# ---- helpers --------------------------------------------------------------------------
def _size(size) -> tuple:
    if len(size) == 1 and not isinstance(size[0], (int, np.integer)) and not isinstance(size[0], Tensor):
        if not isinstance(size[0], (tuple, list)):  # zeros(2.0): torch's TypeError, not tuple()'s
            raise TypeError(f"argument 'size' (position 1) must be tuple of ints, not {type(size[0]).__name__}")
        size = tuple(size[0])
    out = []
    for s in size:
        if isinstance(s, Tensor):
            s = int(s)
        if not isinstance(s, (int, np.integer)):
            raise TypeError(f"empty(): argument 'size' must be tuple of ints, but found element of type "
                            f"{type(s).__name__} at pos {len(out)}")
        if s < 0:
            raise RuntimeError(f"Trying to create tensor with negative dimension {s}: [{', '.join(map(str, size))}]")
        out.append(int(s))
    return tuple(out)


def from_values(arr: np.ndarray, dtype: D.DType, requires_grad: bool = False) -> Tensor:
    """Wrap computed values (bfloat16 as float32) as a tensor of `dtype`."""
    t = Tensor._make(to_storage(np.asarray(arr), dtype), dtype)
    if requires_grad:
        t.requires_grad_(True)
    if _TRACER[0] is not None:  # made while tracing: a constant of the graph
        _TRACER[0].made(t)
    return t


def _finish(arr, dtype, device, requires_grad) -> Tensor:
    if check_device(device).type == "cuda":
        from .kernels.cuda.eager import from_host

        arr = from_host(arr, dtype)
    elif arr.size == 0 and arr.ndim > 1:  # keep torch's strides on empty tensors (NumPy would zero them)
        from numpy.lib.stride_tricks import as_strided
        from .tensor import _contiguous_strides

        arr = as_strided(np.empty(1, arr.dtype), arr.shape, [s * arr.itemsize for s in _contiguous_strides(arr.shape)])
    t = Tensor._make(arr, dtype)
    if requires_grad:
        if not dtype.is_floating_point:  # the factories' wording (capital O, "and complex")
            raise RuntimeError("Only Tensors of floating point and complex dtype can require gradients")
        t.requires_grad_(True)
    if _TRACER[0] is not None:  # made while tracing: a constant of the graph
        _TRACER[0].made(t)
    return t


# ---- from data ------------------------------------------------------------------------------
def _infer_dtype(data) -> D.DType:
    """torch's rule for Python data: each element has a dtype (bool -> bool, int -> int64,
    float -> the default dtype, a NumPy scalar or tensor -> its own), and the tensor's dtype
    promotes them all (`[1, 2.0]` -> float32, `[np.float64(1), 2.0]` -> float64)."""
    if isinstance(data, np.ndarray):
        return D.from_numpy_dtype(data.dtype)
    found = []

    def walk(x):
        if isinstance(x, Tensor):
            found.append(x.dtype)
        elif isinstance(x, (np.ndarray, np.generic)):
            found.append(D.from_numpy_dtype(x.dtype))
        elif isinstance(x, (list, tuple)):
            for y in x:
                walk(y)
        elif isinstance(x, bool):
            found.append(D.bool_)
        elif isinstance(x, int):
            found.append(D.int64)
        elif isinstance(x, float):
            found.append(D.get_default_dtype())
        elif isinstance(x, complex):
            raise TypeError("complex tensors are not supported")
        elif isinstance(x, str):
            raise TypeError("new(): invalid data type 'str'")
        else:
            raise RuntimeError(f"Could not infer dtype of {type(x).__name__}")

    walk(data)
    if not found:
        return D.get_default_dtype()  # an empty list
    best = found[0]
    for dt in found[1:]:
        if dt is not best:
            best = D.promote_types(best, dt)
    return best


def _check_ragged(data, dtype: D.DType, dim: int = 0) -> None:
    """torch's errors for nested data that is not rectangular."""
    if isinstance(data, (list, tuple)) and data:
        lens = [len(x) if isinstance(x, (list, tuple)) else -1 for x in data]
        first = lens[0]
        for x, n in zip(data, lens):
            if n == first:
                continue
            if first >= 0 and n == -1:
                raise TypeError("not a sequence")
            if first == -1:  # a number where torch expected one, given a list
                name = type(x).__name__
                raise TypeError(f"must be real number, not {name}" if dtype.is_floating_point else
                                f"'{name}' object cannot be interpreted as an integer")
            raise ValueError(f"expected sequence of length {first} at dim {dim + 1} (got {n})")
        for x in data:
            _check_ragged(x, dtype, dim + 1)


def _to_array(data, dtype: D.DType) -> np.ndarray:
    if isinstance(data, (Tensor, np.ndarray)):
        # overflow to inf or wrap-around, silently, as torch does
        return quiet_call((data._values() if isinstance(data, Tensor) else data).astype, D.compute_np(dtype))
    if isinstance(data, (list, tuple)):
        _check_ragged(data, dtype)
        if any(isinstance(x, Tensor) for x in _flat(data)):
            data = _untensor(data)
    if dtype.category == D._INT:
        _check_int_data(data, dtype)
    try:
        return quiet_call(np.array, data, dtype=D.compute_np(dtype))
    except OverflowError:
        try:
            wide = np.array(data, dtype=np.int64 if dtype.category == D._INT else np.float64)
        except OverflowError:  # a Python int past int64: torch's ValueError, not NumPy's OverflowError
            raise ValueError("Overflow when unpacking long long") from None
        return quiet_call(wide.astype, D.compute_np(dtype))


def _check_int_data(data, dtype: D.DType) -> None:
    """torch refuses Python numbers that do not fit an integer dtype (NumPy would wrap them):
    an int must fit (a negative one wraps into an unsigned type), a float must lie in range."""
    try:
        wide = np.array(data)
    except (ValueError, TypeError, OverflowError):
        return  # not numbers: the conversion below raises torch's error
    if wide.size == 0 or wide.dtype.kind not in "iuf":
        return  # (ints past int64 are an object array: the conversion below raises torch's ValueError)
    if wide.dtype == np.uint64:  # a Python int past int64
        raise ValueError("Overflow when unpacking long long")
    lo, hi = wide.min(), wide.max()
    blo, bhi = D._INT_BOUNDS[dtype]
    if wide.dtype.kind == "f":
        bad = not (np.isfinite(lo) and np.isfinite(hi) and blo <= lo and hi <= bhi)
    else:
        bad = int(hi) > bhi or int(lo) < blo and (blo != 0 or -int(lo) > bhi)
    if bad:
        raise RuntimeError(f"value cannot be converted to type {dtype.name} without overflow")


def _flat(data):
    for x in data:
        if isinstance(x, (list, tuple)):
            yield from _flat(x)
        else:
            yield x


def _untensor(data):
    if isinstance(data, Tensor):
        # torch reads a tensor inside a list as one number (item() raises for more than one element)
        if data.numel() != 1:
            raise ValueError("only one element tensors can be converted to Python scalars")
        return data.item()
    if isinstance(data, (list, tuple)):
        return [_untensor(x) for x in data]
    return data


def tensor(data, *, dtype=None, device=None, requires_grad=False, pin_memory=False) -> Tensor:
    """A new tensor holding a copy of `data` (nested lists, scalars, ndarrays or tensors)."""
    if isinstance(data, range) or isinstance(data, (list, tuple)) and data and isinstance(data[0], range):
        # torch takes any sequence; a range (or rows of ranges) becomes the list it stands for
        data = list(data) if isinstance(data, range) else [list(r) if isinstance(r, range) else r for r in data]
    dt = D.canonical(dtype) or _infer_dtype(data)
    arr = _to_array(data, dt)
    return _finish(to_storage(arr, dt), dt, device, requires_grad)


def as_tensor(data, dtype=None, device=None) -> Tensor:
    dtype = D.canonical(dtype)
    if isinstance(data, Tensor):
        return data if dtype is None or dtype is data.dtype else data.to(dtype)
    if isinstance(data, np.ndarray) and (dtype is None or dtype.np == data.dtype):
        return from_numpy(data)
    return tensor(data, dtype=dtype, device=device)


def asarray(obj, *, dtype=None, device=None, copy=None, requires_grad=False):
    t = as_tensor(obj, dtype=dtype, device=device)
    if copy:
        t = t.clone()
    if requires_grad:
        t.requires_grad_(True)
    return t


def from_numpy(arr: np.ndarray) -> Tensor:
    """Share the ndarray's memory: writes through either show in both."""
    if not isinstance(arr, np.ndarray):
        raise TypeError(f"expected np.ndarray (got {type(arr).__name__})")
    if any(s % arr.itemsize for s in arr.strides) or any(s < 0 for s in arr.strides):
        raise ValueError(
            "At least one stride in the given numpy array is negative, and tensors with negative strides are not "
            "currently supported. (You can probably work around this by making a copy of your array  with "
            "array.copy().) ")
    return Tensor._make(arr, D.from_numpy_dtype(arr.dtype))


def _legacy_tensor(args, dtype, device):
    """`Tensor(...)`: sizes give uninitialised memory; data gives a float32 tensor."""
    check_device(device)
    if not args:
        return np.empty((0,), dtype.np), dtype
    if len(args) == 1 and isinstance(args[0], np.ndarray):
        a = args[0]
        if a.dtype == np.float32 and dtype is D.float32:
            return a, D.float32
        return a.astype(np.float32), D.float32
    if all(isinstance(a, (int, np.integer)) for a in args) and not any(isinstance(a, bool) for a in args):
        return np.zeros(_size(args), dtype.np), dtype
    if len(args) == 1:
        if isinstance(args[0], Size):  # Tensor(x.shape) is a size, not data
            return np.zeros(args[0], dtype.np), dtype
        if isinstance(args[0], (bool, float, np.floating)):  # one number is neither a size nor data
            raise TypeError(f"new(): data must be a sequence (got {type(args[0]).__name__})")
        return _to_array(args[0], dtype), dtype
    raise TypeError("new(): invalid data type")


def _rebuild(arr, dtype_name, requires_grad):
    t = Tensor._make(arr, D._by_name(dtype_name))
    t._requires_grad = requires_grad
    return t


# ---- factories -------------------------------------------------------------------------
def empty(*size, dtype=None, device=None, requires_grad=False, out=None, **_) -> Tensor:
    dt = D.canonical(dtype) or D.get_default_dtype()
    return _finish(np.empty(_size(size), dt.np), dt, device, requires_grad)


def zeros(*size, dtype=None, device=None, requires_grad=False, out=None, **_) -> Tensor:
    dt = D.canonical(dtype) or D.get_default_dtype()
    flat = size[0] if len(size) == 1 and isinstance(size[0], (tuple, list)) else size
    if any(isinstance(n, int) and n < 0 for n in flat):  # (zeros words this one differently)
        raise RuntimeError("zeros: Dimension size must be non-negative.")
    r = _finish(np.zeros(_size(size), dt.np), dt, device, requires_grad)
    return _write_out(out, r)


def ones(*size, dtype=None, device=None, requires_grad=False, out=None, **_) -> Tensor:
    dt = D.canonical(dtype) or D.get_default_dtype()
    r = _finish(to_storage(np.ones(_size(size), D.compute_np(dt)), dt), dt, device, requires_grad)
    return _write_out(out, r)


def full(size, fill_value, *, dtype=None, device=None, requires_grad=False, out=None, **_) -> Tensor:
    if isinstance(fill_value, Tensor) and fill_value.ndim == 0:  # (a 0-d tensor counts as its number)
        fill_value = fill_value.item()
    if not isinstance(fill_value, (int, float, np.number, np.bool_)):  # bool is an int
        raise TypeError(f"full(): argument 'fill_value' (position 2) must be Number, not {type(fill_value).__name__}")
    dt = D.canonical(dtype) or D.scalar_dtype(fill_value)
    shape = _size((size,) if isinstance(size, int) else (tuple(size),))
    D.check_scalar_fits(fill_value, dt, int(np.prod(shape)))  # torch refuses 300 or inf for uint8, but wraps -1 to 255
    if dt.category == D._INT and isinstance(fill_value, (int, np.integer)) and not isinstance(fill_value, bool):
        fill_value = D.wrap_int(int(fill_value), dt)
    arr = quiet_call(np.full, shape, fill_value, D.compute_np(dt))
    return _write_out(out, _finish(to_storage(arr, dt), dt, device, requires_grad))


def _like(t, dtype):
    return D.canonical(dtype) or t.dtype


def _like_device(t, device):
    return device if device is not None else t.device


def _preserve(input: Tensor, r: Tensor) -> Tensor:
    """torch's preserve_format for the *_like factories: the new tensor `r` takes `input`'s strides when
    `input` is dense (a transposed or permuted tensor), and stays row-major otherwise."""
    a = input._data
    if a.ndim < 2 or a.flags.c_contiguous or a.size < 2 or type(r._data) is not np.ndarray:
        return r  # (device memory: row-major)
    from .ops.shape_util import is_non_overlapping_and_dense

    st = input.stride()
    if not is_non_overlapping_and_dense(a.shape, st):
        return r
    from numpy.lib.stride_tricks import as_strided

    out = as_strided(np.empty(a.size, r._data.dtype), a.shape, [s * r._data.itemsize for s in st])
    out[...] = r._data
    r._data = out  # (r is brand new: nothing else refers to its array)
    return r


def empty_like(input, *, dtype=None, device=None, requires_grad=False, memory_format=None) -> Tensor:
    return _preserve(input, empty(input.shape, dtype=_like(input, dtype), device=_like_device(input, device),
                                  requires_grad=requires_grad))


def zeros_like(input, *, dtype=None, device=None, requires_grad=False, memory_format=None) -> Tensor:
    return _preserve(input, zeros(input.shape, dtype=_like(input, dtype), device=_like_device(input, device),
                                  requires_grad=requires_grad))


def ones_like(input, *, dtype=None, device=None, requires_grad=False, memory_format=None) -> Tensor:
    return _preserve(input, ones(input.shape, dtype=_like(input, dtype), device=_like_device(input, device),
                                 requires_grad=requires_grad))


def full_like(input, fill_value, *, dtype=None, device=None, requires_grad=False, memory_format=None) -> Tensor:
    return _preserve(input, full(input.shape, fill_value, dtype=_like(input, dtype), device=_like_device(input, device),
                                 requires_grad=requires_grad))


def eye(n, m=None, *, dtype=None, device=None, requires_grad=False, out=None) -> Tensor:
    dt = D.canonical(dtype) or D.get_default_dtype()
    if n < 0:
        raise RuntimeError(f"n must be greater or equal to 0, got {n}")
    if m is not None and m < 0:
        raise RuntimeError(f"m must be greater or equal to 0, got {m}")
    arr = np.eye(n, n if m is None else m, dtype=D.compute_np(dt))
    return _write_out(out, _finish(to_storage(arr, dt), dt, device, requires_grad))


def arange(start, end=None, step=1, *, dtype=None, device=None, requires_grad=False, out=None) -> Tensor:
    if end is None:
        start, end = 0, start
    vals = [v.item() if isinstance(v, Tensor) else v for v in (start, end, step)]
    start, end, step = vals
    if step == 0:
        raise RuntimeError("step must be nonzero")
    if (end - start) * step < 0 and end != start:
        raise RuntimeError("upper bound and lower bound inconsistent with step sign")
    is_int = all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in vals)
    dt = D.canonical(dtype) or (D.int64 if is_int else D.get_default_dtype())
    if dt is D.bool_:  # torch has no bool kernel for it (NumPy would make a bool ramp)
        raise NotImplementedError('"arange_cpu" not implemented for \'Bool\'')
    n = max(0, math.ceil((end - start) / step))
    if dt.is_floating_point:
        arr = (start + np.arange(n, dtype=np.float64) * step).astype(D.compute_np(dt))
    else:
        arr = (start + np.arange(n, dtype=np.int64) * step if is_int else
               np.floor(start + np.arange(n, dtype=np.float64) * step)).astype(dt.np)
    return _write_out(out, _finish(to_storage(arr, dt), dt, device, requires_grad))


def range_(start, end, step=1, *, dtype=None, device=None, requires_grad=False) -> Tensor:
    dt = D.canonical(dtype) or D.get_default_dtype()
    n = int(math.floor((end - start) / step)) + 1
    arr = (start + np.arange(n, dtype=np.float64) * step).astype(D.compute_np(dt))
    return _finish(to_storage(arr, dt), dt, device, requires_grad)


def linspace(start, end, steps, *, dtype=None, device=None, requires_grad=False, out=None) -> Tensor:
    """torch's formula: the first half steps up from start, the second half down from end."""
    dt = D.canonical(dtype) or D.get_default_dtype()
    start = start.item() if isinstance(start, Tensor) else start
    end = end.item() if isinstance(end, Tensor) else end
    if steps < 0:
        raise RuntimeError("number of steps must be non-negative")
    if dt is D.bool_:  # torch has no bool kernel for it
        raise NotImplementedError('"linspace_cpu" not implemented for \'Bool\'')
    cdt = np.float64 if dt is D.float64 or not dt.is_floating_point else np.float32
    if steps == 1:
        arr = np.array([start], dtype=cdt)
    else:
        step = (end - start) / (steps - 1)
        i = np.arange(steps)
        half = steps // 2
        arr = np.where(i < half, start + step * i, end - step * (steps - 1 - i)).astype(cdt)
    if not dt.is_floating_point:
        arr = np.trunc(arr)
    return _write_out(out, _finish(to_storage(arr.astype(D.compute_np(dt)), dt), dt, device, requires_grad))


def logspace(start, end, steps, base=10.0, *, dtype=None, device=None, requires_grad=False) -> Tensor:
    lin = linspace(start, end, steps, dtype=D.float64)
    dt = D.canonical(dtype) or D.get_default_dtype()
    if dt is D.bool_:  # torch has no bool kernel for it
        raise NotImplementedError('"logspace_cpu" not implemented for \'Bool\'')
    return _finish(to_storage((base ** lin._data).astype(D.compute_np(dt)), dt), dt, device, requires_grad)


# ---- random -----------------------------------------------------------------------------
def _float_only(kernel: str, dt: D.DType) -> None:
    if not dt.is_floating_point:
        raise NotImplementedError(f'"{kernel}" not implemented for \'{dt.short}\'')


def rand(*size, generator=None, dtype=None, device=None, requires_grad=False, out=None) -> Tensor:
    dt = D.canonical(dtype) or D.get_default_dtype()
    _float_only("check_uniform_bounds", dt)
    if _TRACER[0] is not None and generator is None:  # traced: an op of the graph, drawn at every call
        from .tracer.random_ops import uniform

        return _write_out(out, uniform(_size(size), dt).requires_grad_(requires_grad))
    if generator is None and check_device(device).type == "cuda":  # drawn on the device
        from .kernels.cuda import random as R

        return _write_out(out, _device_draw(R.uniform(_size(size), dt), dt, requires_grad))
    arr = _rng(generator).random(_size(size), dtype=np.float64).astype(D.compute_np(dt))
    return _write_out(out, _finish(to_storage(arr, dt), dt, device, requires_grad))


def randn(*size, generator=None, dtype=None, device=None, requires_grad=False, out=None) -> Tensor:
    dt = D.canonical(dtype) or D.get_default_dtype()
    _float_only("normal_kernel_cpu", dt)
    if _TRACER[0] is not None and generator is None:  # traced: an op of the graph, drawn at every call
        from .tracer.random_ops import normal

        return _write_out(out, normal(_size(size), dt).requires_grad_(requires_grad))
    if generator is None and check_device(device).type == "cuda":
        from .kernels.cuda import random as R

        return _write_out(out, _device_draw(R.normal(_size(size), dt), dt, requires_grad))
    arr = _rng(generator).standard_normal(_size(size)).astype(D.compute_np(dt))
    return _write_out(out, _finish(to_storage(arr, dt), dt, device, requires_grad))


def _device_draw(d, dtype: D.DType, requires_grad: bool) -> Tensor:
    t = Tensor._make(d, dtype)
    return t.requires_grad_(True) if requires_grad else t


def randint(low=0, high=None, size=None, *, generator=None, dtype=None, device=None, requires_grad=False) -> Tensor:
    if size is None:  # randint(high, size)
        low, high, size = 0, low, high
    if high is None:
        low, high = 0, low
    if low >= high:
        raise RuntimeError(f"random_ expects 'from' to be less than 'to', but got from={low} >= to={high}")
    dt = D.canonical(dtype) or D.int64
    arr = _rng(generator).integers(low, high, size=_size((tuple(size),))).astype(D.compute_np(dt))
    return _finish(to_storage(arr, dt), dt, device, requires_grad)


def randperm(n, *, generator=None, dtype=None, device=None, requires_grad=False) -> Tensor:
    dt = D.canonical(dtype) or D.int64
    if dt is D.bool_:  # torch has no bool kernel for it
        raise NotImplementedError('"randperm" not implemented for \'Bool\'')
    return _finish(_rng(generator).permutation(n).astype(dt.np), dt, device, requires_grad)


def rand_like(input, *, dtype=None, device=None, requires_grad=False, memory_format=None) -> Tensor:
    return _preserve(input, rand(input.shape, dtype=_like(input, dtype), device=_like_device(input, device),
                                 requires_grad=requires_grad))


def randn_like(input, *, dtype=None, device=None, requires_grad=False, memory_format=None) -> Tensor:
    return _preserve(input, randn(input.shape, dtype=_like(input, dtype), device=_like_device(input, device),
                                  requires_grad=requires_grad))


def randint_like(input, low=0, high=None, *, dtype=None, device=None, requires_grad=False) -> Tensor:
    if high is None:
        low, high = 0, low
    return _preserve(input, randint(low, high, input.shape, dtype=_like(input, dtype),
                                    device=_like_device(input, device)))


def normal(mean=0.0, std=1.0, size=None, *, generator=None, dtype=None, device=None, requires_grad=False,
           out=None) -> Tensor:
    """Normal samples; mean and std may be tensors (broadcast) or numbers."""
    rng = _rng(generator)
    mt, st = isinstance(mean, Tensor), isinstance(std, Tensor)
    if mt or st:
        if st and (std._values() < 0).any():
            raise RuntimeError("normal expects all elements of std >= 0.0")
        m = mean._values() if mt else mean
        s = std._values() if st else std
        shape = np.broadcast_shapes(np.shape(m), np.shape(s))
        dt = mean.dtype if mt else std.dtype
        arr = (m + s * rng.standard_normal(shape)).astype(D.compute_np(dt))
    else:
        if std < 0:
            raise RuntimeError(f"normal expects std >= 0.0, but found std {std}")
        dt = D.canonical(dtype) or D.get_default_dtype()
        _float_only("normal_kernel_cpu", dt)  # (NumPy would truncate the draws to integers)
        arr = (mean + std * rng.standard_normal(_size((tuple(size),)))).astype(D.compute_np(dt))
    return _write_out(out, _finish(to_storage(arr, dt), dt, device, requires_grad))


def bernoulli(input, p=None, *, generator=None) -> Tensor:
    if input.is_cuda and generator is None:  # 1 where a uniform draw on the device falls below p
        u = rand(input.shape, dtype=D.float32, device=input.device)
        return (u < (input if p is None else p)).to(input.dtype)
    prob = input._values() if p is None else p
    arr = (_rng(generator).random(input.shape) < prob).astype(D.compute_np(input.dtype))
    return from_values(arr, input.dtype)


def multinomial(input, num_samples, replacement=False, *, generator=None) -> Tensor:
    rng = _rng(generator)
    p = np.asarray(input._values(), dtype=np.float64)
    rows = p.reshape(-1, p.shape[-1])
    out = []
    for r in rows:
        out.append(rng.choice(len(r), size=num_samples, replace=replacement, p=r / r.sum()))
    arr = np.array(out, dtype=np.int64).reshape(p.shape[:-1] + (num_samples,))
    return from_values(arr, D.int64)


# in-place fills used by nn.init (they write under whatever grad mode the caller set)
def _fill_random(self: Tensor, arr: np.ndarray) -> Tensor:
    from .ops.inplace import check_writable

    check_writable(self)
    self._data[...] = to_storage(np.asarray(arr).astype(D.compute_np(self.dtype)), self.dtype)
    self._vc[0] += 1
    return self


def uniform_(self, a=0.0, b=1.0, *, generator=None):
    return _fill_random(self, a + (b - a) * _rng(generator).random(self.shape))


def normal_(self, mean=0.0, std=1.0, *, generator=None):
    return _fill_random(self, mean + std * _rng(generator).standard_normal(self.shape))


def random_(self, low=0, high=None, *, generator=None):
    if high is None:
        low, high = 0, low if low else 2 ** 24
    return _fill_random(self, _rng(generator).integers(low, high, size=self.shape))


def bernoulli_(self, p=0.5, *, generator=None):
    return _fill_random(self, _rng(generator).random(self.shape) < p)


def exponential_(self, lambd=1.0, *, generator=None):
    return _fill_random(self, _rng(generator).exponential(1.0 / lambd, self.shape))


def isscalar(x) -> bool:
    return isinstance(x, numbers.Number)
