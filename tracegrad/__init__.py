"""tracegrad: a PyTorch-compatible tensor library that shows what it does.

    import tracegrad as torch

Tensors, autograd, nn and optim behave as torch's do; `tracegrad.ops` holds the
one table every op is defined in."""
from __future__ import annotations

from . import dtypes as _D
from .dtypes import (get_default_dtype, set_default_dtype, promote_types, result_type as _result_type, finfo, iinfo,
                     bool_ as bool, uint8, int8, int16, int32, int64, float16, bfloat16, float32, float64)
from .device import device
from .tensor import Tensor, Size, is_tensor
from . import methods as _methods  # noqa: F401  (attaches Tensor methods)
from .autograd.grad_mode import (no_grad, enable_grad, set_grad_enabled, inference_mode, is_grad_enabled,
                                 is_inference_mode_enabled)
from . import autograd, cuda
from .autograd import is_anomaly_enabled, is_anomaly_check_nan_enabled  # torch has them at the top level
from .ops.pointwise import (
    add, sub, subtract, rsub, mul, multiply, div, divide, true_divide, floor_divide, remainder, fmod, pow, neg,
    negative, abs, absolute, exp, exp2, expm1, log, log2, log10, log1p, sqrt, rsqrt, sin, cos, tan, tanh, sigmoid,
    asin, acos, atan, arcsin, arccos, arctan, sinh, cosh, erf, relu, sign, floor, ceil, trunc, fix, round,
    reciprocal, square, frac, clamp, clip, clamp_min, clamp_max, maximum, minimum, fmax, fmin, where, lerp,
    eq, ne, lt, le, gt, ge, greater, greater_equal, less, less_equal, not_equal, logical_and, logical_or,
    logical_xor, logical_not, bitwise_and, bitwise_or, bitwise_xor, bitwise_not, isnan, isinf, isfinite, equal,
    atan2, arctan2, isclose, allclose,
)
from .ops.reduce import (sum, nansum, mean, prod, max, min, amax, amin, argmax, argmin, var, std, var_mean,
                         std_mean, norm, logsumexp, any, all, cumsum, cumprod, return_types)
from .ops.movement import (reshape, flatten, unflatten, permute, transpose, swapaxes, swapdims, t, squeeze,
                           unsqueeze, select, narrow, as_strided, diagonal, split, chunk, tensor_split, unbind,
                           clone, flip, fliplr, flipud, tile, cat, concat, concatenate, stack, hstack, vstack,
                           movedim, moveaxis, broadcast_to, broadcast_tensors, tril, triu, roll, diag,
                           repeat_interleave, meshgrid)
from .ops.shape_util import broadcast_shapes
from .ops.index import (index_select, gather, scatter, scatter_add, scatter_reduce, masked_fill, masked_select,
                        nonzero, argwhere, take, index_put, index_fill, index_add, sort, argsort, topk, msort)
from .ops.linalg import mm, bmm, mv, dot, inner, matmul, outer, ger, addmm, einsum
from .creation import (tensor, as_tensor, asarray, from_numpy, empty, zeros, ones, full, empty_like, zeros_like,
                       ones_like, full_like, eye, arange, linspace, logspace, rand, randn, randint, randperm,
                       rand_like, randn_like, randint_like, normal, bernoulli, multinomial, manual_seed, seed,
                       initial_seed, get_rng_state, set_rng_state, Generator, default_generator)
from .printing import set_printoptions
from . import nn, optim, utils
from .methods import softmax, log_softmax, _ravel as ravel  # torch.softmax(x, dim, dtype=None), torch.ravel
from .serialization import save, load
from .tracer import trace, compile, explain

float = float32
double = float64
half = float16
int = int32
long = int64
short = int16
dtype = _D.DType
__version__ = "0.1.0"


def result_type(a, b):
    return _D.result_type(a, b)


def can_cast(from_, to) -> bool:
    return _D.can_cast(from_, to)


def numel(input) -> "builtins.int":
    return input.numel()


def is_floating_point(input) -> "builtins.bool":
    return input.dtype.is_floating_point


def is_nonzero(input) -> "builtins.bool":
    return input.__bool__()


def detach(input):
    return input.detach()


def square_(input):
    return input.square_()


class _LegacyType(type):
    """`isinstance(x, tracegrad.FloatTensor)` asks for x's dtype, as torch's legacy types do."""

    def __instancecheck__(cls, obj) -> "builtins.bool":
        return isinstance(obj, Tensor) and obj.dtype is cls._legacy_dtype


def _legacy(dt):
    class _Typed(Tensor, metaclass=_LegacyType):
        """Legacy typed constructors: `FloatTensor([1, 2])`, `LongTensor([0, 2])`."""

        _legacy_dtype = dt

        def __new__(cls, *args, **kwargs):
            return Tensor(*args, dtype=dt)

    _Typed.__name__ = dt.short + "Tensor"
    return _Typed


FloatTensor = _legacy(float32)
DoubleTensor = _legacy(float64)
HalfTensor = _legacy(float16)
LongTensor = _legacy(int64)
IntTensor = _legacy(int32)
ShortTensor = _legacy(int16)
ByteTensor = _legacy(uint8)
CharTensor = _legacy(int8)
BoolTensor = _legacy(bool)
