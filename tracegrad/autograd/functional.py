"""torch.autograd.functional: derivatives of a whole function (vjp, jvp, jacobian, hessian,
vhp, hvp), written over autograd.grad.

As in torch, `inputs` is a tensor or a tuple of tensors and each result mirrors that
structure; the function's inputs are fresh leaves (so the caller's graph is untouched), and
results are detached unless create_graph=True. Only the reverse-mode strategy exists (jvp
uses the double-vjp trick, as torch's does); `strict` and `vectorize` are accepted."""
from __future__ import annotations

from typing import Callable


def _as_tuple(x, what: str, fn_name: str):
    from ..tensor import Tensor

    if isinstance(x, Tensor):
        return False, (x,)
    if isinstance(x, tuple):  # (a list is refused, as in torch)
        for i, t in enumerate(x):
            if not isinstance(t, Tensor):
                raise TypeError(f"The {what} given to {fn_name} must be either a Tensor or a tuple of Tensors but "
                                f"the value at index {i} has type {type(t)}.")
        return True, tuple(x)
    raise TypeError(f"The {what} given to {fn_name} must be either a Tensor or a tuple of Tensors but the given "
                    f"{what} has type {type(x)}.")


def _leaves(inputs, create_graph: bool):
    # with create_graph the leaves stay connected to inputs that require grad (torch uses view_as)
    return tuple(t.view_as(t) if create_graph and t.requires_grad else t.detach().requires_grad_(True)
                 for t in inputs)


def _grads(outputs, inputs, grad_outputs, create_graph: bool):
    """autograd.grad of the outputs that require grad; zeros where an input is unused."""
    from . import grad
    from ..creation import zeros_like

    pairs = [(o, g) for o, g in zip(outputs, grad_outputs) if o.requires_grad]
    if pairs:
        res = grad([o for o, _ in pairs], list(inputs), [g for _, g in pairs], create_graph=create_graph,
                   allow_unused=True, retain_graph=True)
    else:
        res = [None] * len(inputs)
    return tuple(r if r is not None else zeros_like(t) for r, t in zip(res, inputs))


def _input_vectors(ins, v, fn_name: str) -> tuple:
    """The vectors v (one per input) of jvp/hvp/vhp; None only for a single one-element input."""
    from ..creation import ones_like

    if v is not None:
        return _as_tuple(v, "v", fn_name)[1]
    if len(ins) != 1 or ins[0].numel() != 1:
        raise RuntimeError("The vector v can only be None if the input to the user-provided function is a "
                           "single Tensor with a single element.")
    return (ones_like(ins[0]),)


def _single(out_tuple, outs, fn_name):
    if out_tuple:
        raise RuntimeError(f"The function given to {fn_name} should return a single Tensor")
    if outs[0].numel() != 1:
        raise RuntimeError(f"The Tensor returned by the function given to {fn_name} should contain a single element")


def _finish(ts, create_graph: bool):
    return tuple(t if create_graph else t.detach() for t in ts)


def _call(func, leaves, fn_name):
    out = func(*leaves)
    is_tuple, outs = _as_tuple(out, "outputs of the user-provided function", fn_name)
    return is_tuple, outs


def vjp(func: Callable, inputs, v=None, create_graph: bool = False, strict: bool = False):
    """(func(inputs), v^T J)."""
    from ..creation import ones_like

    in_tuple, ins = _as_tuple(inputs, "inputs", "vjp")
    from . import grad_mode

    with grad_mode.enable_grad():
        leaves = _leaves(ins, create_graph)
        out_tuple, outs = _call(func, leaves, "vjp")
        if v is None:
            if len(outs) != 1 or outs[0].numel() != 1:
                raise RuntimeError("The vector v can only be None if the user-provided function returns a single "
                                   "Tensor with a single element.")
            vs = (ones_like(outs[0]),)
        else:
            _, vs = _as_tuple(v, "v", "vjp")
            if len(vs) != len(outs):
                raise RuntimeError(f"v is a tuple of invalid length: should be {len(outs)} but got {len(vs)}.")
        res = _grads(outs, leaves, vs, create_graph)
    outs, res = _finish(outs, create_graph), _finish(res, create_graph)
    return (outs if out_tuple else outs[0]), (res if in_tuple else res[0])


def jvp(func: Callable, inputs, v=None, create_graph: bool = False, strict: bool = False):
    """(func(inputs), J v), by differentiating a vjp with respect to its vector."""
    from ..creation import zeros_like
    from . import grad_mode

    in_tuple, ins = _as_tuple(inputs, "inputs", "jvp")
    vs = _input_vectors(ins, v, "jvp")
    with grad_mode.enable_grad():
        leaves = _leaves(ins, create_graph)
        out_tuple, outs = _call(func, leaves, "jvp")
        us = tuple(zeros_like(o).requires_grad_(True) for o in outs)
        g = _grads(outs, leaves, us, True)
        res = _grads(g, us, vs, create_graph)  # (the parts of g that do not depend on us give zeros)
    outs, res = _finish(outs, create_graph), _finish(res, create_graph)
    return (outs if out_tuple else outs[0]), (res if out_tuple else res[0])


def jacobian(func: Callable, inputs, create_graph: bool = False, strict: bool = False, vectorize: bool = False,
             strategy: str = "reverse-mode"):
    """d func(inputs) / d inputs: per (output, input) a tensor of shape output.shape + input.shape."""
    from ..creation import zeros_like
    from ..ops.movement import stack
    from . import grad_mode

    in_tuple, ins = _as_tuple(inputs, "inputs", "jacobian")
    with grad_mode.enable_grad():
        leaves = _leaves(ins, create_graph)
        out_tuple, outs = _call(func, leaves, "jacobian")
        table = []
        for o in outs:
            flat = o.reshape(-1)
            rows = [[] for _ in leaves]
            for k in range(flat.numel()):
                e = zeros_like(flat)
                e[k] = 1.0
                gs = _grads((flat,), leaves, (e,), create_graph)
                for j, gj in enumerate(gs):
                    rows[j].append(gj)
            per_in = []
            for j, t in enumerate(leaves):
                if rows[j]:
                    per_in.append(stack(rows[j]).reshape(tuple(o.shape) + tuple(t.shape)))
                else:  # an empty output
                    from ..creation import zeros

                    per_in.append(zeros(tuple(o.shape) + tuple(t.shape), dtype=t.dtype))
            table.append(tuple(p if create_graph else p.detach() for p in per_in))
    if out_tuple:
        return tuple(row if in_tuple else row[0] for row in table)
    return table[0] if in_tuple else table[0][0]


def hessian(func: Callable, inputs, create_graph: bool = False, strict: bool = False, vectorize: bool = False,
            outer_jacobian_strategy: str = "reverse-mode"):
    """The jacobian of the gradient of a function returning one element."""
    in_tuple, ins = _as_tuple(inputs, "inputs", "hessian")

    def jac(*xs):
        out = func(*xs)
        out_tuple, outs = _as_tuple(out, "outputs of the user-provided function", "hessian")
        _single(out_tuple, outs, "hessian")
        g = jacobian(func, xs, create_graph=True)
        return tuple(gi.reshape(x.shape) for gi, x in zip(g, xs))

    res = jacobian(jac, ins, create_graph=create_graph)
    if in_tuple:
        return res
    return res[0][0]


def vhp(func: Callable, inputs, v=None, create_graph: bool = False, strict: bool = False):
    """(func(inputs), v^T H)."""
    return _hvp("vhp", func, inputs, v, create_graph)


def hvp(func: Callable, inputs, v=None, create_graph: bool = False, strict: bool = False):
    """(func(inputs), H v); H is symmetric for the twice-differentiable functions this serves."""
    return _hvp("hvp", func, inputs, v, create_graph)


def _hvp(name, func, inputs, v, create_graph):
    from ..creation import ones_like
    from . import grad_mode

    in_tuple, ins = _as_tuple(inputs, "inputs", name)
    vs = _input_vectors(ins, v, name)
    with grad_mode.enable_grad():
        leaves = _leaves(ins, create_graph)
        out_tuple, outs = _call(func, leaves, name)
        _single(out_tuple, outs, name)
        g = _grads(outs, leaves, (ones_like(outs[0]),), True)
        res = _grads(g, leaves, vs, create_graph)
    outs, res = _finish(outs, create_graph), _finish(res, create_graph)
    return outs[0], (res if in_tuple else res[0])
