"""Gradient clipping: scale all gradients together so their total norm is at most max_norm."""
from __future__ import annotations

from typing import Iterable, Union

import numpy as np

from ...autograd import grad_mode
from ...tensor import Tensor

__all__ = ["clip_grad_norm_", "clip_grad_value_", "get_total_norm", "clip_grads_with_norm_"]

_Params = Union[Tensor, Iterable[Tensor]]


def _as_list(parameters: _Params) -> list:
    return [parameters] if isinstance(parameters, Tensor) else list(parameters)


def _norm_np(a: np.ndarray, p: float) -> float:
    a = np.abs(a.reshape(-1).astype(np.float64, copy=False))
    if p == float("inf"):
        return float(a.max()) if a.size else 0.0
    if p == 0:
        return float((a != 0).sum())
    if p == 2:
        return float(np.sqrt(np.dot(a, a)))
    return float((a ** p).sum() ** (1.0 / p))


def get_total_norm(tensors: _Params, norm_type: float = 2.0, error_if_nonfinite: bool = False,
                   foreach=None) -> Tensor:
    """The norm of the vector of the tensors' norms (the norm of all their elements together)."""
    from ...creation import tensor as make

    tensors = [t for t in _as_list(tensors) if t is not None]
    norm_type = float(norm_type)
    if not tensors:
        return make(0.0)
    norms = [_norm_np(t._values(), norm_type) for t in tensors]
    total = _norm_np(np.asarray(norms), norm_type)
    if error_if_nonfinite and not np.isfinite(total):
        raise RuntimeError(f"The total norm of order {norm_type} for gradients from `parameters` is non-finite, so "
                           "it cannot be clipped. To disable this error and scale the gradients by the non-finite "
                           "norm anyway, set `error_if_nonfinite=False`")
    return make(total, dtype=tensors[0].dtype)


def clip_grads_with_norm_(parameters: _Params, max_norm: float, total_norm: Tensor, foreach=None) -> None:
    """Multiply every .grad by min(1, max_norm / (total_norm + 1e-6)), in place."""
    grads = [p.grad for p in _as_list(parameters) if p.grad is not None]
    if not grads:
        return
    coef = min(float(max_norm) / (float(total_norm) + 1e-6), 1.0)
    with grad_mode.no_grad():
        for g in grads:
            g.mul_(coef)


def clip_grad_norm_(parameters: _Params, max_norm: float, norm_type: float = 2.0, error_if_nonfinite: bool = False,
                    foreach=None) -> Tensor:
    """Clip the gradients' total norm to max_norm (in place); returns the norm before clipping."""
    params = _as_list(parameters)
    grads = [p.grad for p in params if p.grad is not None]
    total = get_total_norm(grads, norm_type, error_if_nonfinite, foreach)
    clip_grads_with_norm_(params, max_norm, total, foreach)
    return total


def clip_grad_value_(parameters: _Params, clip_value: float, foreach=None) -> None:
    """Clamp every gradient element into [-clip_value, clip_value], in place."""
    clip_value = float(clip_value)
    with grad_mode.no_grad():
        for p in _as_list(parameters):
            if p.grad is not None:
                p.grad.clamp_(-clip_value, clip_value)
