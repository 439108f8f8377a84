"""One graph node for a composite op, named as torch names its single kernel.

Some tracegrad functions are decompositions into primitives (lerp is a sub, a mul and an
add), but torch shows them as one node (`LerpBackward0`). `composite(name, fn, *args)`
runs the decomposition without recording it and gives the result one node called `name`.
Its backward differentiates the same decomposition: on the saved inputs, re-run with grad
mode on, then `autograd.grad` through that small graph. So no rule is written twice, and
under create_graph=True the re-run is recorded against the real inputs, which makes
higher-order gradients work. While tracing (or when nothing needs a gradient) the
decomposition simply runs as it is, so the tracer sees primitives only."""
from __future__ import annotations

from typing import Callable, Sequence

from . import grad_mode
from .node import node_class
from .record import edge_of, NO_EDGE

_state = grad_mode._state


def composite(name: str, fn: Callable, *args, torch_args: Sequence[int] | None = None,
              grads: Callable | None = None):
    """fn(*args), presented as one node named `name`. `torch_args`: the argument positions
    torch lists in next_functions (a Python number there shows as (None, 0)); default: every
    tensor argument. `grads(saved, g)`, if given, is the backward rule instead of differentiating
    fn (for ops whose torch gradient is not the decomposition's: clamp's bounds at ties); it gets
    the tensor arguments and returns one gradient (or None) per tensor argument."""
    from ..tensor import Tensor
    from ..dispatch import TRACER

    pos = [i for i, a in enumerate(args) if isinstance(a, Tensor)]
    if TRACER[0] is not None or not _state["enabled"] or not any(args[i]._requires_grad for i in pos):
        return fn(*args)
    prev = _state["enabled"]
    _state["enabled"] = False
    try:
        out = fn(*args)
    finally:
        _state["enabled"] = prev
    if not out.dtype.is_floating_point:
        return out
    tensors = tuple(args[i] for i in pos)
    edges = tuple(edge_of(t) for t in tensors)

    def vjp(ctx, saved, g):
        if grads is not None:
            return tuple(grads(saved, g))
        return _differentiate(fn, args, pos, saved, g)

    node = node_class(name)(vjp, edges, tensors, None, 1)
    node._in_dtypes = tuple(t.dtype for t in tensors)
    if torch_args is not None:
        node.next_functions = tuple(edges[pos.index(i)] if i in pos else NO_EDGE for i in torch_args)
    out.grad_fn = node
    out._output_nr = 0
    out._requires_grad = True
    return out


def _differentiate(fn, args, pos, saved, g):
    """The gradient of fn at the saved inputs, for upstream gradient g (one per tensor input)."""
    from . import grad as autograd_grad

    create = _state["enabled"]  # inside backward this is create_graph
    if create:
        inputs = list(saved)  # the real inputs: the re-run is recorded against them
    else:
        inputs = [t.detach().requires_grad_(t._requires_grad) for t in saved]
    call = list(args)
    for k, i in enumerate(pos):
        call[i] = inputs[k]
    prev = _state["enabled"]
    _state["enabled"] = True
    try:
        out = fn(*call)
    finally:
        _state["enabled"] = prev
    wanted = [k for k, t in enumerate(inputs) if t._requires_grad]
    if not out.requires_grad or not wanted:
        return tuple(None for _ in inputs)
    grads = autograd_grad(out, [inputs[k] for k in wanted], g, create_graph=create, allow_unused=True)
    res = [None] * len(inputs)
    for k, gr in zip(wanted, grads):
        res[k] = gr
    return tuple(res)
