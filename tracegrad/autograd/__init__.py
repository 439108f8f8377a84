"""tracegrad.autograd: reverse-mode differentiation over the graph ops record.

    y = f(x)            every op on a tensor that requires grad records a node
    y.backward()        the engine walks the nodes back, calling each vjp rule
    x.grad              gradients accumulate on the leaves

`grad()` returns gradients instead of accumulating them; `Function` lets you
write your own forward/backward pair; `gradcheck` compares a function's
gradients with finite differences."""
from __future__ import annotations

from typing import Sequence

import numpy as _np

from ..dtypes import bfloat16 as _BF16, _FLOAT

from .grad_mode import (no_grad, enable_grad, set_grad_enabled, inference_mode, is_grad_enabled,
                        is_inference_mode_enabled)
from .function import Function, FunctionCtx, once_differentiable, InplaceFunction, NestedIOFunction
from .node import Node
from .gradcheck import gradcheck, gradgradcheck, GradcheckError
from . import engine, function, functional
from .record import accumulator as _accumulator

__all__ = ["backward", "grad", "Function", "Variable", "gradcheck", "gradgradcheck", "no_grad", "enable_grad",
           "set_grad_enabled", "inference_mode", "is_grad_enabled", "set_detect_anomaly", "detect_anomaly"]


_T: list = [None]


def _tensor_cls():
    from ..tensor import Tensor

    _T[0] = Tensor
    return Tensor


_ONES: dict = {}  # (shape, NumPy dtype) -> a one-element array of ones, copied for each backward()


def _ones_like_root(t):
    """A fresh gradient of ones for the one-element root `t` (it may become a leaf's .grad)."""
    arr = t._data
    key = (arr.shape, arr.dtype)
    one = _ONES.get(key)
    if one is None:
        one = _ONES[key] = (_np.full(arr.shape, 0x3F80, _np.uint16) if t.dtype is _BF16
                            else _np.ones(arr.shape, arr.dtype))
    g = _T[0]._make(one.copy(), t.dtype)
    if type(arr) is not _np.ndarray:  # a CUDA loss: its gradient starts on the device
        g = g.to(t.device)
    return g


def _as_list(x) -> list:
    from ..tensor import Tensor

    if isinstance(x, Tensor):
        return [x]
    return list(x)


def _make_grads(outputs, grad_outputs) -> list:
    """The gradient each output starts with: the given one, or ones for a one-element output."""
    from ..tensor import Tensor
    from ..creation import ones_like

    if grad_outputs is None:
        grad_outputs = [None] * len(outputs)
    elif isinstance(grad_outputs, Tensor):
        grad_outputs = [grad_outputs]
    else:
        grad_outputs = list(grad_outputs)
    if len(grad_outputs) != len(outputs):
        raise RuntimeError(f"got {len(outputs)} tensors and {len(grad_outputs)} gradients")
    grads = []
    for i, (o, g) in enumerate(zip(outputs, grad_outputs)):
        if not isinstance(o, Tensor):
            raise TypeError(f"backward(): argument 'tensors' must be a sequence of Tensors, not "
                            f"{type(o).__name__}")
        if g is None:
            if o._requires_grad and o.numel() != 1:
                raise RuntimeError("grad can be implicitly created only for scalar outputs")
            if o._requires_grad and not o.dtype.is_floating_point:
                raise RuntimeError(f"grad can be implicitly created only for real scalar outputs but got "
                                   f"tracegrad.{o.dtype.name}")
            g = ones_like(o)
        elif isinstance(g, Tensor):
            if tuple(g.shape) != tuple(o.shape):
                raise RuntimeError(
                    f"Mismatch in shape: grad_output[{i}] has a shape of {g.shape!r} and output[{i}] has a shape "
                    f"of {o.shape!r}.")
            if g.dtype.is_floating_point != o.dtype.is_floating_point:
                raise RuntimeError(
                    f"For non-complex input tensors, argument grad_output must also be real; got {g.dtype!r}"
                    if o.dtype.is_floating_point else
                    f"Mismatch in dtype: grad_output[{i}] has a dtype of {g.dtype!r} and output[{i}] has a "
                    f"dtype of {o.dtype!r}.")
        else:
            raise TypeError(f"gradients can be either Tensors or None, but got {type(g).__name__}")
        grads.append(g)
    for i, o in enumerate(outputs):
        if not o._requires_grad:
            raise RuntimeError(f"element {i} of tensors does not require grad and does not have a grad_fn")
    return grads


def backward(tensors, grad_tensors=None, retain_graph: bool | None = None, create_graph: bool = False,
             grad_variables=None, inputs=None) -> None:
    """Accumulate d(tensors)/d(leaf) into every leaf's `.grad` (like `tensor.backward()`).

    grad_tensors: the gradient to start from for each tensor (None: ones, scalars only).
    retain_graph: keep saved tensors so the graph can be backpropagated again
    (defaults to create_graph). create_graph: record the backward pass itself, so
    the gradients can be differentiated again. inputs: accumulate only into these."""
    if grad_tensors is None and grad_variables is None and inputs is None \
            and type(tensors) is (_T[0] or _tensor_cls()) and tensors._requires_grad \
            and tensors._data.size == 1 and tensors.dtype.category == _FLOAT:
        # the common `loss.backward()`: one float tensor with one element; start from ones
        node = tensors.grad_fn
        rg = create_graph if retain_graph is None else retain_graph
        if node is None:
            engine.backward_from(_accumulator(tensors), 0, _ones_like_root(tensors), rg, create_graph)
        else:
            engine.backward_from(node, tensors._output_nr, _ones_like_root(tensors), rg, create_graph)
        return
    outputs = _as_list(tensors)
    if grad_tensors is None and grad_variables is not None:
        grad_tensors = grad_variables
    grads = _make_grads(outputs, grad_tensors)
    if retain_graph is None:
        retain_graph = create_graph
    if inputs is not None:
        ins = _as_list(inputs)
        if not ins:
            raise RuntimeError("'inputs' argument to backward() cannot be empty.")
        res = engine.run_backward(outputs, grads, retain_graph=retain_graph, create_graph=create_graph,
                                  inputs=ins, allow_unused=True)
        for t, g in zip(ins, res):
            if g is not None:
                engine._accumulate(t, g, create_graph)
        return
    engine.run_backward(outputs, grads, retain_graph=retain_graph, create_graph=create_graph)


def grad(outputs, inputs, grad_outputs=None, retain_graph: bool | None = None, create_graph: bool = False,
         only_inputs: bool = True, allow_unused: bool | None = None, is_grads_batched: bool = False,
         materialize_grads: bool = False) -> tuple:
    """d(outputs)/d(inputs), returned as a tuple; nothing is accumulated into `.grad`.

    allow_unused: an input the outputs do not depend on gives None instead of an
    error (materialize_grads=True gives zeros instead)."""
    from ..tensor import Tensor

    outs = _as_list(outputs)
    single = isinstance(inputs, Tensor)
    ins = _as_list(inputs)
    if is_grads_batched:
        raise NotImplementedError("is_grads_batched=True is not supported")
    if materialize_grads and allow_unused is False:
        raise ValueError("Expected allow_unused to be True or not passed when materialize_grads=True, "
                         "but got: allow_unused=False.")
    grads = _make_grads(outs, grad_outputs)
    for t in ins:
        if not isinstance(t, Tensor):
            raise RuntimeError(f"all inputs have to be Tensors or GradientEdges, but got {type(t).__name__}")
        if not t._requires_grad:
            raise RuntimeError("One of the differentiated Tensors does not require grad")
    if retain_graph is None:
        retain_graph = create_graph
    res = engine.run_backward(outs, grads, retain_graph=retain_graph, create_graph=create_graph, inputs=ins,
                              allow_unused=bool(allow_unused) or materialize_grads)
    if materialize_grads:
        from ..creation import zeros_like

        res = [r if r is not None else zeros_like(t) for r, t in zip(res, ins)]
    return tuple(res)


class _VariableMeta(type):
    def __instancecheck__(cls, other) -> bool:
        from ..tensor import Tensor

        return isinstance(other, Tensor)


class Variable(metaclass=_VariableMeta):
    """The pre-0.4 wrapper, kept for old code: `Variable(t, requires_grad=True)` is a new
    leaf sharing t's data (and every tensor is an instance of Variable)."""

    def __new__(cls, data=None, requires_grad: bool = False, volatile: bool = False):
        from ..tensor import Tensor

        if data is None:
            from ..creation import empty

            data = empty(0)
        if not isinstance(data, Tensor):
            raise TypeError(f"Variable data has to be a tensor, but got {type(data).__name__}")
        if requires_grad and not data.dtype.is_floating_point:
            raise RuntimeError("Only Tensors of floating point and complex dtype can require gradients")
        t = data.detach()
        t._requires_grad = bool(requires_grad)
        return t


_anomaly = engine.ANOMALY  # the engine reads it


def set_detect_anomaly(mode: bool, check_nan: bool = True):
    """With check_nan, backward stops at the first node whose gradient has a NaN, naming it (as torch
    does); tracegrad's other errors already name the op that failed."""
    return _AnomalyMode(mode, check_nan)


def is_anomaly_enabled() -> bool:
    return _anomaly["enabled"]


def is_anomaly_check_nan_enabled() -> bool:
    return _anomaly["check_nan"]


class _AnomalyMode:
    def __init__(self, mode: bool, check_nan: bool = True):
        self._prev = (_anomaly["enabled"], _anomaly["check_nan"])
        _anomaly["enabled"], _anomaly["check_nan"] = bool(mode), check_nan

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        _anomaly["enabled"], _anomaly["check_nan"] = self._prev
        return False


class detect_anomaly(_AnomalyMode):
    def __init__(self, check_nan: bool = True):
        super().__init__(True, check_nan)
