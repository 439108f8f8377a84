"""`tracegrad.nn.functional`: the stateless forms of the layers and losses.

Each function checks its arguments with torch's messages, settles shapes (batch
dims, unbatched inputs, broadcasting) and then runs one primitive from
`tracegrad.ops.nn_ops`, so `F.cross_entropy(x, y).grad_fn` is torch's
`NllLossBackward0`. While a tracer is recording, the composites that have a
decomposition into plain ops (softmax, log_softmax, mse_loss, gelu,
layer_norm) use it, so a compiler sees (and can fuse) primitives only."""
from __future__ import annotations

import warnings
from typing import Optional, Sequence

import numpy as np

from .. import dtypes as D
from ..dispatch import TRACER
from ..tensor import Tensor
from ..ops import nn_ops as K
from ..ops import pointwise as P
from ..ops import linalg as L
from ..ops.shape_util import broadcast_shapes, wrap_dim

__all__ = [
    "linear", "bilinear", "relu", "relu_", "relu6", "leaky_relu", "gelu", "silu", "elu", "softplus", "hardtanh",
    "sigmoid", "tanh", "softmax", "softmin", "log_softmax", "dropout", "conv2d", "max_pool2d", "avg_pool2d",
    "adaptive_avg_pool2d", "layer_norm", "batch_norm", "embedding", "one_hot", "pad", "normalize",
    "mse_loss", "l1_loss", "smooth_l1_loss", "huber_loss", "cross_entropy", "nll_loss", "binary_cross_entropy",
    "binary_cross_entropy_with_logits", "cosine_similarity", "logsigmoid", "hardsigmoid", "hardswish", "mish",
    "selu", "celu", "softsign", "tanhshrink", "threshold", "glu", "kl_div", "dropout2d",
]


def _tracing() -> bool:
    return TRACER[0] is not None


def _tname(t: Tensor) -> str:
    return f"tracegrad.{t.dtype.short}Tensor"


def _pair(v, name="") -> tuple:
    if isinstance(v, (tuple, list)):
        if len(v) == 1:
            return (int(v[0]),) * 2
        return tuple(int(x) for x in v)
    return (int(v), int(v))


def _check_reduction(reduction: str) -> None:
    if reduction not in ("none", "mean", "sum"):
        raise ValueError(f"{reduction} is not a valid value for reduction")


def _legacy_reduction(size_average, reduce, reduction):
    """The deprecated size_average/reduce flags, mapped as torch maps them."""
    if size_average is None and reduce is None:
        return reduction
    size_average = True if size_average is None else size_average
    reduce = True if reduce is None else reduce
    warnings.warn("size_average and reduce args will be deprecated, please use reduction='"
                  + ("none" if not reduce else "mean" if size_average else "sum") + "' instead.", UserWarning)
    if not reduce:
        return "none"
    return "mean" if size_average else "sum"


# ---- linear ---------------------------------------------------------------------------------------
def linear(input: Tensor, weight: Tensor, bias: Optional[Tensor] = None) -> Tensor:
    """y = x @ W.T + b. 2-D input with a bias is one node (AddmmBackward0), as in torch."""
    if bias is not None and TRACER[0] is None:  # the common case, checked in one go
        xs, ws, bs = input._data.shape, weight._data.shape, bias._data.shape
        if len(xs) == 2 and len(ws) == 2 and bs == ws[:1] and xs[1] == ws[1] and input.dtype is weight.dtype \
                and bias.dtype is weight.dtype:
            return K.linear(input, weight, bias)
    if input.ndim == 0 or weight.ndim not in (1, 2):
        raise RuntimeError(f"both arguments to linear need to be at least 1D, but they are {input.ndim}D and "
                           f"{weight.ndim}D")
    if weight.ndim == 2 and input.shape[-1] != weight.shape[1]:
        rows = input.numel() // input.shape[-1] if input.shape[-1] else 0
        if input.ndim == 1:
            rows = 1
        raise RuntimeError(f"mat1 and mat2 shapes cannot be multiplied ({rows}x{input.shape[-1]} and "
                           f"{weight.shape[1]}x{weight.shape[0]})")
    if input.dtype is not weight.dtype or (bias is not None and bias.dtype is not input.dtype):
        other = weight if input.dtype is not weight.dtype else bias
        raise RuntimeError(f"mat1 and mat2 must have the same dtype, but got {input.dtype.short} and "
                           f"{other.dtype.short}")
    if weight.ndim == 1:
        out = L.matmul(input, weight)
        return out + bias if bias is not None else out
    if bias is None:
        return L.matmul(input, weight.t())  # mm for 2-D input; torch's folding and names otherwise
    if input.ndim == 2:
        _check_bias(bias, input.shape[0], weight.shape[0])
        if _tracing() or bias.ndim != 1:
            return K.addmm(bias, input, weight.t())
        return K.linear(input, weight, bias)
    # other ranks: fold the leading dims into one, addmm, and view back (ViewBackward0, as torch)
    lead = input.shape[:-1]
    x2 = input.reshape(-1, input.shape[-1])
    _check_bias(bias, x2.shape[0], weight.shape[0])
    out = K.linear(x2, weight, bias) if bias.ndim == 1 and not _tracing() else K.addmm(bias, x2, weight.t())
    return out.view(tuple(lead) + (weight.shape[0],))


def _check_bias(bias, rows, cols):
    shape = bias._data.shape
    if shape == (cols,):  # the usual Linear bias
        return
    target = (rows, cols)
    ok = len(shape) <= 2 and all(s in (1, t) for s, t in zip(reversed(shape), reversed(target)))
    if not ok:
        n = len(target)
        for i, (s, t) in enumerate(zip(reversed(shape), reversed(target))):
            if s not in (1, t):
                raise RuntimeError(
                    f"The expanded size of the tensor ({t}) must match the existing size ({s}) at non-singleton "
                    f"dimension {n - 1 - i}.  Target sizes: [{rows}, {cols}].  Tensor sizes: "
                    f"[{', '.join(map(str, shape))}]")
        broadcast_shapes(shape, target)


def bilinear(input1: Tensor, input2: Tensor, weight: Tensor, bias: Optional[Tensor] = None) -> Tensor:
    """y_k = x1 @ W_k @ x2 (+ b_k)."""
    out = (L.matmul(input1.unsqueeze(-2).unsqueeze(-3), weight) * input2.unsqueeze(-2).unsqueeze(-2))
    out = out.sum(-1).squeeze(-1)
    return out + bias if bias is not None else out


# ---- activations --------------------------------------------------------------------------------
def _inplace_result(input: Tensor, out: Tensor) -> Tensor:
    """`inplace=True`: write the result into the input (torch's rules for in-place writes apply)."""
    from ..ops.inplace import check_writable, commit

    check_writable(input)
    return commit(input, out)


def relu(input: Tensor, inplace: bool = False) -> Tensor:
    out = P.relu(input)
    return _inplace_result(input, out) if inplace else out


def relu_(input: Tensor) -> Tensor:
    return relu(input, inplace=True)


def relu6(input: Tensor, inplace: bool = False) -> Tensor:
    return hardtanh(input, 0.0, 6.0, inplace)


def hardtanh(input: Tensor, min_val: float = -1.0, max_val: float = 1.0, inplace: bool = False) -> Tensor:
    out = K.hardtanh(input, min_val, max_val)
    return _inplace_result(input, out) if inplace else out


def leaky_relu(input: Tensor, negative_slope: float = 0.01, inplace: bool = False) -> Tensor:
    out = K.leaky_relu(input, negative_slope)
    return _inplace_result(input, out) if inplace else out


def gelu(input: Tensor, approximate: str = "none") -> Tensor:
    if approximate not in ("none", "tanh"):
        raise RuntimeError("approximate argument must be either none or tanh.")
    if not input.dtype.is_floating_point:  # torch's kernel error
        raise NotImplementedError(f'"GeluKernelImpl" not implemented for \'{input.dtype.short}\'')
    if _tracing():
        return K.gelu_decomposed(input, approximate)
    return K.gelu(input, approximate)


def silu(input: Tensor, inplace: bool = False) -> Tensor:
    out = K.silu(input)
    return _inplace_result(input, out) if inplace else out


def elu(input: Tensor, alpha: float = 1.0, inplace: bool = False) -> Tensor:
    out = K.elu(input, alpha)
    return _inplace_result(input, out) if inplace else out


def softplus(input: Tensor, beta: float = 1.0, threshold: float = 20.0) -> Tensor:
    return K.softplus(input, beta, threshold)


def sigmoid(input: Tensor) -> Tensor:
    return P.sigmoid(input)


def tanh(input: Tensor) -> Tensor:
    return P.tanh(input)


# ---- more activations: compositions of the ops above (autograd differentiates them; the values and
# gradients are torch's, the grad_fn names are those of the last op) --------------------------------------
def _float_only(input: Tensor, name: str) -> None:
    if not input.dtype.is_floating_point:
        raise NotImplementedError(f'"{name}" not implemented for \'{input.dtype.short}\'')


def logsigmoid(input: Tensor) -> Tensor:
    """log(sigmoid(x)) = -softplus(-x), stable for large |x|."""
    _float_only(input, "log_sigmoid_cpu")
    return -K.softplus(-input, 1.0, 20.0)


def hardsigmoid(input: Tensor, inplace: bool = False) -> Tensor:
    """relu6(x + 3) / 6."""
    _float_only(input, "hardsigmoid_cpu")
    out = K.hardtanh(input + 3.0, 0.0, 6.0) / 6.0
    return _inplace_result(input, out) if inplace else out


def hardswish(input: Tensor, inplace: bool = False) -> Tensor:
    """x * relu6(x + 3) / 6."""
    _float_only(input, "hardswish_cpu")
    out = input * (K.hardtanh(input + 3.0, 0.0, 6.0) / 6.0)
    return _inplace_result(input, out) if inplace else out


def mish(input: Tensor, inplace: bool = False) -> Tensor:
    """x * tanh(softplus(x))."""
    _float_only(input, "mish_cpu")
    out = input * P.tanh(K.softplus(input, 1.0, 20.0))
    return _inplace_result(input, out) if inplace else out


_SELU_ALPHA = 1.6732632423543772848170429916717
_SELU_SCALE = 1.0507009873554804934193349852946


def selu(input: Tensor, inplace: bool = False) -> Tensor:
    """scale * elu(x, alpha) with torch's constants."""
    _float_only(input, "elu_cpu")
    out = K.elu(input, _SELU_ALPHA) * _SELU_SCALE
    return _inplace_result(input, out) if inplace else out


def celu(input: Tensor, alpha: float = 1.0, inplace: bool = False) -> Tensor:
    """max(0, x) + min(0, alpha * (exp(x / alpha) - 1))."""
    if alpha == 0:
        raise RuntimeError("ZeroDivisionError: alpha cannot be 0 for CELU")  # (torch's words)
    _float_only(input, "elu_cpu")
    out = K.elu(input / alpha, 1.0) * alpha
    return _inplace_result(input, out) if inplace else out


def softsign(input: Tensor) -> Tensor:
    return input / (P.abs(input) + 1)


def tanhshrink(input: Tensor) -> Tensor:
    return input - P.tanh(input)


def threshold(input: Tensor, threshold: float, value: float, inplace: bool = False) -> Tensor:
    """x where x > threshold, else value."""
    out = input.masked_fill(input <= threshold, value)  # (a NaN stays NaN, as torch's x <= t ? value : x)
    return _inplace_result(input, out) if inplace else out


def glu(input: Tensor, dim: int = -1) -> Tensor:
    """a * sigmoid(b) for the two halves a, b of input along dim."""
    if input.ndim == 0:
        raise RuntimeError("glu does not support scalars because halving size must be even")
    d = wrap_dim(dim, input.ndim)
    n = input.shape[d]
    if n % 2:
        raise RuntimeError(f"Halving dimension must be even, but dimension {d} is size {n}")
    _float_only(input, "glu_cpu")
    a, b = input.split(n // 2, d)
    return a * P.sigmoid(b)


def _softmax_dim(name: str, ndim: int, dim):
    if dim is not None:
        return wrap_dim(dim, ndim)
    warnings.warn(f"Implicit dimension choice for {name} has been deprecated. Change the call to include dim=X "
                  "as an argument.", UserWarning, stacklevel=3)
    return 0 if ndim in (0, 1, 3) else 1


def _softmax_input(input, dtype, dim=-1, name="softmax"):
    if dtype is not None:
        input = input.to(dtype)
    if not input.dtype.is_floating_point:
        # torch's error names the kernel (the last-dim one or the general one) and is a NotImplementedError
        # (a subclass of RuntimeError)
        kernel = f"{name}_lastdim_kernel_impl" if dim in (-1, input.ndim - 1) or input.ndim <= 1 else f"{name}_kernel_impl"
        raise NotImplementedError(f'"{kernel}" not implemented for \'{input.dtype.short}\'')
    return input


def softmax(input: Tensor, dim: Optional[int] = None, _stacklevel: int = 3, dtype=None) -> Tensor:
    dim = _softmax_dim("softmax", input.ndim, dim)
    input = _softmax_input(input, dtype, dim)
    if input.ndim == 0:
        return K.softmax(input.reshape(1), 0).reshape(())
    if _tracing():
        return K.softmax_decomposed(input, dim)
    return K.softmax(input, dim)


def softmin(input: Tensor, dim: Optional[int] = None, _stacklevel: int = 3, dtype=None) -> Tensor:
    dim = _softmax_dim("softmin", input.ndim, dim)
    return softmax(-_softmax_input(input, dtype, dim), dim)


def log_softmax(input: Tensor, dim: Optional[int] = None, _stacklevel: int = 3, dtype=None) -> Tensor:
    dim = _softmax_dim("log_softmax", input.ndim, dim)
    input = _softmax_input(input, dtype, dim, "log_softmax")
    if input.ndim == 0:
        return K.log_softmax(input.reshape(1), 0).reshape(())
    if _tracing():
        return K.log_softmax_decomposed(input, dim)
    return K.log_softmax(input, dim)


def dropout(input: Tensor, p: float = 0.5, training: bool = True, inplace: bool = False) -> Tensor:
    """Zero each element with probability p and scale the rest by 1/(1-p) (MulBackward0, as torch)."""
    if p < 0.0 or p > 1.0:
        raise ValueError(f"dropout probability has to be between 0 and 1, but got {p}")
    if not training or p == 0.0:
        return input
    if _tracing():  # traced: the draw is an op of the graph, made at every call (the same numbers as below)
        from ..tracer.random_ops import uniform

        scale = 0.0 if p == 1.0 else 1.0 / (1.0 - p)
        mask = ((uniform(tuple(input.shape), D.float64) >= p).to(D.float64) * scale).to(input.dtype)
        out = input * mask
        return _inplace_result(input, out) if inplace else out
    if input.is_cuda:  # the mask is drawn on the device, in one kernel
        from ..kernels.cuda.random import dropout_mask

        out = input * Tensor._make(dropout_mask(tuple(input.shape), p, input.dtype), input.dtype)
        return _inplace_result(input, out) if inplace else out
    from ..creation import _rng, from_values

    keep = _rng(None).random(input.shape) >= p
    scale = 0.0 if p == 1.0 else 1.0 / (1.0 - p)
    mask = from_values(keep * np.float64(scale), input.dtype)
    out = input * mask
    return _inplace_result(input, out) if inplace else out


def dropout2d(input: Tensor, p: float = 0.5, training: bool = True, inplace: bool = False) -> Tensor:
    """Zero whole channels (input[n, c]) with probability p and scale the rest by 1/(1-p), as torch's
    feature dropout: one draw per (N, C), broadcast over the spatial dims."""
    if p < 0.0 or p > 1.0:
        raise ValueError(f"dropout probability has to be between 0 and 1, but got {p}")
    nd = input.ndim
    if nd not in (3, 4):
        warnings.warn(f"dropout2d: Received a {nd}-D input to dropout2d, which is deprecated and will result in an "
                      "error in a future release. To retain the behavior and silence this warning, please use "
                      "dropout instead. Note that dropout2d exists to provide channel-wise dropout on inputs with 2 "
                      "spatial dimensions, a channel dimension, and an optional batch dimension (i.e. 3D or 4D "
                      "inputs).", UserWarning, stacklevel=2)
    if nd == 3:
        warnings.warn("dropout2d: Received a 3D input to dropout2d and assuming that channel-wise 1D dropout "
                      "behavior is desired - input is interpreted as shape (N, C, L), where C is the channel dim. "
                      "This behavior will change in a future release to interpret the input as one without a batch "
                      "dimension, i.e. shape (C, H, W). To maintain the 1D channel-wise dropout behavior, please "
                      "switch to using dropout1d instead.", UserWarning, stacklevel=2)
    if not training or p == 0.0:
        return input
    if nd < 2:  # (torch's feature dropout needs a channel dim)
        raise RuntimeError("Feature dropout requires at least 2 dimensions in the input")
    shape = tuple(input.shape[:2]) + (1,) * (nd - 2)
    scale = 0.0 if p == 1.0 else 1.0 / (1.0 - p)
    if _tracing():  # traced: the draw is an op of the graph, as in dropout (here on the (N, C) mask)
        from ..tracer.random_ops import uniform

        mask = ((uniform(shape, D.float64) >= p).to(D.float64) * scale).to(input.dtype)
    else:  # the (N, C) mask is small: drawn on the host, moved to the input's device
        from ..creation import _rng, from_values

        mask = from_values((_rng(None).random(shape) >= p) * np.float64(scale), input.dtype)
        if input.is_cuda:
            mask = mask.to(input.device)
    out = input * mask
    return _inplace_result(input, out) if inplace else out


# ---- convolution and pooling -----------------------------------------------------------------------
def _batched4(input: Tensor, what: str):
    if input.ndim == 3:
        return input.unsqueeze(0), True
    if input.ndim != 4:
        raise RuntimeError(f"Expected 3D (unbatched) or 4D (batched) input to {what}, but got input of size: "
                           f"[{', '.join(map(str, input.shape))}]")
    return input, False


def conv2d(input: Tensor, weight: Tensor, bias: Optional[Tensor] = None, stride=1, padding=0, dilation=1,
           groups: int = 1) -> Tensor:
    x, unbatched = _batched4(input, "conv2d")
    if weight.ndim != 4:
        raise RuntimeError(f"weight should have 4 dimensions, but got {weight.ndim}")
    stride, dilation = _pair(stride), _pair(dilation)
    kh, kw = weight.shape[2], weight.shape[3]
    # torch's argument errors are RuntimeErrors (a zero stride or a negative padding must not reach the
    # kernel, where they were a ZeroDivisionError or a NumPy broadcast error)
    if isinstance(padding, str):
        if padding not in ("valid", "same"):
            raise RuntimeError(f"Invalid padding string: '{padding}'")
        if padding == "same" and any(s != 1 for s in stride):
            raise RuntimeError("padding='same' is not supported for strided convolutions")
    if not isinstance(padding, str) and any(p < 0 for p in _pair(padding)):
        raise RuntimeError("negative padding is not supported")
    if any(s <= 0 for s in stride):
        raise RuntimeError("non-positive stride is not supported")
    if any(d <= 0 for d in dilation):
        raise RuntimeError("non-positive dilation is not supported")
    if padding == "same":
        return _conv_same(x, weight, bias, dilation, groups, unbatched)
    padding = (0, 0) if padding == "valid" else _pair(padding)
    c = x.shape[1]
    if c != weight.shape[1] * groups:
        raise RuntimeError(
            f"Given groups={groups}, weight of size [{', '.join(map(str, weight.shape))}], expected "
            f"input[{', '.join(map(str, x.shape))}] to have {weight.shape[1] * groups} channels, but got {c} "
            "channels instead")
    if weight.shape[0] % groups:
        raise RuntimeError("Given groups=%d, expected weight to be divisible by %d at dimension 0, but got weight "
                           "of size [%s] instead" % (groups, groups, ", ".join(map(str, weight.shape))))
    ph, pw = x.shape[2] + 2 * padding[0], x.shape[3] + 2 * padding[1]
    eh, ew = dilation[0] * (kh - 1) + 1, dilation[1] * (kw - 1) + 1
    if ph < eh or pw < ew:
        raise RuntimeError(f"Calculated padded input size per channel: ({ph} x {pw}). Kernel size: ({eh} x {ew}). "
                           "Kernel size can't be greater than actual input size")
    if bias is not None and (bias.ndim != 1 or bias.shape[0] != weight.shape[0]):
        raise RuntimeError(f"Given weight of size [{', '.join(map(str, weight.shape))}], expected bias to be "
                           f"1-dimensional with {weight.shape[0]} elements, but got bias of size "
                           f"[{', '.join(map(str, bias.shape))}] instead")
    if x.dtype is not weight.dtype:
        raise RuntimeError(f"Input type ({_tname(x)}) and weight type ({_tname(weight)}) should be the same")
    out = K.conv2d(x, weight, bias, stride, padding, dilation, groups)
    return out.squeeze(0) if unbatched else out


def _conv_same(x, weight, bias, dilation, groups, unbatched):
    """padding='same': pad total d*(k-1) per dim, the odd one on the right/bottom (as torch)."""
    pads = []
    for k, d in zip(weight.shape[2:], dilation):
        total = d * (k - 1)
        pads.append((total // 2, total - total // 2))
    (t, b), (l, r) = pads
    if t == b and l == r:
        out = conv2d(x, weight, bias, 1, (t, l), dilation, groups)
    else:
        out = conv2d(pad(x, (l, r, t, b)), weight, bias, 1, 0, dilation, groups)
    return out.squeeze(0) if unbatched else out


def _pool_args(kernel_size, stride, padding, dilation=1):
    k = _pair(kernel_size)
    s = k if (stride is None or (isinstance(stride, (list, tuple)) and len(stride) == 0)) else _pair(stride)
    return k, s, _pair(padding), _pair(dilation)


def _pool_input(input, name):
    if input.ndim not in (3, 4) or input.numel() == 0:
        raise RuntimeError("non-empty 3D or 4D (batch mode) tensor expected for input")
    return input


def _check_pool(x, k, s, p, d, ceil_mode):
    """torch's pooling shape checks, in its order (pooling_output_shape, then pool2d_shape_check), so that a
    zero stride or a kernel larger than the input is torch's RuntimeError rather than a Python one."""
    for kk, ss, pp, dd in zip(k, s, p, d):
        if ss == 0:
            raise RuntimeError("stride should not be zero")
        if pp < 0:
            raise RuntimeError(f"pad must be non-negative, but got pad: {pp}")
        if pp > ((kk - 1) * dd + 1) // 2:
            raise RuntimeError(f"pad should be at most half of effective kernel size, but got pad={pp}, "
                               f"kernel_size={kk} and dilation={dd}")
    if k[0] <= 0 or k[1] <= 0:
        raise RuntimeError(f"kernel size should be greater than zero, but got kH: {k[0]} kW: {k[1]}")
    if s[0] <= 0 or s[1] <= 0:
        raise RuntimeError(f"stride should be greater than zero, but got dH: {s[0]} dW: {s[1]}")
    if d[0] <= 0 or d[1] <= 0:
        raise RuntimeError(f"dilation should be greater than zero, but got dilationH: {d[0]} dilationW: {d[1]}")
    out = [K._out_size(n, kk, ss, pp, dd, ceil_mode) for n, kk, ss, pp, dd in zip(x.shape[-2:], k, s, p, d)]
    if out[0] < 1 or out[1] < 1:
        c, h, w = x.shape[-3:]
        raise RuntimeError(f"Given input size: ({c}x{h}x{w}). Calculated output size: ({c}x{out[0]}x{out[1]}). "
                           "Output size is too small")


def max_pool2d(input: Tensor, kernel_size, stride=None, padding=0, dilation=1, ceil_mode: bool = False,
               return_indices: bool = False):
    k, s, p, d = _pool_args(kernel_size, stride, padding, dilation)
    x = _pool_input(input, "max_pool2d")
    _check_pool(x, k, s, p, d, ceil_mode)
    out, idx = K.max_pool2d(x, k, s, p, d, ceil_mode)
    return (out, idx) if return_indices else out


def max_pool2d_with_indices(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
                            return_indices=True):
    return max_pool2d(input, kernel_size, stride, padding, dilation, ceil_mode, True)


def avg_pool2d(input: Tensor, kernel_size, stride=None, padding=0, ceil_mode: bool = False,
               count_include_pad: bool = True, divisor_override=None) -> Tensor:
    k, s, p, d = _pool_args(kernel_size, stride, padding)
    if divisor_override is not None and divisor_override == 0:
        raise RuntimeError("divisor must be not zero")
    x = _pool_input(input, "avg_pool2d")
    _check_pool(x, k, s, p, d, ceil_mode)
    return K.avg_pool2d(x, k, s, p, ceil_mode, count_include_pad, divisor_override)


def adaptive_avg_pool2d(input: Tensor, output_size) -> Tensor:
    if isinstance(output_size, (tuple, list)):
        if len(output_size) != 2:
            raise RuntimeError("adaptive_avg_pool2d: output_size must be 2")
        size = tuple(input.shape[-2 + i] if o is None else int(o) for i, o in enumerate(output_size))
    else:
        size = (int(output_size), int(output_size))
    if input.ndim not in (3, 4):
        raise RuntimeError(f"adaptive_avg_pool2d(): Expected 3D or 4D tensor, but got {list(input.shape)}")
    if size == (1, 1):
        return input.mean((-2, -1), keepdim=True)  # torch takes this shortcut too (MeanBackward1)
    return K.adaptive_avg_pool2d(input, size)


# ---- normalisation --------------------------------------------------------------------------------
def layer_norm(input: Tensor, normalized_shape, weight: Optional[Tensor] = None, bias: Optional[Tensor] = None,
               eps: float = 1e-5) -> Tensor:
    if isinstance(normalized_shape, int):  # (nn.LayerNorm takes one; the function wants a sequence, as torch's)
        raise TypeError("layer_norm(): argument 'normalized_shape' (position 2) must be tuple of ints, not int")
    shape = tuple(normalized_shape)
    nd = len(shape)
    if nd == 0:
        raise RuntimeError("Expected normalized_shape to be at least 1-dimensional, i.e., containing at least one "
                           "element, but got normalized_shape = []")
    if tuple(input.shape[input.ndim - nd:]) != shape or input.ndim < nd:
        raise RuntimeError(f"Given normalized_shape=[{', '.join(map(str, shape))}], expected input with shape "
                           f"[*, {', '.join(map(str, shape))}], but got input of size"
                           f"[{', '.join(map(str, input.shape))}]")
    for name, t in (("weight", weight), ("bias", bias)):
        if t is not None and tuple(t.shape) != shape:
            raise RuntimeError(f"Expected {name} to be of same shape as normalized_shape, but got {name} of shape "
                               f"[{', '.join(map(str, t.shape))}] and normalized_shape = [{', '.join(map(str, shape))}]")
    if not input.dtype.is_floating_point:  # torch's kernel error
        raise NotImplementedError(f'"LayerNormKernelImpl" not implemented for \'{input.dtype.short}\'')
    if _tracing():
        return K.layer_norm_decomposed(input, weight, bias, nd, eps)
    return K.layer_norm(input, weight, bias, nd, eps)


def batch_norm(input: Tensor, running_mean: Optional[Tensor], running_var: Optional[Tensor],
               weight: Optional[Tensor] = None, bias: Optional[Tensor] = None, training: bool = False,
               momentum: float = 0.1, eps: float = 1e-5) -> Tensor:
    """Normalise each channel (dim 1) over the batch and spatial dims.

    In training the batch statistics are used, and running_mean/var (when given)
    move toward them by `momentum`, with the unbiased variance, as torch does."""
    if training:
        n = input.numel() // input.shape[1] if input.ndim > 1 else 0
        if n <= 1:
            raise ValueError(f"Expected more than 1 value per channel when training, got input size {input.shape}")
    elif running_mean is None or running_var is None:
        raise RuntimeError("running_mean and running_var must be defined in evaluation mode")
    out, mean, invstd = K.batch_norm(input, weight, bias, None if training else running_mean,
                                     None if training else running_var, training, eps)
    if training and running_mean is not None:
        _update_running(running_mean, running_var, mean, invstd, eps, momentum, n)
    return out


def _update_running(rm: Tensor, rv: Tensor, mean: Tensor, invstd: Tensor, eps: float, momentum: float, n: int):
    """running = (1 - momentum) * running + momentum * batch stat, in place (a buffer update, no autograd)."""
    from ..dispatch import values, to_storage

    if _tracing():  # traced: the same update as ops, which the tracer records (memory is not readable)
        from ..autograd.grad_mode import no_grad

        with no_grad():
            var_t = (1.0 / (invstd * invstd) - eps) * (n / (n - 1))
            for buf, stat in ((rm, mean), (rv, var_t)):
                if buf is not None:
                    buf.mul_(1 - momentum).add_(stat.to(buf.dtype) * momentum)
        return
    on_device = [b for b in (rm, rv) if b is not None and type(b._data) is not np.ndarray]
    if on_device and type(mean._data) is not np.ndarray:  # CUDA buffers: one kernel, nothing read back
        from ..kernels.cuda.composite import batch_norm_update_running

        batch_norm_update_running(*(None if b is None else b._data for b in (rm, rv)), mean._data, invstd._data,
                                  eps, momentum, n)
        return
    m = values(mean).astype(np.float64)
    var = 1.0 / values(invstd).astype(np.float64) ** 2 - eps
    unbiased = var * n / (n - 1)
    for buf, stat in ((rm, m), (rv, unbiased)):
        if buf is None:
            continue
        new = (1 - momentum) * values(buf).astype(np.float64) + momentum * stat
        buf._data[...] = to_storage(new.astype(D.compute_np(buf.dtype)), buf.dtype)
        buf._vc[0] += 1


def normalize(input: Tensor, p: float = 2.0, dim: int = 1, eps: float = 1e-12, out=None) -> Tensor:
    denom = input.norm(p, dim, keepdim=True).clamp_min(eps).expand_as(input)
    return input / denom


# ---- embedding, one_hot, pad ---------------------------------------------------------------------
def embedding(input: Tensor, weight: Tensor, padding_idx: Optional[int] = None, max_norm: Optional[float] = None,
              norm_type: float = 2.0, scale_grad_by_freq: bool = False, sparse: bool = False) -> Tensor:
    if input.dtype not in (D.int64, D.int32):
        raise RuntimeError("Expected tensor for argument #1 'indices' to have one of the following scalar types: "
                           f"Long, Int; but got {_tname(input)} instead (while checking arguments for embedding)")
    n = weight.shape[0]
    if padding_idx is not None:
        if padding_idx > 0:
            assert padding_idx < n, "Padding_idx must be within num_embeddings"
        elif padding_idx < 0:
            assert padding_idx >= -n, "Padding_idx must be within num_embeddings"
            padding_idx = n + padding_idx
    tracing = _tracing()
    # host values (a CUDA index is copied over for the checks); traced: no values to check
    idx = input._data if tracing else input._values()
    if idx.size and not tracing and (idx.min() < 0 or idx.max() >= n):
        raise IndexError("index out of range in self")
    if max_norm is not None:
        _embedding_renorm(weight, idx, max_norm, norm_type)
    # scale_grad_by_freq was accepted and ignored: the weight gradient was not divided by the index counts
    return K.embedding(weight, input if input.dtype is D.int64 else input.long(), padding_idx, scale_grad_by_freq)


def _embedding_renorm(weight: Tensor, idx: np.ndarray, max_norm: float, norm_type: float) -> None:
    """Rows looked up whose norm exceeds max_norm are scaled down in place (torch's embedding_renorm_)."""
    from ..dispatch import values, to_storage

    rows = np.unique(idx.reshape(-1))
    w = values(weight)
    norms = np.linalg.norm(w[rows].astype(np.float64), ord=norm_type, axis=1)
    big = norms > max_norm
    if big.any():
        r = rows[big]
        scaled = w[r] * (max_norm / (norms[big] + 1e-7))[:, None]
        weight._data[r] = to_storage(scaled.astype(w.dtype), weight.dtype)
        weight._vc[0] += 1


def one_hot(tensor: Tensor, num_classes: int = -1) -> Tensor:
    from ..creation import from_values

    if tensor.dtype is not D.int64:
        raise RuntimeError("one_hot is only applicable to index tensor of type LongTensor.")
    v = tensor._data
    if v.size and v.min() < 0:
        raise RuntimeError("Class values must be non-negative.")
    if num_classes == -1:
        if v.size == 0:
            raise RuntimeError("Can not infer total number of classes from empty tensor.")
        num_classes = int(v.max()) + 1
    elif v.size and v.max() >= num_classes:
        raise RuntimeError("Class values must be smaller than num_classes.")
    out = (v[..., None] == np.arange(num_classes)).astype(np.int64)
    return from_values(out, D.int64)


def pad(input: Tensor, pad: Sequence[int], mode: str = "constant", value: Optional[float] = None) -> Tensor:
    pad = tuple(int(p) for p in pad)
    if len(pad) % 2:
        raise RuntimeError("Padding length must be divisible by 2")
    if len(pad) // 2 > input.ndim:
        raise RuntimeError("Padding length should be less than or equal to two times the input dimension but got "
                           f"padding length {len(pad)} and input of dimension {input.ndim}")
    if mode == "constant":
        return K.constant_pad(input, pad, 0.0 if value is None else value)
    if value not in (None, 0):
        raise NotImplementedError(f'Padding mode "{mode}" doesn\'t take in value argument.')
    if mode not in ("reflect", "replicate", "circular"):
        raise NotImplementedError(f"Unrecognised padding mode {mode}")
    k = len(pad) // 2
    if input.ndim not in (k + 1, k + 2):
        raise NotImplementedError(
            f"Padding size {len(pad)} is not supported for {input.ndim}D input tensor.\n"
            "Supported combinations for non-constant padding:\n"
            "  - 2D or 3D input: padding size = 2 (pads last dimension)\n"
            "  - 3D or 4D input: padding size = 4 (pads last 2 dimensions)\n"
            "  - 4D or 5D input: padding size = 6 (pads last 3 dimensions)")
    return _index_pad(input, pad, mode)


def _index_pad(input: Tensor, pad, mode: str) -> Tensor:
    """reflect/replicate/circular padding as an index_select per padded dim."""
    from ..creation import from_values

    out = input
    for k in range(len(pad) // 2):
        d = input.ndim - 1 - k
        lo, hi = pad[2 * k], pad[2 * k + 1]
        n = input.shape[d]
        pos = np.arange(-lo, n + hi)
        if mode == "reflect":
            if lo >= n or hi >= n:
                raise RuntimeError(f"Argument #4: Padding size should be less than the corresponding input dimension,"
                                   f" but got: padding ({lo}, {hi}) at dimension {d} of input {list(input.shape)}")
            period = 2 * (n - 1) if n > 1 else 1
            pos = np.abs(pos) % period
            pos = np.where(pos >= n, period - pos, pos)
        elif mode == "replicate":
            pos = np.clip(pos, 0, n - 1)
        else:
            if lo > n or hi > n:
                raise RuntimeError("Padding value causes wrapping around more than once.")
            pos = pos % n
        out = out.index_select(d, from_values(pos.astype(np.int64), D.int64))
    return out


def cosine_similarity(x1: Tensor, x2: Tensor, dim: int = 1, eps: float = 1e-8) -> Tensor:
    n1 = x1.norm(2, dim).clamp_min(eps)
    n2 = x2.norm(2, dim).clamp_min(eps)
    return (x1 * x2).sum(dim) / (n1 * n2)


# ---- losses ---------------------------------------------------------------------------------------
def _warn_size(input, target):
    if tuple(target.shape) != tuple(input.shape):
        warnings.warn(f"Using a target size ({target.shape}) that is different to the input size ({input.shape}). "
                      "This will likely lead to incorrect results due to broadcasting. Please ensure they have the "
                      "same size.", UserWarning, stacklevel=3)


def _broadcast_pair(input, target):
    if tuple(input.shape) == tuple(target.shape):
        return input, target
    shape = broadcast_shapes(tuple(input.shape), tuple(target.shape))
    return input.expand(shape), target.expand(shape)


def _same_dtype(input, target):
    if input.dtype is target.dtype:
        return input, target
    dt = D.result_type(input, target)
    return input.to(dt), target.to(dt)


def mse_loss(input: Tensor, target: Tensor, size_average=None, reduce=None, reduction: str = "mean",
             weight=None) -> Tensor:
    reduction = _legacy_reduction(size_average, reduce, reduction)
    _check_reduction(reduction)
    _warn_size(input, target)
    input, target = _same_dtype(*_broadcast_pair(input, target))
    if weight is not None:
        d = input - target
        return K._reduce_ops(d * d * weight, reduction)
    if _tracing():
        return K.mse_loss_decomposed(input, target, reduction)
    return K.mse_loss(input, target, reduction)


def l1_loss(input: Tensor, target: Tensor, size_average=None, reduce=None, reduction: str = "mean",
            weight=None) -> Tensor:
    """|input - target|, reduced: torch builds it from abs and mean too (MeanBackward0)."""
    reduction = _legacy_reduction(size_average, reduce, reduction)
    _check_reduction(reduction)
    _warn_size(input, target)
    loss = P.abs(input - target)
    if weight is not None:
        loss = loss * weight
    return K._reduce_ops(loss, reduction)


def smooth_l1_loss(input: Tensor, target: Tensor, size_average=None, reduce=None, reduction: str = "mean",
                   beta: float = 1.0) -> Tensor:
    reduction = _legacy_reduction(size_average, reduce, reduction)
    _check_reduction(reduction)
    if beta < 0:
        raise RuntimeError("smooth_l1_loss does not support negative values for beta.")
    _warn_size(input, target)
    input, target = _same_dtype(*_broadcast_pair(input, target))
    if beta == 0.0:  # torch hands this case to l1_loss
        return K._reduce_ops(P.abs(input - target), reduction)
    return K.smooth_l1_loss(input, target, reduction, beta)


def huber_loss(input: Tensor, target: Tensor, reduction: str = "mean", delta: float = 1.0,
               weight=None) -> Tensor:
    _check_reduction(reduction)
    if delta <= 0:
        raise RuntimeError("huber_loss does not support non-positive values for delta.")
    _warn_size(input, target)
    input, target = _same_dtype(*_broadcast_pair(input, target))
    return K.huber_loss(input, target, reduction, delta)


def _check_class_target(input, target):
    if input.ndim == 0:
        raise IndexError("Dimension out of range (expected to be in range of [-1, 0], but got 1)")
    if input.ndim == 1:
        if target.ndim != 0:
            raise RuntimeError("0D or 1D target tensor expected, multi-target not supported")
        return
    if target.ndim == 0 or input.shape[0] != target.shape[0]:
        raise ValueError(f"Expected input batch_size ({input.shape[0]}) to match target batch_size "
                         f"({target.shape[0] if target.ndim else 1}).")
    if input.ndim == 2 and target.ndim != 1:
        raise RuntimeError("0D or 1D target tensor expected, multi-target not supported")
    if input.ndim > 2:
        want = (input.shape[0],) + tuple(input.shape[2:])
        if tuple(target.shape) != want:
            raise RuntimeError(f"Expected target size [{', '.join(map(str, want))}], got "
                               f"[{', '.join(map(str, target.shape))}]")


def _check_long_target(target):
    if target.dtype not in (D.int64, D.uint8):
        raise RuntimeError(f"expected target dtype to be Long or Byte, but got {target.dtype.short}")


def _check_weight(weight, c):
    if weight is not None and (weight.ndim != 1 or weight.shape[0] != c):
        raise RuntimeError(f"weight tensor should be defined either for all {c} classes or no classes but got "
                           f"weight tensor of shape: [{', '.join(map(str, weight.shape))}]")


def nll_loss(input: Tensor, target: Tensor, weight: Optional[Tensor] = None, size_average=None,
             ignore_index: int = -100, reduce=None, reduction: str = "mean") -> Tensor:
    reduction = _legacy_reduction(size_average, reduce, reduction)
    _check_reduction(reduction)
    _check_class_target(input, target)
    _check_long_target(target)
    c = input.shape[1] if input.ndim > 1 else input.shape[0]
    _check_weight(weight, c)
    if target.dtype is not D.int64:
        target = target.long()
    return K.nll_loss(input, target, weight, reduction, ignore_index)


def cross_entropy(input: Tensor, target: Tensor, weight: Optional[Tensor] = None, size_average=None,
                  ignore_index: int = -100, reduce=None, reduction: str = "mean",
                  label_smoothing: float = 0.0) -> Tensor:
    """log_softmax over the class dim (1, or 0 for unbatched input), then the negative log likelihood.

    `target` holds class indices (int64, with ignore_index) or, with the input's
    shape, class probabilities. With label_smoothing e the target becomes
    (1 - e) * one_hot + e / C, computed as torch does (smoothing term added to the
    nll term, so grad_fn is AddBackward0)."""
    if (weight is None and label_smoothing == 0.0 and size_average is None and reduce is None and TRACER[0] is None
            and reduction in ("mean", "sum", "none") and input.ndim == 2 and target.dtype is D.int64
            and target.ndim == 1 and target.shape[0] == input.shape[0] and input.dtype.is_floating_point
            and input.shape[1]):
        # the common case (a batch of logits and class indices): the checks below all pass
        if input.dtype is D.float32 or input.dtype is D.float64:
            return K.cross_entropy(input, target, reduction, ignore_index)
        # half precision: torch rounds the log-probabilities before the loss and its gradient,
        # which the one-op path (one rounding at the end) would not reproduce
        return K.nll_loss(K.log_softmax(input, 1), target, None, reduction, ignore_index)
    reduction = _legacy_reduction(size_average, reduce, reduction)
    _check_reduction(reduction)
    if not 0.0 <= label_smoothing <= 1.0:
        raise RuntimeError(f"label_smoothing must be between 0.0 and 1.0. Got: {label_smoothing}")
    cdim = 1 if input.ndim > 1 else 0
    c = input.shape[cdim]
    _check_weight(weight, c)
    logp = log_softmax(input, cdim)
    if tuple(target.shape) == tuple(input.shape):  # class probabilities, as torch decides it
        if not target.dtype.is_floating_point:
            raise RuntimeError(f"Expected floating point type for target with class probabilities, got "
                               f"{target.dtype.short}")
        if ignore_index >= 0:  # torch refuses a real class to ignore when targets are probabilities
            raise RuntimeError("ignore_index is not supported for floating point target")
        return _soft_cross_entropy(logp, target, weight, reduction, label_smoothing, cdim, c)
    _check_class_target(input, target)
    _check_long_target(target)
    if target.dtype is not D.int64:
        target = target.long()
    nll = K.nll_loss(logp, target, weight, reduction, ignore_index)
    if label_smoothing == 0.0:
        return nll
    return _smoothing_term(nll, logp, target, weight, reduction, ignore_index, label_smoothing, cdim, c)


def _class_view(w, ndim, cdim):
    """A (C,) weight shaped to broadcast along the class dim."""
    shape = [1] * ndim
    shape[cdim] = -1
    return w.reshape(shape)


def _soft_cross_entropy(logp, target, weight, reduction, eps, cdim, c):
    if eps > 0:
        target = target * (1 - eps) + eps / c
    prod = logp * target
    if weight is not None:
        prod = prod * _class_view(weight, logp.ndim, cdim)
    loss = -prod.sum(cdim)
    if reduction == "none":
        return loss
    if reduction == "sum":
        return loss.sum()
    n = logp.numel() // c if logp.ndim > 1 else 1
    return loss.sum() / n


def _smoothing_term(nll, logp, target, weight, reduction, ignore_index, eps, cdim, c):
    """torch's label smoothing for class targets: (1 - eps) * nll + eps / C * (-sum_c w_c logp_c)."""
    from ..ops.pointwise import where

    lw = logp * _class_view(weight, logp.ndim, cdim) if weight is not None else logp
    smooth = -lw.sum(cdim)
    ignored = target == ignore_index
    smooth = where(ignored, smooth * 0.0, smooth)
    if reduction == "mean":
        if weight is not None:
            tv = target._data
            wt = np.where(tv == ignore_index, 0, weight._values()[np.where(tv == ignore_index, 0, tv)])
            smooth = smooth.sum() / float(wt.sum())
        else:
            smooth = smooth.sum() / float((~ignored._data).sum())
    elif reduction == "sum":
        smooth = smooth.sum()
    return nll * (1 - eps) + smooth * (eps / c)


def kl_div(input: Tensor, target: Tensor, size_average=None, reduce=None, reduction: str = "mean",
           log_target: bool = False) -> Tensor:
    """Pointwise target * (log(target) - input) (0 where target is 0, as torch's xlogy), or with
    log_target exp(target) * (target - input); 'batchmean' sums and divides by the batch size."""
    if size_average is not None or reduce is not None:
        reduction = _legacy_reduction(size_average, reduce, reduction)
    elif reduction == "mean":
        warnings.warn("reduction: 'mean' divides the total loss by both the batch size and the support size."
                      "'batchmean' divides only by the batch size, and aligns with the KL div math definition."
                      "'mean' will be changed to behave the same as 'batchmean' in the next major release.",
                      UserWarning, stacklevel=2)
    _check_reduction("sum" if reduction == "batchmean" else reduction)
    if log_target:
        out = P.exp(target) * (target - input)
    else:
        # xlogy(t, t): 0 where t == 0; its gradient w.r.t. t there is NaN (0 * log 0), as torch's is
        out = P.where(target == 0, 0.0, target * P.log(target)) - target * input
    if reduction == "none":
        return out
    if reduction == "mean":
        return out.mean()
    total = out.sum()
    return total / input.shape[0] if reduction == "batchmean" and input.ndim else total


def binary_cross_entropy(input: Tensor, target: Tensor, weight: Optional[Tensor] = None, size_average=None,
                         reduce=None, reduction: str = "mean") -> Tensor:
    reduction = _legacy_reduction(size_average, reduce, reduction)
    _check_reduction(reduction)
    if tuple(target.shape) != tuple(input.shape):
        raise ValueError(f"Using a target size ({target.shape}) that is different to the input size "
                         f"({input.shape}) is deprecated. Please ensure they have the same size.")
    if weight is not None and tuple(weight.shape) != tuple(input.shape):
        broadcast_shapes(tuple(weight.shape), tuple(input.shape))
        weight = weight.expand(input.shape)
    return K.binary_cross_entropy(input, target.to(input.dtype), weight, reduction)


def binary_cross_entropy_with_logits(input: Tensor, target: Tensor, weight: Optional[Tensor] = None,
                                     size_average=None, reduce=None, reduction: str = "mean",
                                     pos_weight: Optional[Tensor] = None) -> Tensor:
    reduction = _legacy_reduction(size_average, reduce, reduction)
    _check_reduction(reduction)
    if tuple(target.shape) != tuple(input.shape):
        raise ValueError(f"Target size ({target.shape}) must be the same as input size ({input.shape})")
    for t in (weight, pos_weight):
        if t is not None:
            broadcast_shapes(tuple(t.shape), tuple(input.shape))
    return K.binary_cross_entropy_with_logits(input, target, weight, pos_weight, reduction)
