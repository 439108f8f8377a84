"""The device dispatcher: ops on CUDA tensors run as Triton kernels generated from the op table.

`dispatch.apply` sends an op here when one of its inputs lives on the device
(see array.py for how it notices without a check on the CPU path). Each op
becomes one small KernelSpec, rendered by the same code the compiler's fused
kernels use (kernels/triton), and launched by the runtime on device pointers:

    view ops        no kernel: the op's NumPy function runs on a stand-in array with
                    the view's strides (zero pages, never read), and the new shape,
                    strides and offset are read off the result (as the tracer does)
    pointwise       one elementwise kernel: broadcasting and any strides come from
                    the loads' shapes and strides; the output takes torch's layout
    reductions      sum, mean, prod, amax/amin over any dims: the reduced dims are
                    permuted last (strides only, no copy) into a row-reduction kernel
    matmul          tl.dot, batched and broadcast; linear and addmm add their bias in
                    the epilogue, and linear's backward is two matmuls and a row sum
    clone, casts    a load -> store kernel
    composites      kernels written out of the op table's primitives, one module each:
                    composite.py  softmax, log_softmax, the losses (cross_entropy, nll, mse,
                                  smooth_l1, binary cross-entropy), layer_norm, batch_norm,
                                  logsumexp, var/std, norm, nansum, any/all, max/min over a dim,
                                  argmax/argmin, cat and stack
                    movement.py   flip, repeat, constant_pad_nd
                    conv.py       conv2d (im2col copy + matmul), pooling, their backwards
                    gather.py     indexing: gather, scatter, x[idx], index_put, embedding...
                    scan.py       cumsum, cumprod
                    random.py     rand, randn, dropout's mask (Philox 4x32-10)
    everything else copies its inputs to the host, runs the op's NumPy code, and copies
                    the results back, with a one-time warning naming the op
                    (`host_fallbacks()` lists those seen): today scatter with
                    reduce='multiply' (and accumulating bool values), as_strided's backward,
                    argsort of rows longer than one block or of 64-bit values

Autograd needs nothing from here: results are recorded exactly as `apply`
records CPU results, and vjp rules are tracegrad ops, so they come back here.
"""
from __future__ import annotations

import warnings
from typing import Any, Sequence

import numpy as np

from ... import dtypes as D
from ...device import CPU, CUDA0, OnDevice
from ..triton.lowering import LoweringError
from ..triton.render import render
from ..triton.spec import KernelSpec, Load, MatMul, Step, Store
from .array import DeviceArray, contiguous_strides

_FALLBACKS: dict[str, str] = {}  # op name -> why it ran on the host
_SOURCES: dict[str, Any] = {}  # spec key -> rendered source (rendering is pure Python, cache it)


def host_fallbacks() -> dict[str, str]:
    """The ops that ran on the host because they have no device kernel yet: name -> reason."""
    return dict(_FALLBACKS)


def _runtime():
    from . import runtime

    return runtime()


# ---- memory ------------------------------------------------------------------------------------
def empty(shape: Sequence[int], dtype: D.DType, strides: Sequence[int] | None = None) -> DeviceArray:
    """New device memory for a tensor of `shape` (row-major unless `strides` says otherwise)."""
    shape = tuple(int(n) for n in shape)
    strides = contiguous_strides(shape) if strides is None else tuple(strides)
    span = 1 + sum((n - 1) * s for n, s in zip(shape, strides)) if all(shape) else 0
    buf = _runtime().empty(max(span, 0), dtype)
    return DeviceArray(buf, shape, strides, 0, dtype)


def from_host(arr: np.ndarray, dtype: D.DType) -> DeviceArray:
    """A row-major device copy of a host array (its storage dtype: bfloat16 as uint16 bits)."""
    arr = np.asarray(arr)
    arr = np.ascontiguousarray(arr).reshape(arr.shape)  # (ascontiguousarray makes a 0-d array 1-d)
    buf = _runtime().to_device(arr.reshape(-1), dtype)
    return DeviceArray(buf, arr.shape, contiguous_strides(arr.shape), 0, dtype)


def to_host(d: DeviceArray) -> np.ndarray:
    """A row-major host copy of a device array, in its storage dtype."""
    if not d.contiguous or any(s < 0 for s in d.estrides):
        d = copy_array(d)
    out = np.empty(d.offset + d.size, d.dtype)
    if d.size:
        rt = _runtime_of(d)
        rt.driver.copy_to_host(out, d.buffer.data_ptr())
    return out[d.offset:].reshape(d.shape)


def _runtime_of(d: DeviceArray):
    return d.buffer.runtime


def _arg(d: DeviceArray):
    from . import KernelArg

    return KernelArg(d.buffer.data_ptr(), d.tdtype, d.buffer.nbytes)


def _launch(spec: KernelSpec, arrays: dict[str, DeviceArray]) -> None:
    key = spec.key()
    source = _SOURCES.get(key)
    if source is None:
        source = _SOURCES[key] = render(spec)
    rt = next(iter(arrays.values())).buffer.runtime
    rt.launch(source, {p.buffer: _arg(arrays[p.buffer]) for p in source.params})


# ---- kernels -------------------------------------------------------------------------------------
def _load(name: str, d: DeviceArray) -> Load:
    return Load(name, d.tdtype, d.shape, d.estrides, d.offset)


def _store(value: str, out: DeviceArray) -> Store:
    return Store("out", value, out.tdtype, out.shape, out.estrides, out.offset)


def copy_into(out: DeviceArray, src: DeviceArray) -> None:
    """out[...] = src on the device: src broadcasts to out's shape, values cast to out's dtype."""
    if out.size == 0:
        return
    spec = KernelSpec("tg_copy", out.shape, (_load("src", src),), (), (_store("src", out),))
    _launch(spec, {"src": src, "out": out})


def copy_array(d: DeviceArray, dtype: D.DType | None = None) -> DeviceArray:
    """A row-major copy (in `dtype`, default d's) of a device array."""
    out = empty(d.shape, dtype or d.tdtype)
    copy_into(out, d)
    return out


def write(dst: DeviceArray, value) -> None:
    """dst[...] = value, value a device array, a host array or a number."""
    if not isinstance(value, DeviceArray):
        arr = np.asarray(value)
        if arr.dtype != dst.dtype:
            from ...dispatch import to_storage

            arr = to_storage(arr.astype(D.compute_np(dst.tdtype)) if dst.tdtype is not D.bfloat16 else arr, dst.tdtype)
        value = from_host(arr, dst.tdtype)
    copy_into(dst, value)


def pointwise(opname: str, inputs: Sequence, attrs: dict, dtype: D.DType, compute: D.DType | None,
              out: DeviceArray | None = None) -> DeviceArray:
    """One elementwise op over device arrays and Python numbers, in one kernel.

    The result goes to `out` when given, else to new memory laid out as torch lays
    out elementwise results (the inputs' memory order)."""
    loads, args, arrays = [], [], {}
    for i, x in enumerate(inputs):
        if isinstance(x, DeviceArray):
            name = f"in{i}"
            loads.append(_load(name, x))
            arrays[name] = x
            args.append(name)
        else:
            args.append(x.item() if isinstance(x, (np.generic, np.ndarray)) else x)
    shapes = [x.shape for x in inputs if isinstance(x, DeviceArray)]
    shape = tuple(np.broadcast_shapes(*shapes)) if shapes else ()
    if out is None:
        from ...ops.shape_util import pointwise_strides

        strides = pointwise_strides(shape, [(x.shape, x.estrides) for x in inputs if isinstance(x, DeviceArray)])
        out = empty(shape, dtype, strides)
    if out.size:
        spec = KernelSpec(f"tg_{opname}", shape, tuple(loads), (Step("y", opname, tuple(args), attrs, dtype, compute),),
                          (_store("y", out),))
        arrays["out"] = out
        _launch(spec, arrays)
    return out


def ufunc_into(opname: str, inputs: Sequence, out: DeviceArray) -> None:
    """np.add(a, b, out=a) and friends on device arrays (autograd accumulates gradients so)."""
    from ...ops.table import OPS

    op = OPS[opname]
    proxies = [_Meta(x.tdtype, x.ndim) if isinstance(x, DeviceArray) else x for x in inputs]
    compute = D.result_type(*proxies)
    if op.cast_inputs and op.dtype is not None:
        compute = op.dtype(proxies, {})
    pointwise(opname, inputs, {}, out.tdtype, compute, out=out)


class _Meta:
    """What dtype rules read of a tensor."""

    __slots__ = ("dtype", "ndim", "_data")

    def __init__(self, dtype, ndim):
        self.dtype, self.ndim = dtype, ndim


def reduce(op, x: DeviceArray, attrs: dict, dtype: D.DType, compute: D.DType | None) -> DeviceArray:
    """sum/mean/prod/amax over attrs['dims'] as a row reduction: reduced dims are moved last."""
    nd = x.ndim
    dims = sorted({d % nd for d in attrs["dims"]}) if nd else []
    keep = [i for i in range(nd) if i not in dims]
    perm = keep + dims
    rows = tuple(x.shape[i] for i in keep)
    final = tuple(1 if i in dims else x.shape[i] for i in range(nd)) if attrs.get("keepdim") else rows
    out = empty(final, dtype)
    if out.size == 0:
        return out
    if not dims:  # nothing reduced (a 0-d tensor's sum): each element is its own result
        copy_into(out, DeviceArray(x.buffer, final, x.estrides if len(final) == nd else (), x.offset, x.tdtype))
        return out
    if x.size == 0:  # an empty reduction: the host knows the identity
        raise LoweringError(f"{op.name} over no elements")
    ld = Load("x", x.tdtype, tuple(x.shape[i] for i in perm), tuple(x.estrides[i] for i in perm), x.offset)
    step_attrs = dict(attrs, dims=tuple(range(len(keep), nd)))
    spec = KernelSpec(f"tg_{op.name}", ld.shape, (ld,), (Step("y", op.name, ("x",), step_attrs, dtype, compute),),
                      (Store("out", "y", dtype, rows, contiguous_strides(rows), 0),), reduce_ndim=len(dims))
    _launch(spec, {"x": x, "out": out})
    return out


def _as_matrix(d: DeviceArray, is_b: bool) -> tuple[tuple, tuple]:
    """(shape, strides) of a matmul operand with a 1-d vector made 2-d (a row for a, a column for b)."""
    if d.ndim >= 2:
        return d.shape, d.estrides
    # (the size-1 dim's stride is never used; 1 keeps it from looking like a broadcast)
    if is_b:
        return (d.shape[0], 1), (d.estrides[0], 1)
    return (1, d.shape[0]), (1, d.estrides[0])


def matmul(a: DeviceArray, b: DeviceArray, dtype: D.DType, *, b_transposed: bool = False,
           bias: DeviceArray | None = None, alpha=1, beta=1) -> DeviceArray:
    """a @ b (NumPy's matmul rules, batched and broadcast) with an optional bias epilogue:
    alpha * (a @ b) + beta * bias. b_transposed reads b's last two dims swapped (linear's weight)."""
    # an operand whose matrix dims both have stride 0 (an expanded scalar, as the gradient of a
    # plain sum) is copied dense: its tile would have no axis to lay out and tl.dot rejects it
    if a.tdtype is not dtype or (a.ndim >= 2 and not any(a.estrides[-2:])):
        a = copy_array(a, dtype)
    if b.tdtype is not dtype or (b.ndim >= 2 and not any(b.estrides[-2:])):
        b = copy_array(b, dtype)
    ash, ast = _as_matrix(a, False)
    bsh, bst = _as_matrix(b, True)
    if b_transposed:
        bsh, bst = bsh[:-2] + (bsh[-1], bsh[-2]), bst[:-2] + (bst[-1], bst[-2])
    batch = tuple(np.broadcast_shapes(ash[:-2], bsh[:-2]))
    shape = batch + (ash[-2], bsh[-1])
    final = batch + ((ash[-2],) if a.ndim >= 2 else ()) + ((bsh[-1],) if b.ndim >= 2 or b_transposed else ())
    out = empty(final, dtype)
    if out.size == 0:
        return out
    if ash[-1] == 0:  # an empty sum: zeros (plus the bias); Triton's loop would not run at all
        raise LoweringError("matmul over K = 0")
    loads = [Load("a", dtype, ash, ast, a.offset), Load("b", dtype, bsh, bst, b.offset)]
    arrays = {"a": a, "b": b}
    body, value = [], "mm"
    if alpha != 1:
        body.append(Step("mm_a", "mul", ("mm", alpha), {}, dtype, dtype))
        value = "mm_a"
    if bias is not None:
        loads.append(_load("bias", bias))
        arrays["bias"] = bias
        bv = "bias"
        if beta != 1:
            body.append(Step("bias_b", "mul", ("bias", beta), {}, dtype, dtype))
            bv = "bias_b"
        body.append(Step("y", "add", (value, bv), {}, dtype, dtype))
        value = "y"
    arrays["out"] = out
    # (the tiles, including the smaller ones for b read K-contiguous, are matmul.default_tiles')
    spec = KernelSpec(f"tg_matmul", shape, tuple(loads), tuple(body),
                      (Store("out", value, dtype, shape, contiguous_strides(shape), 0),), matmul=MatMul("mm", "a", "b"))
    _launch(spec, arrays)
    return out


def _transposed(d: DeviceArray) -> DeviceArray:
    return DeviceArray(d.buffer, d.shape[::-1], d.estrides[::-1], d.offset, d.tdtype)


# ---- views ---------------------------------------------------------------------------------------
def view(op, x: DeviceArray, rest: tuple, attrs: dict) -> list[DeviceArray] | None:
    """The op's views of `x` (shape, strides, offset in x's storage), or None when the op copies.

    The op's own NumPy function runs on a stand-in: an array with x's strides over
    fresh zero pages as large as x's storage, which it never reads."""
    from ...tracer.graph import np_attrs

    item = x.dtype.itemsize
    n = max(x.buffer.nbytes // item, 1)
    base = np.zeros(n, x.dtype)
    stand = np.lib.stride_tricks.as_strided(base[x.offset:], x.shape, x.strides) if x.size else \
        np.empty(x.shape, x.dtype)
    res = op.numpy(stand, *rest, **np_attrs(op, attrs))
    res = [res] if op.nout == 1 else list(res)
    lo, hi = base.ctypes.data, base.ctypes.data + base.nbytes
    out = []
    for r in res:
        if not isinstance(r, np.ndarray):
            return None
        if r.size == 0:
            out.append(DeviceArray(x.buffer, r.shape, contiguous_strides(r.shape), 0, D.from_numpy_dtype(r.dtype)
                                   if r.dtype != x.dtype else x.tdtype))
            continue
        p = r.__array_interface__["data"][0]
        if not (lo <= p < hi) or not np.shares_memory(r, base):
            return None
        ritem = r.itemsize
        tdt = x.tdtype if r.dtype == x.dtype else D.from_numpy_dtype(r.dtype)
        out.append(DeviceArray(x.buffer, r.shape, tuple(s // ritem for s in r.strides), (p - lo) // ritem, tdt))
    return out


# ---- tensors -------------------------------------------------------------------------------------
def _Tensor():
    from ...tensor import Tensor

    return Tensor


def _same_device(args) -> None:
    """torch's rule: one device per op (a 0-d CPU tensor may join CUDA tensors, as a number would)."""
    T = _Tensor()
    seen_cpu = False
    for a in args:
        items = a if type(a) in (list, tuple) else (a,)
        for t in items:
            if isinstance(t, T) and type(t._data) is np.ndarray and t._data.ndim > 0:
                seen_cpu = True
    if seen_cpu:
        raise RuntimeError("Expected all tensors to be on the same device, but found at least two devices, "
                           "cuda:0 and cpu!")


def _device_value(a):
    """A tensor's device array; a 0-d CPU tensor is copied over (torch lets those mix in)."""
    d = a._data
    if type(d) is np.ndarray:
        return from_host(d, a.dtype)
    return d


def _fallback(op, args, attrs, dtype, compute, why: str):
    """Run the op's NumPy code on host copies of the inputs; results are copied back."""
    from ...autograd import grad_mode
    from ...dispatch import apply

    if op.name not in _FALLBACKS:
        _FALLBACKS[op.name] = why
        warnings.warn(f"tracegrad: {op.name} has no CUDA kernel yet ({why}); it runs on the host, its inputs "
                      "copied from the device and its results copied back", stacklevel=4)
    T = _Tensor()

    def host(a):
        if isinstance(a, T) and type(a._data) is not np.ndarray:
            return T._make(to_host(a._data), a.dtype)
        if isinstance(a, DeviceArray):
            return to_host(a)
        if type(a) in (list, tuple):
            return type(a)(host(x) for x in a)
        return a

    host_attrs = {k: host(v) for k, v in attrs.items()}
    with grad_mode.no_grad():
        r = apply(op, tuple(host(a) for a in args), host_attrs, dtype, compute)
    rs = [r] if op.nout == 1 else list(r)
    return [T._make(from_host(o._data, o.dtype), o.dtype) for o in rs]


def _run(op, args, attrs, dtype, compute):
    """The op's outputs as CUDA tensors (no autograd yet)."""
    T = _Tensor()
    kind = op.kind
    if kind == "view":
        src = args[0]
        views = view(op, src._data, args[1:], attrs)
        if views is not None:
            base = src._base if src._base is not None else src
            outs = []
            for v in views:
                t = T._make(v, v.tdtype)
                t._base = base
                t._vc = src._vc
                outs.append(t)
            return outs
        return _fallback(op, args, attrs, dtype, compute, "its view needs a copy")
    try:
        if op.lowering is not None and kind == "pointwise":
            ins = [_device_value(a) if isinstance(a, T) else
                   (D.wrap_int(a, compute) if type(a) is int and compute is not None and compute.category == D._INT
                    else a) for a in args]
            return [T._make(pointwise(op.name, ins, attrs, dtype, compute), dtype)]
        if kind == "reduce" and op.lowering is not None:
            return [T._make(reduce(op, args[0]._data, attrs, dtype, compute), dtype)]
        if kind == "movement" and op.name in ("clone", "contiguous"):
            x = args[0]._data
            strides = None
            if op.name == "clone":
                from ...ops.shape_util import pointwise_strides

                strides = pointwise_strides(x.shape, [(x.shape, x.estrides)])
            out = empty(x.shape, dtype, strides)
            copy_into(out, x)
            return [T._make(out, dtype)]
        if op.name == "matmul":
            return [T._make(matmul(args[0]._data, args[1]._data, dtype), dtype)]
        if op.name == "linear" and args[2] is not None and args[0].ndim == 2:
            x, w, b = (a._data for a in args)
            return [T._make(matmul(x, w, dtype, b_transposed=True, bias=b), dtype)]
        if op.name == "addmm":
            b, m1, m2 = (a._data for a in args)
            return [T._make(matmul(m1, m2, dtype, bias=b, alpha=attrs.get("alpha", 1), beta=attrs.get("beta", 1)),
                            dtype)]
        if op.name == "linear_backward":
            return _linear_backward(args, attrs, dtype)
        handler = _composite().get(op.name)
        if handler is not None:
            outs = handler(args, attrs, dtype, compute)
            dts = dtype if isinstance(dtype, tuple) else (dtype,) * len(outs)
            return [T._make(o, dt) for o, dt in zip(outs, dts)]
    except LoweringError as e:
        return _fallback(op, args, attrs, dtype, compute, str(e))
    why = "no Triton lowering" if op.lowering is None else f"{kind} ops are not launched eagerly"
    return _fallback(op, args, attrs, dtype, compute, why)


_HANDLERS: dict | None = None


def _composite() -> dict:
    """op name -> its device kernel: composite.py (softmax, losses, layer_norm, cat...),
    movement.py (flip, repeat, pad), conv.py (convolution, pooling), gather.py (indexing),
    scan.py (cumsum, cumprod)."""
    global _HANDLERS
    if _HANDLERS is None:
        from . import composite, conv, gather, movement, scan

        _HANDLERS = {**composite.HANDLERS, **movement.HANDLERS, **conv.HANDLERS, **gather.HANDLERS,
                     **scan.HANDLERS}
    return _HANDLERS


def _copy_op(args, dtype):
    """dst.copy_(src)'s value: src broadcast to dst's shape, in dst's dtype, on dst's device."""
    from ...dispatch import to_storage

    T = _Tensor()
    dst, src = args
    if type(dst._data) is np.ndarray:  # device -> host
        vals = np.broadcast_to(host_values(src).astype(D.compute_np(dtype)), dst.shape)
        return T._make(to_storage(np.ascontiguousarray(vals), dtype), dtype)
    if isinstance(src, T):
        s = src._data if type(src._data) is not np.ndarray else from_host(src._data, src.dtype)
    else:
        s = from_host(to_storage(np.asarray(src, D.compute_np(dtype)), dtype), dtype)
    out = empty(dst.shape, dtype)
    copy_into(out, s)
    return T._make(out, dtype)


def _linear_backward(args, attrs, dtypes):
    """grad of x @ w.T + b: (g @ w, g.T @ x, g summed over rows), two matmuls and a reduction."""
    from ...ops.table import OPS

    T = _Tensor()
    g, x, w = (a._data for a in args)
    needs = attrs.get("needs", (True, True, True))
    dt = dtypes[0] if isinstance(dtypes, tuple) else dtypes
    none = T._make(empty((0,), dt), dt)
    gx = T._make(matmul(g, w, dt), dt) if needs[0] else none
    gw = T._make(matmul(_transposed(g), x, dt), dt) if needs[1] else none
    gb = T._make(reduce(OPS["sum"], g, {"dims": (0,), "keepdim": False}, dt, None), dt) if needs[2] else none
    return [gx, gw, gb]


def apply_on_device(op, args: tuple, attrs: dict, dtype: D.DType | None, compute: D.DType | None):
    """`dispatch.apply` for ops with an input in device memory: kernels, then autograd as on the CPU."""
    from ...autograd.grad_mode import _state
    from ...autograd.record import record
    from ...dispatch import _first_dtype

    if op.name == "copy":  # copy_ is how data crosses devices: either side may be the host
        outs = (_copy_op(args, dtype),)
    else:
        _same_device(args)
        outs = None
    if dtype is None:
        dtype = op.dtype(args, attrs) if op.dtype is not None else _first_dtype(args)
    if compute is None and op.cast_inputs:
        compute = dtype if not isinstance(dtype, tuple) else dtype[0]
    if outs is None:
        outs = tuple(_run(op, args, attrs, dtype, compute))
    T = _Tensor()
    rg = any(isinstance(a, T) and a._requires_grad for a in args) or any(
        type(a) in (list, tuple) and any(isinstance(x, T) and x._requires_grad for x in a) for a in args)
    if rg and _state["enabled"] and op.vjp is not None:
        record(op, args, attrs, outs)
    return outs[0] if op.nout == 1 else outs


# ---- moving tensors between host and device ---------------------------------------------------------
def move(t, device) -> Any:
    """t on `device` (a copy; differentiable, as torch's `.to(device)` is)."""
    from ...autograd.grad_mode import _state

    if t._requires_grad and _state["enabled"]:
        return _ToCopy.apply(t, device)
    return _copy_to(t, device)


def _copy_to(t, device):
    T = _Tensor()
    if device.type == "cuda":
        return T._make(from_host(t._data, t.dtype), t.dtype)
    return T._make(to_host(t._data), t.dtype)


def _make_to_copy():
    from ...autograd.function import Function

    class ToCopy(Function):
        """The device copy as one autograd node: the gradient goes back to where the input was."""

        _node_name = "ToCopyBackward0"  # torch's name for the node of .to(device)

        @staticmethod
        def forward(ctx, x, device):
            ctx.source = x.device
            return _copy_to(x, device)

        @staticmethod
        def backward(ctx, g):
            return move(g, ctx.source) if g.device != ctx.source else g, None

    return ToCopy


class _LazyToCopy:
    _cls = None

    def apply(self, *args):
        if self._cls is None:
            self._cls = _make_to_copy()
        return self._cls.apply(*args)


_ToCopy = _LazyToCopy()


def host_values(t) -> np.ndarray:
    """A CUDA tensor's values on the host, as the CPU's `dispatch.values` gives them."""
    from ...dispatch import bf16_to_f32

    a = to_host(t._data)
    return bf16_to_f32(a) if t.dtype is D.bfloat16 else a


def to_device_tensor(t, device):
    """What `Tensor.to(device)` returns: t itself when it is there already."""
    here = t.device
    if here == device:
        return t
    return move(t, device)
