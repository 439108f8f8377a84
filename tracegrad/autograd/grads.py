"""Resetting `.grad` on a set of parameters: what `Module.zero_grad` and `Optimizer.zero_grad` share."""
from __future__ import annotations

from typing import Iterable

from ..dispatch import TRACER as _TRACER


def clear_grads(params: Iterable, set_to_none: bool = True) -> None:
    """Forget each parameter's gradient: `.grad = None` (torch's default), or zero it in place."""
    for p in params:
        g = p._grad
        if g is None:
            continue
        if set_to_none:
            if _TRACER[0] is None:
                p._grad = None  # (what the setter does when nothing is being traced)
            else:
                p.grad = None  # (the setter: a tracer sees the change)
        else:
            if g.grad_fn is not None:
                g.detach_()
            else:
                g.requires_grad_(False)
            g.zero_()
