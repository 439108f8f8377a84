"""The op table: every primitive op is defined once, here, as an `Op`.

An Op carries the four things each use of it needs:
  meta     -> the output dtype (shape and errors are checked by the user-facing
              function before the op runs, so the op itself never sees bad input)
  numpy    -> the CPU implementation, on NumPy arrays
  vjp      -> the backward rule, written with tracegrad ops so it can be traced
  lowering -> the Triton expression (pointwise) or combine (reductions); filled
              in by the GPU backend, None until then
Composite ops (softmax, var, losses...) are plain Python over primitives and
have no entry here."""
from __future__ import annotations

from typing import Callable

OPS: dict[str, "Op"] = {}


class Op:
    """One primitive. `kind` is one of pointwise, reduce, view, index, linalg,
    movement, random: the tracer's fusion pass groups nodes by it."""

    __slots__ = ("name", "kind", "numpy", "dtype", "vjp", "save", "grad_name", "lowering",
                 "cast_inputs", "nout", "differentiable", "np_attrs", "quiet", "edges")

    def __init__(self, name: str, kind: str, numpy: Callable, *, dtype: Callable | None = None,
                 vjp: Callable | None = None, save: tuple = (), grad_name: str | None = None,
                 lowering=None, cast_inputs: bool = False, nout: int = 1, differentiable: bool = True,
                 quiet: bool | None = None, edges=None):
        self.name = name
        self.kind = kind
        self.numpy = numpy
        self.dtype = dtype
        self.vjp = vjp
        self.save = save  # which inputs (ints) and/or "out" the vjp reads
        self.grad_name = grad_name or _camel(name) + "Backward0"
        self.lowering = lowering
        self.cast_inputs = cast_inputs  # cast every tensor input to the output's compute dtype
        self.nout = nout
        self.differentiable = differentiable and vjp is not None
        # NumPy warns on overflow/divide-by-zero where torch is silent; silencing costs ~1 us a call,
        # so ops that cannot raise those warnings in practice opt out with quiet=False
        self.quiet = quiet if quiet is not None else kind in ("pointwise", "reduce", "linalg", "scan")
        self.np_attrs = _accepted_kwargs(numpy)  # attrs the NumPy impl takes; the rest are for meta/vjp
        # which arguments torch lists in grad_fn.next_functions (positions; a Python number shows as
        # (None, 0)); None means every tensor argument. A callable gets (args, attrs).
        self.edges = edges


def _accepted_kwargs(fn):
    """None if fn takes every keyword, else the set of names it takes."""
    import inspect

    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):  # NumPy ufuncs take no attrs of ours
        return frozenset()
    if any(p.kind is p.VAR_KEYWORD for p in params):
        return None
    return frozenset(p.name for p in params if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD))

    def __repr__(self) -> str:
        return f"<op {self.name} ({self.kind})>"


def _camel(name: str) -> str:
    return "".join(p[:1].upper() + p[1:] for p in name.split("_"))


def defop(name: str, kind: str, numpy: Callable, **kw) -> Op:
    if name in OPS:
        raise ValueError(f"op {name} defined twice")
    op = Op(name, kind, numpy, **kw)
    OPS[name] = op
    return op


def vjp_rule(op: Op, save: tuple = ()):
    """Decorator that attaches a backward rule to an op defined earlier."""

    def deco(fn):
        op.vjp = fn
        op.save = save
        op.differentiable = True
        return fn

    return deco
