"""Random numbers as ops of a graph, drawn at every call of a compiled function.

Eagerly, `rand`, `randn` and dropout draw from the default generator when they
run. In a traced function that would happen once, at trace time, and the draws
would be frozen into the graph as constants. So while tracing they record one of
these ops instead; the compiled program draws from the same generator, in the
same way, at each call: a compiled function gives the numbers eager mode gives
for the same seed.

These ops have kind "random": no meta runs them (their shape is an attr), CSE
never merges two of them, constant folding never evaluates them, and the
partitioner never recomputes one in the backward (it would draw new numbers).
"""
from __future__ import annotations

import numpy as np

from .. import dtypes as D
from ..dispatch import apply
from ..ops.table import defop


def _np_uniform(shape, dtype):
    from ..creation import _rng

    return _rng(None).random(tuple(shape), dtype=np.float64).astype(D.compute_np(dtype))


def _np_normal(shape, dtype):
    from ..creation import _rng

    return _rng(None).standard_normal(tuple(shape)).astype(D.compute_np(dtype))


UNIFORM = defop("rand_uniform", "random", _np_uniform, dtype=lambda args, attrs: attrs["dtype"],
                differentiable=False)
NORMAL = defop("rand_normal", "random", _np_normal, dtype=lambda args, attrs: attrs["dtype"], differentiable=False)


def uniform(shape, dtype: D.DType):
    """U[0, 1) samples, as `tracegrad.rand(shape, dtype=dtype)` draws them."""
    return apply(UNIFORM, (), {"shape": tuple(int(s) for s in shape), "dtype": dtype}, dtype)


def normal(shape, dtype: D.DType):
    """N(0, 1) samples, as `tracegrad.randn(shape, dtype=dtype)` draws them."""
    return apply(NORMAL, (), {"shape": tuple(int(s) for s in shape), "dtype": dtype}, dtype)
