"""Attach the op functions to Tensor as methods and operators.

`x.add(y)`, `tracegrad.add(x, y)` and `x + y` are the same function; `x.add_(y)`
is built from it by `inplace`. One table, so a method never drifts from its
function."""
from __future__ import annotations

from .tensor import Tensor
from .ops import pointwise as P, reduce as R, movement as M, index as I, linalg as L
from .ops.inplace import inplace
from . import creation as C
from .autograd import grad_mode as _grad_mode

# method name -> function(self, ...)
METHODS = {
    # pointwise
    **{n: getattr(P, n) for n in (
        "add sub subtract mul multiply div divide true_divide floor_divide remainder fmod pow neg negative abs "
        "absolute exp exp2 expm1 log log2 log10 log1p sqrt rsqrt sin cos tan tanh sigmoid asin acos atan sinh cosh "
        "arcsin arccos arctan erf relu sign floor ceil trunc fix round reciprocal square frac clamp clip clamp_min "
        "clamp_max maximum minimum fmax fmin lerp eq ne lt le gt ge greater greater_equal less less_equal not_equal "
        "logical_and logical_or logical_xor logical_not bitwise_and bitwise_or bitwise_xor bitwise_not isnan isinf "
        "isfinite equal isclose allclose atan2 arctan2 rsub").split()},
    "where": lambda self, condition, other: P.where(condition, self, other),
    "softmax": lambda self, dim, dtype=None: softmax(self, dim, dtype),
    "log_softmax": lambda self, dim, dtype=None: log_softmax(self, dim, dtype),
    # reductions
    **{n: getattr(R, n) for n in (
        "sum nansum mean prod max min amax amin argmax argmin var std norm logsumexp any all cumsum cumprod").split()},
    # shape and views
    **{n: getattr(M, n) for n in (
        "view view_as reshape reshape_as flatten unflatten permute transpose swapaxes swapdims t expand expand_as "
        "broadcast_to unsqueeze squeeze select narrow as_strided diagonal split chunk tensor_split unbind clone "
        "contiguous flip fliplr flipud repeat tile movedim moveaxis unfold tril triu roll diag repeat_interleave").split()},
    # indexing
    **{n: getattr(I, n) for n in (
        "index_select gather scatter scatter_add scatter_reduce masked_fill masked_select nonzero argwhere take "
        "index_put index_fill index_add copy_ fill_ zero_ sort argsort topk msort").split()},
    # linear algebra
    **{n: getattr(L, n) for n in "mm bmm mv dot inner matmul outer ger addmm".split()},
    # random fills
    **{n: getattr(C, n) for n in "uniform_ normal_ random_ bernoulli_ exponential_".split()},
}

def softmax(input, dim, dtype=None):
    """torch.softmax / Tensor.softmax: nn.functional's, with `dim` required as torch's are."""
    from .nn import functional as F

    return F.softmax(input, dim, dtype=dtype)


def log_softmax(input, dim, dtype=None):
    from .nn import functional as F

    return F.log_softmax(input, dim, dtype=dtype)


METHODS.update(softmax=softmax, log_softmax=log_softmax)

# in-place forms `op_` built from the out-of-place op
INPLACE = (
    "add sub mul div true_divide floor_divide remainder fmod pow neg abs exp log log1p expm1 sqrt rsqrt sin cos "
    "tan tanh sigmoid relu sign floor ceil trunc round reciprocal square clamp clip clamp_min clamp_max lerp "
    "masked_fill scatter scatter_add index_fill index_add index_put logical_not logical_and logical_or "
    "eq ne lt le gt ge erf exp2 log2 log10 atan2 frac bitwise_and bitwise_or bitwise_xor bitwise_not "
    "maximum minimum").split()


def softmax(input, dim, dtype=None):
    """torch.softmax / Tensor.softmax: nn.functional.softmax with a required dim."""
    from .nn import functional as F  # (nn imports the tensor layer, so not at module load)

    return F.softmax(input, dim, dtype=dtype)


def log_softmax(input, dim, dtype=None):
    """torch.log_softmax / Tensor.log_softmax: nn.functional.log_softmax with a required dim."""
    from .nn import functional as F

    return F.log_softmax(input, dim, dtype=dtype)


def _t_(self):
    return _meta_inplace(self, M.t(self))


def _transpose_(self, d0, d1):
    return _meta_inplace(self, M.transpose(self, d0, d1))


def _unsqueeze_(self, dim):
    return _meta_inplace(self, M.unsqueeze(self, dim))


def _squeeze_(self, dim=None):
    return _meta_inplace(self, M.squeeze(self, dim))


def _resize_(self, *size):
    import numpy as np

    from .creation import _size

    shape = _size(size)
    n = 1
    for s in shape:
        n *= s
    flat = self._data.reshape(-1) if self.is_contiguous() else self._data.copy().reshape(-1)
    if n <= flat.size:
        self._data = flat[:n].reshape(shape)
    else:
        new = np.zeros(n, dtype=self._data.dtype)
        new[: flat.size] = flat
        self._data = new.reshape(shape)
    return self


def _meta_inplace(self, r):
    """t_, transpose_, unsqueeze_...: the tensor takes the view's shape and strides."""
    if self._requires_grad and self.grad_fn is None and _grad_mode.is_grad_enabled():  # torch's leaf rule
        raise RuntimeError("a leaf Variable that requires grad is being used in an in-place operation.")
    self._data = r._data
    if r.grad_fn is not None:
        self.grad_fn, self._output_nr = r.grad_fn, r._output_nr
    return self


def _operator(fn):
    """A binary operator over `fn` that returns NotImplemented for an operand that is neither a tensor,
    an ndarray nor a number, as torch's operators do: Python then answers (`x == None` is False,
    `x + None` is its "unsupported operand type(s) for +" TypeError). Only the failing path pays."""
    def method(self, other):
        try:
            return fn(self, other)
        except TypeError:
            if isinstance(other, (Tensor, M.np.ndarray)) or P._scalar_ok(other):
                raise
            return NotImplemented

    return method


def _fast(op, fallback=None):
    """The dispatcher's fast operator for op, its fallback (where foreign operands fail) wrapped."""
    if fallback is None:
        fallback = P._sub_checked if op is P.SUB else (lambda a, b: P.binary(op, a, b))
    return P.fast_binary_method(op, _operator(fallback))


def _binop(fn, reverse=False):
    if reverse:
        return lambda self, other: fn(other, self)
    return fn


def _rsub(self, other):
    return P.rsub(self, other)


def _rtruediv(self, other):
    if not isinstance(other, Tensor):  # torch computes number / x as reciprocal(x) * number
        return P.mul(P.reciprocal(self), other)
    return P.div(other, self)


def _rpow(self, other):
    return P.pow(other, self)


def _rmatmul(self, other):
    if not isinstance(other, Tensor):  # torch: `number @ x` is Python's TypeError for @, not matmul's 0-d error
        return NotImplemented
    return L.matmul(other, self)


def _inplace_op(fn):
    m = inplace(fn)
    return m


def _invert(self):
    from . import dtypes as D

    if self.dtype is D.bool_:
        return P.logical_not(self)
    if self.dtype.is_floating_point:
        raise TypeError("~ (operator.invert) is only implemented on integer and Boolean-type tensors")
    return P.bitwise_not(self)


def _getitem(self, index):
    return I.getitem(self, index)


def _setitem(self, index, value):
    I.setitem(self, index, value)


def _T(self):
    x = self._data
    if M._TRACER[0] is None and type(x) is M.np.ndarray:
        return M._view_of(self, x.T, M.PERMUTE, {"dims": tuple(range(x.ndim - 1, -1, -1))})
    return M.permute(self, tuple(reversed(range(self.ndim))))


# in-place ops whose result dtype is the promotion of self and the other operand (checked up front;
# not sub, whose bool check comes first in torch)
_PROMOTING = frozenset("add mul floor_divide remainder fmod bitwise_and bitwise_or bitwise_xor".split())


def _clamp_scalar_(name):
    """clamp_/clip_/clamp_min_/clamp_max_: with Python-number bounds torch names the output type the
    C++ way in its cast error ("... desired output type signed char"), unlike other in-place ops."""
    generic = inplace(METHODS[name])

    def method(self, *args, **kwargs):
        bounds = [v for v in (*args, *kwargs.values()) if v is not None]
        if bounds and not any(isinstance(v, Tensor) for v in bounds):
            from . import dtypes as D

            dt = D.result_type(self, *bounds)
            if dt.category > self.dtype.category:
                raise RuntimeError(f"result type {dt.short} can't be cast to the desired output type "
                                   f"{P._c_name(self.dtype)}")
        return generic(self, *args, **kwargs)

    method.__name__ = name + "_"
    return method


def _ravel(self):
    """torch's ravel: contiguous().view(-1), so a copy (then a view of it) unless already contiguous."""
    return M.view(self.contiguous(), -1)


def install() -> None:
    for name, fn in METHODS.items():
        setattr(Tensor, name, fn)
    for name in INPLACE:
        setattr(Tensor, name + "_", inplace(METHODS[name], promotes=name in _PROMOTING))
    for name in ("clamp", "clip", "clamp_min", "clamp_max"):
        setattr(Tensor, name + "_", _clamp_scalar_(name))
    Tensor.t_ = _t_
    Tensor.transpose_ = _transpose_
    Tensor.swapaxes_ = _transpose_
    Tensor.unsqueeze_ = _unsqueeze_
    Tensor.squeeze_ = _squeeze_
    Tensor.resize_ = _resize_
    Tensor.T = property(_T)
    Tensor.mT = property(lambda self: M.transpose(self, -2, -1))
    Tensor.ravel = _ravel
    Tensor.mH = Tensor.mT  # (no complex dtypes: the conjugate transpose is the transpose)
    Tensor.__getitem__ = _getitem
    Tensor.__setitem__ = _setitem
    ops = {
        "__add__": _fast(P.ADD), "__radd__": _fast(P.ADD),
        "__iadd__": inplace(P.add, promotes=True),
        "__sub__": _fast(P.SUB), "__rsub__": _operator(_rsub), "__isub__": inplace(P.sub),
        "__mul__": _fast(P.MUL), "__rmul__": _fast(P.MUL),
        "__imul__": inplace(P.mul, promotes=True),
        "__truediv__": _fast(P.DIV, P.div), "__rtruediv__": _operator(_rtruediv), "__itruediv__": inplace(P.div),
        "__floordiv__": _operator(P.floor_divide), "__rfloordiv__": _operator(_binop(P.floor_divide, True)),
        "__ifloordiv__": inplace(P.floor_divide, promotes=True),
        "__mod__": _operator(P.remainder), "__rmod__": _operator(_binop(P.remainder, True)),
        "__imod__": inplace(P.remainder, promotes=True),
        "__pow__": _operator(P.pow), "__rpow__": _operator(_rpow), "__ipow__": inplace(P.pow),
        "__matmul__": L.matmul, "__rmatmul__": _rmatmul,
        "__neg__": P.neg, "__pos__": lambda self: self, "__abs__": P.abs, "__invert__": _invert,
        "__and__": P.bitwise_and, "__rand__": _binop(P.bitwise_and, True), "__iand__": inplace(P.bitwise_and, promotes=True),
        "__or__": P.bitwise_or, "__ror__": _binop(P.bitwise_or, True), "__ior__": inplace(P.bitwise_or, promotes=True),
        "__xor__": P.bitwise_xor, "__rxor__": _binop(P.bitwise_xor, True), "__ixor__": inplace(P.bitwise_xor, promotes=True),
        **{f"__{n}__": _fast(P._CMP[n], getattr(P, n)) for n in ("eq", "ne", "lt", "le", "gt", "ge")},
    }
    for name, fn in ops.items():
        setattr(Tensor, name, fn)
    Tensor.__hash__ = lambda self: id(self)


install()
