"""RMSprop (torch's formulas: optional centering, momentum, weight decay, maximize)."""
from __future__ import annotations

from typing import Callable, Iterable, Optional

import numpy as np

from .optimizer import Optimizer, _Arr, counts_step, grad_values, step_tensor, zeros_state

__all__ = ["RMSprop"]


class RMSprop(Optimizer):
    """v = alpha * v + (1 - alpha) * g^2; avg = sqrt(v - gbar^2 if centered else v) + eps;
    with momentum: buf = momentum * buf + g / avg, p -= lr * buf; else p -= lr * g / avg."""

    def __init__(self, params: Iterable, lr: float = 1e-2, alpha: float = 0.99, eps: float = 1e-8,
                 weight_decay: float = 0, momentum: float = 0, centered: bool = False, capturable: bool = False,
                 foreach=None, maximize: bool = False, differentiable: bool = False) -> None:
        if not 0.0 <= lr:
            raise ValueError(f"Invalid learning rate: {lr}")
        if not 0.0 <= eps:
            raise ValueError(f"Invalid epsilon value: {eps}")
        if not 0.0 <= momentum:
            raise ValueError(f"Invalid momentum value: {momentum}")
        if not 0.0 <= weight_decay:
            raise ValueError(f"Invalid weight_decay value: {weight_decay}")
        if not 0.0 <= alpha:
            raise ValueError(f"Invalid alpha value: {alpha}")
        defaults = dict(lr=lr, momentum=momentum, alpha=alpha, eps=eps, centered=centered, weight_decay=weight_decay,
                        capturable=capturable, foreach=foreach, maximize=maximize, differentiable=differentiable)
        super().__init__(params, defaults)

    @counts_step
    def step(self, closure: Optional[Callable] = None):
        loss = self._closure(closure)
        for group in self.param_groups:
            lr, alpha, eps = float(group["lr"]), group["alpha"], group["eps"]
            wd, momentum, centered, maximize = (group["weight_decay"], group["momentum"], group["centered"],
                                                group["maximize"])
            for p in group["params"]:
                if p._grad is None:
                    continue
                state = self.state[p]
                if not state:
                    state["step"] = step_tensor()
                    state["square_avg"] = zeros_state(p)
                    if momentum > 0:
                        state["momentum_buffer"] = zeros_state(p)
                    if centered:
                        state["grad_avg"] = zeros_state(p)
                st = state["step"]
                st._data += 1
                st._vc[0] += 1
                g = grad_values(p, maximize)
                pa = _Arr(p)
                if wd != 0:
                    g = g + wd * pa.a
                sq = _Arr(state["square_avg"])
                tmp = self._buf("rms_a", pa.a)
                sq.a *= alpha
                np.multiply(g, 1 - alpha, out=tmp)
                tmp *= g
                sq.a += tmp
                avg = self._buf("rms_b", pa.a)
                if centered:
                    ga = _Arr(state["grad_avg"])
                    w = 1 - alpha
                    np.subtract(g, ga.a, out=tmp)
                    if w < 0.5:
                        tmp *= w
                        ga.a += tmp
                    else:
                        tmp *= 1 - w
                        np.subtract(g, tmp, out=ga.a)
                    ga.done()
                    np.multiply(ga.a, ga.a, out=tmp)
                    np.subtract(sq.a, tmp, out=avg)
                    np.sqrt(avg, out=avg)
                else:
                    np.sqrt(sq.a, out=avg)
                avg += eps
                if momentum > 0:
                    buf = _Arr(state["momentum_buffer"])
                    buf.a *= momentum
                    np.divide(g, avg, out=tmp)
                    buf.a += tmp
                    buf.done()
                    np.multiply(buf.a, -lr, out=tmp)
                    pa.a += tmp
                else:
                    np.multiply(g, -lr, out=tmp)
                    tmp /= avg
                    pa.a += tmp
                sq.done()
                pa.done()
        return loss
