"""The one path every op takes: `apply(op, args)`.

    meta      the output dtype (op.dtype) and the dtype the inputs compute in
    trace?    if a tracer is active, it records the node and returns a symbolic tensor
    run       op.numpy on the inputs' arrays (bfloat16 widened to float32)
    wrap      the result array becomes a Tensor (views share storage and version)
    autograd  if an input requires grad, the output gets a grad_fn node holding
              the op's vjp rule and what that rule reads

Tensor methods, `tracegrad.*` functions and operators all end here."""
from __future__ import annotations

import contextvars

import numpy as np

from . import dtypes as D
from .autograd import grad_mode
from .device import OnDevice
from .autograd.record import Ctx, record as _record_grad  # noqa: F401  (the autograd half of apply)

_grad = grad_mode._state
TRACER = [None]  # set by tracegrad.tracer while tracing; None otherwise
# True while the caller already holds np.errstate(all="ignore") (the autograd engine does, around a
# whole backward pass), so ops skip entering their own (~1 us each)
QUIET = [False]

# NumPy warns on overflow, inf - inf and division by zero, where torch is silent. `np.errstate`
# costs about a microsecond a call, so the ops set NumPy's error-state context variable
# directly (what errstate does inside); a NumPy without it gets a stand-in that uses errstate.
try:
    from numpy._core._ufunc_config import _extobj_contextvar as _ERRSTATE

    with np.errstate(all="ignore"):
        _IGNORE_ALL = _ERRSTATE.get()
except (ImportError, AttributeError):  # pragma: no cover - other NumPy versions
    class _ErrstateVar:
        def set(self, _value):
            cm = np.errstate(all="ignore")
            cm.__enter__()
            return cm

        def reset(self, cm):
            cm.__exit__(None, None, None)

    _ERRSTATE, _IGNORE_ALL = _ErrstateVar(), None
_EMPTY: dict = {}

# Cheaper still: one context (contextvars.Context) in which NumPy's error state is "ignore", and
# the NumPy call runs inside it: `quiet_run(np.add, x, y)` costs ~25 ns over the call, against
# ~150 ns for setting and resetting the variable. Only NumPy's own variable is read in there.
# A context admits one thread at a time: a call that finds it taken raises RuntimeError
# ("cannot enter context"), and `quiet_call` then takes the set/reset way.
_QUIET_CTX = contextvars.Context()
if isinstance(_ERRSTATE, contextvars.ContextVar):
    _QUIET_CTX.run(_ERRSTATE.set, _IGNORE_ALL)
    quiet_run = _QUIET_CTX.run
else:  # pragma: no cover - other NumPy versions
    def quiet_run(fn, *args, **kw):
        with np.errstate(all="ignore"):
            return fn(*args, **kw)


def quiet_call(fn, *args, **kw):
    """fn(*args, **kw) with NumPy's float warnings off (torch never warns about inf or nan)."""
    try:
        return quiet_run(fn, *args, **kw)
    except RuntimeError as e:
        if type(e) is not RuntimeError or "cannot enter context" not in str(e):
            raise  # fn's own error
    tok = _ERRSTATE.set(_IGNORE_ALL)  # another thread is inside the quiet context
    try:
        return fn(*args, **kw)
    finally:
        _ERRSTATE.reset(tok)


def bf16_to_f32(u: np.ndarray) -> np.ndarray:
    # keep u's memory order only when it is dense (say, transposed): a broadcast or step-sliced view
    # widens row-major, so copies made from the result get torch's layouts
    if u.ndim > 1 and not u.flags.c_contiguous:
        from .ops.shape_util import is_non_overlapping_and_dense

        if not is_non_overlapping_and_dense(u.shape, [s // 2 for s in u.strides]):
            return (u.astype(np.uint32, order="C") << 16).view(np.float32)
    return (u.astype(np.uint32) << 16).view(np.float32)


def f32_to_bf16(f: np.ndarray) -> np.ndarray:
    """Round to nearest even, as torch does when it narrows to bfloat16."""
    f = np.asarray(f, dtype=np.float32)  # keeps f's memory layout, as torch's outputs do
    if f.ndim == 0:  # (arithmetic on 0-d arrays gives NumPy scalars, which cannot be assigned into)
        return f32_to_bf16(f.reshape(1)).reshape(())
    b = f.view(np.uint32)
    r = ((b + np.uint32(0x7FFF) + ((b >> 16) & np.uint32(1))) >> 16).astype(np.uint16)
    nan = np.isnan(f)
    if nan.any():
        r[nan] = 0x7FC0
    return r


def to_storage(arr: np.ndarray, dt: D.DType) -> np.ndarray:
    """A computed array in the NumPy dtype that stores `dt`."""
    if dt is D.bfloat16:
        if arr.dtype == np.uint16:
            return arr
        # float64 beyond float32's range becomes inf, silently (as in torch)
        return f32_to_bf16(quiet_call(arr.astype, np.float32, copy=False))
    if arr.dtype != dt.np:
        # torch truncates floats toward zero and overflows to inf when narrowing, without NumPy's warnings
        return quiet_call(arr.astype, dt.np)
    return arr


def values(t) -> np.ndarray:
    """The array to compute with: bfloat16 widened, everything else as stored."""
    if t.dtype is D.bfloat16:
        return bf16_to_f32(t._data)
    return t._data


def cast_values(t, dt: D.DType) -> np.ndarray:
    if t.dtype is dt:
        return values(t)
    return values(t).astype(D.compute_np(dt))


def apply(op, args: tuple, attrs: dict = _EMPTY, dtype: D.DType | None = None,
          compute: D.DType | None = None):
    """Run primitive `op` on `args` (tensors and Python scalars)."""
    tr = TRACER[0]
    if tr is not None:
        return tr.record(op, args, attrs, dtype, compute)
    if len(args) == 1 and op.kind == "pointwise" and not attrs and dtype is None and compute is None:
        try:
            r = _unary(op, args[0])  # exp, tanh, neg...: the cached-dtype fast path below
        except OnDevice:  # the input is in device memory: the general path below hands it over
            r = None
        if r is not None:
            return r
    Tensor = _Tensor

    if dtype is None:
        dtype = op.dtype(args, attrs) if op.dtype is not None else _first_dtype(args)
    if compute is None and op.cast_inputs:
        compute = dtype
    all_attrs = attrs
    # NumPy raises OnDevice on device memory, so a CUDA input costs the CPU path no check
    try:
        vals = []
        rg = False  # does any tensor input require grad?
        for a in args:
            if isinstance(a, Tensor):
                rg = rg or a._requires_grad
                if compute is not None and a.dtype is not compute:
                    vals.append(values(a).astype(D.compute_np(compute)))
                elif a.dtype is D.bfloat16 and op.kind != "view":
                    vals.append(bf16_to_f32(a._data))
                else:
                    vals.append(a._data)
            elif type(a) is list or type(a) is tuple:
                vals.append([values(x) if isinstance(x, Tensor) else x for x in a])
                rg = rg or any(isinstance(x, Tensor) and x._requires_grad for x in a)
            elif type(a) is int and compute is not None and compute.category == D._INT:
                vals.append(D.wrap_int(a, compute))  # torch wraps: uint8_tensor + -1 adds 255
            else:
                vals.append(a)
        if attrs and op.np_attrs is not None and not op.np_attrs.issuperset(attrs):
            attrs = {k: v for k, v in attrs.items() if k in op.np_attrs}
        if op.quiet and not QUIET[0]:
            res = quiet_call(op.numpy, *vals, **attrs)
        else:
            res = op.numpy(*vals, **attrs)
        if op.nout == 1:
            outs = (_wrap(res, dtype, op, args),)
        else:  # nout 0 means "as many as the op returned" (split, unbind)
            dts = dtype if isinstance(dtype, tuple) else (dtype,) * len(res)
            outs = tuple(_wrap(r, d, op, args) for r, d in zip(res, dts))
    except OnDevice:
        return _on_device(op, args, all_attrs, dtype, compute)

    if rg and _grad["enabled"] and op.vjp is not None:
        _record_grad(op, args, all_attrs, outs)
    return outs[0] if op.nout == 1 else outs


def _on_device(op, args, attrs, dtype, compute):
    from .kernels.cuda.eager import apply_on_device

    return apply_on_device(op, args, attrs, dtype, compute)


def _first_dtype(args):
    for a in args:
        dt = getattr(a, "dtype", None)
        if isinstance(dt, D.DType):
            return dt
    raise TypeError("op needs a tensor input")


def _wrap(arr, dtype, op, args):
    Tensor = _Tensor
    if op.kind == "view":
        src = args[0]
        t = Tensor._make(arr, src.dtype)
        base = src._base if src._base is not None else src
        t._base = base
        t._vc = src._vc
        return t
    if type(arr) is not np.ndarray:
        arr = np.asarray(arr)
    if op.kind == "pointwise":  # torch's elementwise outputs keep their inputs' memory order
        arr = _match_layout(arr, [a for a in args if isinstance(a, Tensor)])
    elif op.kind in ("reduce", "scan") and not arr.flags.c_contiguous:
        arr = np.ascontiguousarray(arr)  # torch allocates reduction and scan outputs row-major
    return Tensor._make(to_storage(arr, dtype), dtype)


# ---- the fast path for binary pointwise ops ------------------------------------------------
# Small-tensor arithmetic is dominated by Python overhead, so the common case (two CPU
# tensors or a tensor and a Python number, no tracer, no bfloat16) skips the general
# path above: the output dtype comes from a cache keyed by the operand dtypes, and the
# autograd record is made only when an input requires grad. Everything else falls back
# to `apply`, which is the reference behaviour.
_DTYPE_CACHE: dict = {}
SLOW_BINARY = [lambda op, a, b: apply(op, (a, b))]  # replaced by ops.pointwise with the checked path
_SCALARS = (int, float, bool)
_BF16 = D.bfloat16


def _binary_dtypes(op, a, b):
    key = (op, a.dtype, b.dtype if type(b) not in _SCALARS else type(b), a._data.ndim == 0,
           type(b) in _SCALARS or b._data.ndim == 0)
    r = _DTYPE_CACHE.get(key)
    if r is None:
        out = op.dtype((a, b), _EMPTY)
        comp = out if op.cast_inputs else D.result_type(a, b)
        r = _DTYPE_CACHE[key] = (out, comp)
    return r


def binary(op, a, b):
    """apply(op, (a, b)) for a tensor `a` and a tensor or Python number `b`."""
    ad = a.dtype
    if TRACER[0] is not None or ad is _BF16:
        return SLOW_BINARY[0](op, a, b)
    x = a._data
    tb = type(b)
    if tb is float or tb is int or tb is bool:
        key = (op, ad, tb, x.ndim == 0, True)
        y = b
        rg = a._requires_grad
    elif isinstance(b, _Tensor) and b.dtype is not _BF16:
        y = b._data
        key = (op, ad, b.dtype, x.ndim == 0, y.ndim == 0)
        if x.shape != y.shape:
            from .ops.shape_util import broadcast_shapes

            broadcast_shapes(x.shape, y.shape)
        rg = a._requires_grad or b._requires_grad
    else:
        return SLOW_BINARY[0](op, a, b)
    r = _DTYPE_CACHE.get(key)
    out_dt, comp = r if r is not None else _binary_dtypes(op, a, b)
    try:  # NumPy raises OnDevice on device memory: CUDA operands take the general path
        if ad is not comp:
            x = x.astype(comp.np)
        if key[2] is not comp and tb is not float and tb is not int and tb is not bool:
            y = y.astype(comp.np)
        elif tb is int and comp.category == D._INT:
            y = D.wrap_int(y, comp)
        if op.quiet and not QUIET[0]:
            res = quiet_call(op.numpy, x, y)
        else:
            res = op.numpy(x, y)
        if type(res) is not np.ndarray:
            res = np.asarray(res)
    except OnDevice:
        return SLOW_BINARY[0](op, a, b)
    if res.dtype is not out_dt.np and res.dtype != out_dt.np:
        res = to_storage(res, out_dt)
    if res.ndim > 1:
        # torch's memory order for non-contiguous inputs; the cheap test first: inputs laid out
        # exactly like NumPy's result already agree with torch
        ad_, rs = a._data, res.strides
        scalar = tb is float or tb is int or tb is bool
        if not (ad_.strides == rs and ad_.shape == res.shape and (
                scalar or (b._data.strides == rs and b._data.shape == res.shape))):
            if not (ad_.flags.c_contiguous and (scalar or (
                    b._data.flags.c_contiguous and ad_.shape == b._data.shape))):
                res = _match_layout(res, [a] if scalar else [a, b])
    out = _Tensor._make(res, out_dt)
    if rg and _grad["enabled"] and op.vjp is not None:
        _record_grad(op, (a, b), _EMPTY, (out,))
    return out


def _unary(op, a):
    """apply(op, (a,)) for a one-input pointwise op on a plain CPU tensor, or None to take the
    general path. Same results as apply; the output dtype comes from a cache keyed by the input's
    dtype instead of the promotion rules on every call (the backward of a unary op is usually
    one of these too, so this is most of an elementwise chain's time)."""
    if type(a) is not _Tensor or op.nout != 1:
        return None
    ad = a.dtype
    if ad is _BF16:
        return None
    key = (op, ad)
    r = _DTYPE_CACHE.get(key)
    if r is None:
        out_dt = op.dtype((a,), _EMPTY) if op.dtype is not None else ad
        r = _DTYPE_CACHE[key] = (out_dt, out_dt if op.cast_inputs else ad)
    out_dt, comp = r
    x = a._data
    if ad is not comp:
        x = x.astype(comp.np)
    if op.quiet and not QUIET[0]:
        res = quiet_call(op.numpy, x)
    else:
        res = op.numpy(x)
    if type(res) is not np.ndarray:
        res = np.asarray(res)
    if res.dtype is not out_dt.np and res.dtype != out_dt.np:
        res = to_storage(res, out_dt)
    if res.ndim > 1 and not x.flags.c_contiguous:  # torch's memory order for non-contiguous inputs
        res = _match_layout(res, [a])
    out = _Tensor._make(res, out_dt)
    if a._requires_grad and _grad["enabled"] and op.vjp is not None:
        _record_grad(op, (a,), _EMPTY, (out,))
    return out


from .tensor import Tensor as _Tensor  # noqa: E402  (tensor.py does not import this module at load time)
_make_tensor = _Tensor._make
from .ops.shape_util import match_layout as _match_layout  # noqa: E402


# ---- operators: `x + y` in one Python frame ------------------------------------------------
def binary_method(op, fallback):
    """`Tensor.__add__` and friends for op: the most common cases in one frame, the rest through
    `binary` (the same results; the benchmark of 3x3 `x + y` is mostly this function).

    Fast here: two tensors of one dtype whose op computes in that dtype (float32 + float32), and
    a floating tensor with a Python float or int. Everything else goes to `fallback(self, other)`,
    the op's full function (with its checks and torch's errors)."""
    numpy_fn = op.numpy
    has_vjp = op.vjp is not None
    same: dict = {}  # dtype -> output dtype, for dtypes where op(dt, dt) computes in dt

    def fast_dtype(dt):
        out = None
        if dt is not _BF16:
            out_dt, comp = _binary_dtypes(op, _probe(dt), _probe(dt))
            if comp is dt:
                try:
                    r = numpy_fn(np.ones(1, dt.np), np.ones(1, dt.np))
                    out = out_dt if r.dtype == out_dt.np else None
                except TypeError:  # NumPy refuses the dtype (bool - bool): the checked path raises
                    out = None
        same[dt] = out
        return out

    scalar: dict = {}  # dtype -> output dtype of `tensor op python number`, for floating dtypes

    def scalar_dtype(dt):
        out = None
        if dt is not _BF16 and dt.is_floating_point:
            out = same.get(dt, 0)
            if out == 0:
                out = fast_dtype(dt)
        scalar[dt] = out
        return out

    tracer, grad_state, Tensor, ndarray, run = TRACER, _grad, _Tensor, np.ndarray, quiet_run

    def method(self, other):
        if tracer[0] is None:
            dt = self.dtype
            tb = type(other)
            if tb is float or tb is int:
                try:
                    out_dt = scalar[dt]
                except KeyError:
                    out_dt = scalar_dtype(dt)
                if out_dt is not None:
                    x = self._data
                    try:
                        res = run(numpy_fn, x, other)
                    except RuntimeError:  # a CUDA tensor (OnDevice: the full path hands it to the
                        return fallback(self, other)  # device), or the quiet context is busy
                    if type(res) is not ndarray:
                        res = np.asarray(res)
                    elif res.ndim > 1 and x.strides != res.strides:
                        res = _match_layout(res, (self,))
                    out = _make_tensor(res, out_dt)
                    if self._requires_grad and has_vjp and grad_state["enabled"]:
                        _record_grad(op, (self, other), _EMPTY, (out,))
                    return out
            elif isinstance(other, Tensor) and dt is other.dtype:
                try:
                    out_dt = same[dt]
                except KeyError:
                    out_dt = fast_dtype(dt)
                if out_dt is not None:
                    x = self._data
                    y = other._data
                    try:
                        res = run(numpy_fn, x, y)
                    except (ValueError, RuntimeError):  # shapes that do not broadcast (the checked path says
                        res = None  # so as torch does), CUDA tensors (it hands them over), a busy quiet context
                    if res is not None:
                        if type(res) is not ndarray:
                            res = np.asarray(res)
                        elif res.ndim > 1:
                            rs = res.strides
                            if x.strides != rs or y.strides != rs:
                                res = _layout_of_two(res, self, other)
                        out = _make_tensor(res, out_dt)
                        if (self._requires_grad or other._requires_grad) and has_vjp and grad_state["enabled"]:
                            _record_grad(op, (self, other), _EMPTY, (out,))
                        return out
        return fallback(self, other)

    method.__name__ = f"__{op.name}__"
    return method


def _probe(dt):
    return _Tensor._make(np.ones(2, dt.np), dt)


def _layout_of_two(res, a, b):
    """torch's memory order for an elementwise result of a and b whose strides differ from NumPy's
    choice (broadcasting, transposed or sliced inputs)."""
    x, y = a._data, b._data
    if x.flags.c_contiguous and y.flags.c_contiguous and x.shape == y.shape:
        return res
    return _match_layout(res, (a, b))


def unary_function(op, fallback, check=None):
    """`tracegrad.exp(x)`, `x.relu()`, `-x`... for op in one frame when x is a plain tensor whose
    dtype the op computes in (float32 -> float32); everything else (out=, bfloat16, integer inputs
    that promote, the tracer) goes to `fallback(input, out=...)`, the op's full function.
    `check(dtype)` is the op's refusal of dtypes torch has no kernel for."""
    numpy_fn = op.numpy
    has_vjp = op.vjp is not None
    fast: dict = {}  # dtype -> output dtype, or None where the fallback must run
    tracer, grad_state, Tensor, ndarray, run = TRACER, _grad, _Tensor, np.ndarray, quiet_run

    def fast_dtype(dt):
        out = None
        if dt is not _BF16 and op.nout == 1:
            try:
                if check is not None:
                    check(dt)
                probe = _probe(dt)
                out_dt = op.dtype((probe,), _EMPTY) if op.dtype is not None else dt
                comp = out_dt if op.cast_inputs else dt
                if comp is dt:
                    with np.errstate(all="ignore"):
                        r = np.asarray(numpy_fn(np.ones(1, dt.np)))
                    out = out_dt if r.dtype == out_dt.np else None
            except (RuntimeError, TypeError):  # refused: the fallback raises torch's error
                out = None
        fast[dt] = out
        return out

    def f(input, *, out=None):
        if out is None and tracer[0] is None and isinstance(input, Tensor):
            dt = input.dtype
            try:
                out_dt = fast[dt]
            except KeyError:
                out_dt = fast_dtype(dt)
            if out_dt is not None:
                x = input._data
                try:
                    res = run(numpy_fn, x)
                except RuntimeError:  # OnDevice (the full path hands a CUDA tensor over) or a busy context
                    return fallback(input, out=out)
                if type(res) is not ndarray:
                    res = np.asarray(res)
                elif res.ndim > 1 and res.strides != x.strides:
                    res = _match_layout(res, (input,))
                t = _make_tensor(res, out_dt)
                if input._requires_grad and has_vjp and grad_state["enabled"]:
                    _record_grad(op, (input,), _EMPTY, (t,))
                return t
        return fallback(input, out=out)

    f.__name__ = fallback.__name__
    f.__doc__ = fallback.__doc__
    return f
