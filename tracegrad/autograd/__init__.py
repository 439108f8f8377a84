"""tracegrad.autograd: reverse-mode differentiation over the graph ops record.

    y = f(x)            every op on a tensor that requires grad records a node
    y.backward()        the engine walks the nodes back, calling each vjp rule
    x.grad              gradients accumulate on the leaves

`grad()` returns gradients instead of accumulating them; `Function` lets you
write your own forward/backward pair; `gradcheck` compares a function's
gradients with finite differences."""
from __future__ import annotations

from .grad_mode import (no_grad, enable_grad, set_grad_enabled, inference_mode, is_grad_enabled,
                        is_inference_mode_enabled)
from .function import Function, FunctionCtx, once_differentiable
from .node import Node
from . import engine

__all__ = ["backward", "grad", "Function", "Variable", "gradcheck", "no_grad", "enable_grad",
           "set_grad_enabled", "inference_mode", "is_grad_enabled"]


def _tensors(x):
    from ..tensor import Tensor

    if isinstance(x, Tensor):
        return [x]
    return list(x)


def _root_grads(outputs, grad_tensors, create_graph):
    from ..creation import ones_like

    grads = []
    if grad_tensors is None:
        grad_tensors = [None] * len(outputs)
    else:
        grad_tensors = _tensors(grad_tensors) if not isinstance(grad_tensors, (list, tuple)) else list(grad_tensors)
    for i, (o, g) in enumerate(zip(outputs, grad_tensors)):
        if g is None:
            if not o.requires_grad:
                raise RuntimeError(f"element {i} of tensors does not require grad and does not have a grad_fn")
            if o.numel() != 1:
                raise RuntimeError("grad can be implicitly created only for scalar outputs")
            g = ones_like(o)
        else:
            if not o.requires_grad:
                raise RuntimeError(f"element {i} of tensors does not require grad and does not have a grad_fn")
            if tuple(g.shape) != tuple(o.shape):
                raise RuntimeError(
                    f"Mismatch in shape: grad_output[{i}] has a shape of {g.shape!r} and output[{i}] has a shape "
                    f"of {o.shape!r}.".replace("tracegrad.Size", "torch.Size"))
        grads.append(g)
    return grads


def backward(tensors, grad_tensors=None, retain_graph=None, create_graph=False, inputs=None) -> None:
    """Accumulate d(tensors)/d(leaf) into every leaf's `.grad`."""
    outputs = _tensors(tensors)
    if grad_tensors is not None and not isinstance(grad_tensors, (list, tuple)):
        grad_tensors = [grad_tensors]
    grads = _root_grads(outputs, grad_tensors, create_graph)
    if retain_graph is None:
        retain_graph = create_graph
    if inputs is not None:
        ins = _tensors(inputs)
        res = engine.run_backward(outputs, grads, retain_graph=retain_graph, create_graph=create_graph,
                                  inputs=ins, allow_unused=True)
        for t, g in zip(ins, res):
            if g is not None:
                engine._accumulate(t, g, create_graph)
        return
    engine.run_backward(outputs, grads, retain_graph=retain_graph, create_graph=create_graph)


def grad(outputs, inputs, grad_outputs=None, retain_graph=None, create_graph=False, only_inputs=True,
         allow_unused=None, is_grads_batched=False, materialize_grads=False):
    """d(outputs)/d(inputs), returned as a tuple (nothing is accumulated into `.grad`)."""
    outs = _tensors(outputs)
    ins = _tensors(inputs)
    if grad_outputs is not None and not isinstance(grad_outputs, (list, tuple)):
        grad_outputs = [grad_outputs]
    grads = _root_grads(outs, grad_outputs, create_graph)
    for i, t in enumerate(ins):
        if not t.requires_grad:
            raise RuntimeError("One of the differentiated Tensors does not require grad")
    if retain_graph is None:
        retain_graph = create_graph
    res = engine.run_backward(outs, grads, retain_graph=retain_graph, create_graph=create_graph, inputs=ins,
                              allow_unused=bool(allow_unused) or materialize_grads)
    if materialize_grads:
        from ..creation import zeros_like

        res = [r if r is not None else zeros_like(t) for r, t in zip(res, ins)]
    return tuple(res)


def Variable(data, requires_grad: bool = False, volatile: bool = False):
    """The pre-0.4 wrapper: today it just returns the tensor (optionally requiring grad)."""
    if requires_grad:
        data.requires_grad_(True)
    return data


def gradcheck(func, inputs, *, eps: float = 1e-6, atol: float = 1e-5, rtol: float = 1e-3,
              raise_exception: bool = True, **_ignored) -> bool:
    """Compare analytical gradients with central finite differences (use float64 inputs).

    For each output element and each input element, the analytical row of the
    Jacobian (from `grad`) must match (f(x+eps) - f(x-eps)) / 2eps."""
    import numpy as np

    from ..tensor import Tensor
    from ..creation import from_values, zeros_like

    inputs = (inputs,) if isinstance(inputs, Tensor) else tuple(inputs)
    diff = [i for i, x in enumerate(inputs) if isinstance(x, Tensor) and x.requires_grad]

    def run():
        out = func(*inputs)
        return out if isinstance(out, tuple) else (out,)

    outs = run()
    for oi, out in enumerate(outs):
        if not isinstance(out, Tensor) or not out.dtype.is_floating_point:
            continue
        n_out = out.numel()
        for k in diff:
            x = inputs[k]
            numeric = np.zeros((x.numel(), n_out))
            flat = x._data.reshape(-1) if x.is_contiguous() else None
            if flat is None:
                raise ValueError("gradcheck needs contiguous inputs")
            for j in range(x.numel()):
                orig = flat[j].item()
                flat[j] = orig + eps
                with no_grad():
                    plus = run()[oi]._values().astype(np.float64).reshape(-1)
                flat[j] = orig - eps
                with no_grad():
                    minus = run()[oi]._values().astype(np.float64).reshape(-1)
                flat[j] = orig
                numeric[j] = (plus - minus) / (2 * eps)
            analytic = np.zeros((x.numel(), n_out))
            for m in range(n_out):
                out_m = run()[oi]
                go = zeros_like(out_m)
                go._data.reshape(-1)[m] = 1
                (g,) = grad(out_m, (x,), go, allow_unused=True)
                if g is not None:
                    analytic[:, m] = g._values().astype(np.float64).reshape(-1)
            if not np.allclose(analytic, numeric, atol=atol, rtol=rtol):
                if raise_exception:
                    raise RuntimeError(
                        f"Jacobian mismatch for output {oi} with respect to input {k},\n"
                        f"numerical:{from_values(numeric, x.dtype)}\nanalytical:{from_values(analytic, x.dtype)}\n")
                return False
    return True


def set_detect_anomaly(mode: bool, check_nan: bool = True):
    return None


class detect_anomaly:
    def __init__(self, check_nan: bool = True):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False
