"""SGD with momentum, dampening, Nesterov momentum, weight decay and maximize (torch's formulas)."""
from __future__ import annotations

from typing import Callable, Iterable, Optional

import numpy as np

from .. import dtypes as D
from ..creation import from_values
from ..dispatch import TRACER
from .optimizer import Optimizer, _Arr, counts_step, grad_values

__all__ = ["SGD"]


class SGD(Optimizer):
    """For each parameter p with gradient g (negated if maximize):

        g = g + weight_decay * p
        buf = g                                    on the first step (momentum != 0)
        buf = momentum * buf + (1 - dampening) * g afterwards
        g = g + momentum * buf if nesterov else buf
        p = p - lr * g

    The buffer is kept in `optimizer.state[p]['momentum_buffer']`."""

    def __init__(self, params: Iterable, lr: float = 1e-3, momentum: float = 0, dampening: float = 0,
                 weight_decay: float = 0, nesterov: bool = False, *, maximize: bool = False, foreach=None,
                 differentiable: bool = False, fused=None) -> None:
        if lr < 0.0:
            raise ValueError(f"Invalid learning rate: {lr}")
        if momentum < 0.0:
            raise ValueError(f"Invalid momentum value: {momentum}")
        if weight_decay < 0.0:
            raise ValueError(f"Invalid weight_decay value: {weight_decay}")
        defaults = dict(lr=lr, momentum=momentum, dampening=dampening, weight_decay=weight_decay, nesterov=nesterov,
                        maximize=maximize, foreach=foreach, differentiable=differentiable, fused=fused)
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("Nesterov momentum requires a momentum and zero dampening")
        super().__init__(params, defaults)

    @counts_step
    def step(self, closure: Optional[Callable] = None):
        loss = self._closure(closure)
        if TRACER[0] is not None:  # inside tracegrad.compile: the same update in tensor ops, which it records
            self._step_ops()
            return loss
        for group in self.param_groups:
            lr, momentum, dampening = float(group["lr"]), group["momentum"], group["dampening"]
            wd, nesterov, maximize = group["weight_decay"], group["nesterov"], group["maximize"]
            if momentum == 0 and wd == 0 and not maximize:
                self._plain_step(group["params"], lr)
                continue
            for p in group["params"]:
                if p._grad is None:
                    continue
                g = grad_values(p, maximize)
                pa = _Arr(p)
                if wd != 0:
                    g = g + wd * pa.a
                if momentum != 0:
                    state = self.state[p]
                    buf = state.get("momentum_buffer")
                    if buf is None:
                        buf = state["momentum_buffer"] = from_values(np.array(g, copy=True), p.dtype)
                        ba = buf._values()
                    else:
                        b = _Arr(buf)
                        b.a *= momentum
                        b.a += g if dampening == 0 else (1 - dampening) * g
                        b.done()
                        ba = b.a
                    g = g + momentum * ba if nesterov else ba
                tmp = self._buf("sgd", pa.a)
                np.multiply(g, -lr, out=tmp)
                pa.a += tmp
                pa.done()
        return loss

    def _plain_step(self, params: list, lr: float) -> None:
        """p -= lr * g for plain SGD (no momentum, weight decay or maximize): the update a tutorial's
        loop runs every batch, with the per-parameter bookkeeping of the general loop left out."""
        buf = self._buf
        for p in params:
            gt = p._grad
            if gt is None:
                continue
            if p.dtype is D.bfloat16:  # updated in float32 and rounded back, as in the general loop
                pa = _Arr(p)
                tmp = buf("sgd", pa.a)
                np.multiply(grad_values(p, False), -lr, out=tmp)
                pa.a += tmp
                pa.done()
                continue
            a = p._data
            tmp = buf("sgd", a)
            np.multiply(gt._data, -lr, out=tmp)
            a += tmp
            p._vc[0] += 1  # an in-place update, as torch counts it

    def _step_ops(self) -> None:
        """`step` written with tensor ops (what a traced training step records)."""
        from ..autograd.grad_mode import no_grad

        with no_grad():
            for group in self.param_groups:
                lr, momentum, dampening = float(group["lr"]), group["momentum"], group["dampening"]
                wd, nesterov, maximize = group["weight_decay"], group["nesterov"], group["maximize"]
                for p in group["params"]:
                    if p._grad is None:
                        continue
                    g = -p._grad if maximize else p._grad
                    if wd != 0:
                        g = g + wd * p
                    if momentum != 0:
                        state = self.state[p]
                        buf = state.get("momentum_buffer")
                        if buf is None:
                            buf = state["momentum_buffer"] = g.clone()
                        else:
                            buf.mul_(momentum).add_(g if dampening == 0 else (1 - dampening) * g)
                        g = g + momentum * buf if nesterov else buf
                    p.add_(g * -lr)
