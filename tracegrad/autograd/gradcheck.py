"""Checking gradients against finite differences: `gradcheck` and `gradgradcheck`.

For a function f and inputs x (float64, requires_grad), the Jacobian J[i, j] =
d out_j / d x_i is computed twice:
  numerical   central differences, (f(x + eps e_i) - f(x - eps e_i)) / (2 eps)
  analytical  one backward pass per output element j, with grad_output = e_j
and the two must agree within atol + rtol * |numerical|. gradgradcheck does the
same for the function that maps (x, grad_output) to the gradients, which checks
second derivatives (the backward graph that create_graph=True records)."""
from __future__ import annotations

from typing import Callable, Sequence

import numpy as np


class GradcheckError(RuntimeError):
    """Raised by gradcheck when the Jacobians differ (a RuntimeError, as in torch)."""


def _as_tuple(x) -> tuple:
    return x if isinstance(x, tuple) else (x,)


def _float_outputs(outs):
    from ..tensor import Tensor

    return [(i, o) for i, o in enumerate(outs) if isinstance(o, Tensor) and o.dtype.is_floating_point]


def _numerical(func, inputs, k, out_index, n_out, eps):
    """d out / d inputs[k] by central differences, as an (numel(input), numel(out)) array."""
    from .grad_mode import no_grad

    x = inputs[k]
    data = x._data  # perturbed in place, so views and aliasing inside func behave as they will
    J = np.zeros((x.numel(), n_out))
    for j, idx in enumerate(np.ndindex(*data.shape) if data.ndim else [()]):
        orig = data[idx].item()
        data[idx] = orig + eps
        with no_grad():
            plus = _as_tuple(func(*inputs))[out_index]._values().astype(np.float64).reshape(-1)
        data[idx] = orig - eps
        with no_grad():
            minus = _as_tuple(func(*inputs))[out_index]._values().astype(np.float64).reshape(-1)
        data[idx] = orig
        J[j] = (plus - minus) / (2 * eps)
    return J


def _analytical(out, inputs, diff):
    """Rows of the Jacobian from one backward pass per output element."""
    from ..creation import zeros
    from . import grad as autograd_grad

    n_out = out.numel()
    Js = {k: np.zeros((inputs[k].numel(), n_out)) for k in diff}
    if not out.requires_grad:
        return Js
    for m in range(n_out):
        go = zeros(tuple(out.shape), dtype=out.dtype)  # row-major, so the flat index m is element m
        go._data.reshape(-1)[m] = 1
        gs = autograd_grad(out, [inputs[k] for k in diff], go, retain_graph=True, allow_unused=True)
        for k, g in zip(diff, gs):
            if g is not None:
                if tuple(g.shape) != tuple(inputs[k].shape):
                    raise GradcheckError(f"Gradient has shape {tuple(g.shape)} but input {k} has shape "
                                         f"{tuple(inputs[k].shape)}")
                Js[k][:, m] = g._values().astype(np.float64).reshape(-1)
    return Js


def gradcheck(func: Callable, inputs, *, eps: float = 1e-6, atol: float = 1e-5, rtol: float = 1e-3,
              raise_exception: bool = True, nondet_tol: float = 0.0, check_undefined_grad: bool = True,
              check_grad_dtypes: bool = False, check_batched_grad: bool = False, fast_mode: bool = False,
              masked: bool | None = None, **_ignored) -> bool:
    """True if func's analytical gradients match finite differences for every input
    that requires grad and every floating output. Use float64 inputs."""
    import warnings

    from ..tensor import Tensor

    inputs = _as_tuple(inputs) if not isinstance(inputs, list) else tuple(inputs)
    diff = [i for i, x in enumerate(inputs) if isinstance(x, Tensor) and x.requires_grad]
    if not diff:
        raise ValueError("gradcheck expects at least one input tensor to require gradient, but none of them "
                         "have requires_grad=True.")
    for i in diff:
        if inputs[i].dtype.name != "float64":
            warnings.warn(f"Input #{i} requires gradient and is not a double precision floating point or complex. "
                          "This check will likely fail if all the inputs are not of double precision floating point or "
                          "complex. ", UserWarning, stacklevel=2)
    outs = _as_tuple(func(*inputs))
    for oi, out in _float_outputs(outs):
        analytical = _analytical(out, inputs, diff)
        for k in diff:
            numerical = _numerical(func, inputs, k, oi, out.numel(), eps)
            a = analytical[k]
            if not np.allclose(a, numerical, atol=atol, rtol=rtol, equal_nan=True):
                if raise_exception:
                    raise GradcheckError(
                        f"Jacobian mismatch for output {oi} with respect to input {k},\n"
                        f"numerical:{_fmt(numerical, inputs[k].dtype)}\nanalytical:{_fmt(a, inputs[k].dtype)}\n")
                return False
    return True


def _fmt(a: np.ndarray, dtype) -> str:
    """A Jacobian printed as torch prints it: a tensor of the input's dtype."""
    from ..creation import from_values

    return repr(from_values(a, dtype))


def gradgradcheck(func: Callable, inputs, grad_outputs=None, *, eps: float = 1e-6, atol: float = 1e-5,
                  rtol: float = 1e-3, gen_non_contig_grad_outputs: bool = False, raise_exception: bool = True,
                  **_ignored) -> bool:
    """gradcheck of the map (inputs, grad_outputs) -> gradients: checks second derivatives."""
    from ..tensor import Tensor
    from ..creation import from_values
    from .. import dtypes as D
    from . import grad as autograd_grad
    from .grad_mode import enable_grad

    inputs = _as_tuple(inputs) if not isinstance(inputs, list) else tuple(inputs)
    outs = _as_tuple(func(*inputs))
    float_outs = [o for _, o in _float_outputs(outs) if o.requires_grad]
    if grad_outputs is None:
        rng = np.random.default_rng(0)
        grad_outputs = tuple(from_values(rng.standard_normal(o.shape), D.float64).requires_grad_(True)
                             for o in float_outs)
    grad_outputs = _as_tuple(grad_outputs) if not isinstance(grad_outputs, list) else tuple(grad_outputs)
    n = len(inputs)
    diff = [x for x in inputs if isinstance(x, Tensor) and x.requires_grad]

    def first_grads(*args):
        with enable_grad():  # gradcheck evaluates it under no_grad for the finite differences
            return _first_grads(*args)

    def _first_grads(*args):
        xs, gos = args[:n], args[n:]
        ys = [o for _, o in _float_outputs(_as_tuple(func(*xs))) if o.requires_grad]
        dxs = [x for x in xs if isinstance(x, Tensor) and x.requires_grad]
        gs = autograd_grad(ys, dxs, list(gos), create_graph=True, allow_unused=True)
        return tuple(g for g in gs if g is not None)

    return gradcheck(first_grads, tuple(inputs) + tuple(grad_outputs), eps=eps, atol=atol, rtol=rtol,
                     raise_exception=raise_exception) if diff else True
