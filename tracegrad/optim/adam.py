"""Adam and AdamW (torch's single-tensor formulas, including amsgrad and maximize)."""
from __future__ import annotations

from typing import Callable, Iterable, Optional

import numpy as np

from ..dispatch import TRACER
from .optimizer import Optimizer, _Arr, counts_step, grad_values, step_tensor, zeros_state

__all__ = ["Adam", "AdamW"]


def _check(lr, betas, eps, weight_decay) -> None:
    if not 0.0 <= float(lr):  # (float() for a tensor lr; the message shows lr as given, as torch's does)
        raise ValueError(f"Invalid learning rate: {lr}")
    if not 0.0 <= eps:
        raise ValueError(f"Invalid epsilon value: {eps}")
    if not 0.0 <= betas[0] < 1.0:
        raise ValueError(f"Invalid beta parameter at index 0: {betas[0]}")
    if not 0.0 <= betas[1] < 1.0:
        raise ValueError(f"Invalid beta parameter at index 1: {betas[1]}")
    if not 0.0 <= weight_decay:
        raise ValueError(f"Invalid weight_decay value: {weight_decay}")


def _lerp_(a: np.ndarray, b: np.ndarray, w: float, tmp: np.ndarray) -> None:
    """a = lerp(a, b, w), computed as torch computes it (from the nearer end)."""
    np.subtract(b, a, out=tmp)
    if w < 0.5:
        tmp *= w
        a += tmp
    else:
        tmp *= 1 - w
        np.subtract(b, tmp, out=a)


class Adam(Optimizer):
    """For each parameter p with gradient g, at step t:

        g = g + weight_decay * p          (AdamW instead: p = p * (1 - lr * weight_decay))
        m = lerp(m, g, 1 - beta1)         v = beta2 * v + (1 - beta2) * g * g
        denom = sqrt(v) / sqrt(1 - beta2^t) + eps       (max of all v so far with amsgrad)
        p = p - lr / (1 - beta1^t) * m / denom

    State: 'step' (a float32 0-d tensor), 'exp_avg', 'exp_avg_sq' (and 'max_exp_avg_sq')."""

    def __init__(self, params: Iterable, lr: float = 1e-3, betas=(0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0, amsgrad: bool = False, *, foreach=None, maximize: bool = False,
                 capturable: bool = False, differentiable: bool = False, fused=None,
                 decoupled_weight_decay: bool = False) -> None:
        _check(lr, betas, eps, weight_decay)
        defaults = dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay, amsgrad=amsgrad,
                        maximize=maximize, foreach=foreach, capturable=capturable, differentiable=differentiable,
                        fused=fused, decoupled_weight_decay=decoupled_weight_decay)
        super().__init__(params, defaults)

    def _state_for(self, p, amsgrad: bool) -> dict:
        """The parameter's state, made on its first step: step count and the moment buffers."""
        state = self.state[p]
        if not state:
            state["step"] = step_tensor()
            state["exp_avg"] = zeros_state(p)
            state["exp_avg_sq"] = zeros_state(p)
            if amsgrad:
                state["max_exp_avg_sq"] = zeros_state(p)
        return state

    @counts_step
    def step(self, closure: Optional[Callable] = None):
        loss = self._closure(closure)
        if TRACER[0] is not None:  # inside tracegrad.compile: the same update in tensor ops, which it records
            self._step_ops()
            return loss
        for group in self.param_groups:
            lr, beta1, beta2, eps, wd, amsgrad, maximize, decoupled = _hparams(group)
            for p in group["params"]:
                if p._grad is None:
                    continue
                state = self._state_for(p, amsgrad)
                st = state["step"]
                st._data += 1
                st._vc[0] += 1
                step = float(st._data)
                g = grad_values(p, maximize)
                pa = _Arr(p)
                if wd != 0:
                    if decoupled:
                        pa.a *= 1 - lr * wd
                    else:
                        g = g + wd * pa.a
                m, v = _Arr(state["exp_avg"]), _Arr(state["exp_avg_sq"])
                tmp = self._buf("adam_a", pa.a)
                _lerp_(m.a, g, 1 - beta1, tmp)
                v.a *= beta2
                np.multiply(g, 1 - beta2, out=tmp)
                tmp *= g
                v.a += tmp
                bias1 = 1 - beta1 ** step
                bias2_sqrt = (1 - beta2 ** step) ** 0.5
                step_size = lr / bias1
                src = v.a
                if amsgrad:
                    mx = _Arr(state["max_exp_avg_sq"])
                    np.maximum(mx.a, v.a, out=mx.a)
                    mx.done()
                    src = mx.a
                np.sqrt(src, out=tmp)
                tmp /= bias2_sqrt
                tmp += eps
                upd = self._buf("adam_b", pa.a)
                np.multiply(m.a, -step_size, out=upd)
                upd /= tmp
                pa.a += upd
                m.done()
                v.done()
                pa.done()
        return loss

    def _step_ops(self) -> None:
        """`step` written with tensor ops (what a traced training step records). The step count stays a
        tensor, so the bias corrections are computed from its value at each call, in float64 as above."""
        from .. import dtypes as D
        from ..autograd.grad_mode import no_grad
        from ..ops.pointwise import maximum

        with no_grad():
            for group in self.param_groups:
                lr, beta1, beta2, eps, wd, amsgrad, maximize, decoupled = _hparams(group)
                for p in group["params"]:
                    if p._grad is None:
                        continue
                    state = self._state_for(p, amsgrad)
                    st = state["step"]
                    st.add_(1)
                    t = st.to(D.float64)
                    g = -p._grad if maximize else p._grad
                    if wd != 0:
                        if decoupled:
                            p.mul_(1 - lr * wd)
                        else:
                            g = g + wd * p
                    m, v = state["exp_avg"], state["exp_avg_sq"]
                    w = 1 - beta1
                    if w < 0.5:  # lerp from the nearer end, as _lerp_ does
                        m.add_((g - m) * w)
                    else:
                        m.copy_(g - (g - m) * (1 - w))
                    v.mul_(beta2).add_(g * (1 - beta2) * g)
                    bias1 = 1 - beta1 ** t
                    bias2_sqrt = (1 - beta2 ** t) ** 0.5
                    step_size = lr / bias1
                    src = v
                    if amsgrad:
                        mx = state["max_exp_avg_sq"]
                        mx.copy_(maximum(mx, v))
                        src = mx
                    p.add_(m * -step_size / (src.sqrt() / bias2_sqrt + eps))


class AdamW(Adam):
    """Adam with decoupled weight decay (default 0.01): p = p * (1 - lr * weight_decay) before the update."""

    def __init__(self, params: Iterable, lr: float = 1e-3, betas=(0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 1e-2, amsgrad: bool = False, *, maximize: bool = False, foreach=None,
                 capturable: bool = False, differentiable: bool = False, fused=None) -> None:
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad, foreach=foreach, maximize=maximize,
                         capturable=capturable, differentiable=differentiable, fused=fused,
                         decoupled_weight_decay=True)


def _hparams(group: dict) -> tuple:
    """A param group's settings, in the order both step paths unpack them."""
    beta1, beta2 = group["betas"]
    return (float(group["lr"]), beta1, beta2, group["eps"], group["weight_decay"], group["amsgrad"],
            group["maximize"], group.get("decoupled_weight_decay", False))
