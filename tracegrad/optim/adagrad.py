"""Adagrad (torch's formulas; state is created when the optimizer is, as torch does)."""
from __future__ import annotations

from typing import Callable, Iterable, Optional

import numpy as np

from .optimizer import Optimizer, _Arr, counts_step, grad_values, step_tensor, zeros_state

__all__ = ["Adagrad"]


class Adagrad(Optimizer):
    """sum += g^2; p -= lr / (1 + (t - 1) * lr_decay) * g / (sqrt(sum) + eps)."""

    def __init__(self, params: Iterable, lr: float = 1e-2, lr_decay: float = 0, weight_decay: float = 0,
                 initial_accumulator_value: float = 0, eps: float = 1e-10, foreach=None, *, maximize: bool = False,
                 differentiable: bool = False, fused=None) -> None:
        if not 0.0 <= lr:
            raise ValueError(f"Invalid learning rate: {lr}")
        if not 0.0 <= lr_decay:
            raise ValueError(f"Invalid lr_decay value: {lr_decay}")
        if not 0.0 <= weight_decay:
            raise ValueError(f"Invalid weight_decay value: {weight_decay}")
        if not 0.0 <= initial_accumulator_value:
            raise ValueError(f"Invalid initial_accumulator_value value: {initial_accumulator_value}")
        if not 0.0 <= eps:
            raise ValueError(f"Invalid epsilon value: {eps}")
        defaults = dict(lr=lr, lr_decay=lr_decay, eps=eps, weight_decay=weight_decay,
                        initial_accumulator_value=initial_accumulator_value, foreach=foreach, maximize=maximize,
                        differentiable=differentiable, fused=fused)
        super().__init__(params, defaults)
        for group in self.param_groups:
            for p in group["params"]:
                state = self.state[p]
                state["step"] = step_tensor()
                state["sum"] = zeros_state(p, group["initial_accumulator_value"])

    @counts_step
    def step(self, closure: Optional[Callable] = None):
        loss = self._closure(closure)
        for group in self.param_groups:
            lr, lr_decay, eps = float(group["lr"]), group["lr_decay"], group["eps"]
            wd, maximize = group["weight_decay"], group["maximize"]
            for p in group["params"]:
                if p._grad is None:
                    continue
                state = self.state[p]
                st = state["step"]
                st._data += 1
                st._vc[0] += 1
                step = float(st._data)
                g = grad_values(p, maximize)
                pa = _Arr(p)
                if wd != 0:
                    g = g + wd * pa.a
                clr = lr / (1 + (step - 1) * lr_decay)
                s = _Arr(state["sum"])
                tmp = self._buf("ada_a", pa.a)
                np.multiply(g, g, out=tmp)
                s.a += tmp
                std = self._buf("ada_b", pa.a)
                np.sqrt(s.a, out=std)
                std += eps
                np.multiply(g, -clr, out=tmp)
                tmp /= std
                pa.a += tmp
                s.done()
                pa.done()
        return loss
