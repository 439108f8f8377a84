"""Flattening arguments and results: nested tuples, lists, dicts and named tuples.

`flatten(x)` gives the leaves in order and a spec; `unflatten(spec, leaves)`
rebuilds the same structure around new leaves. A compiled function's inputs
and outputs go through these, so any nesting of tensors works."""
from __future__ import annotations

from typing import Any


def flatten(x: Any) -> tuple[list, Any]:
    leaves: list = []
    spec = _flat(x, leaves)
    return leaves, spec


def _flat(x, leaves):
    t = type(x)
    if t is tuple or t is list:
        return (t, [_flat(y, leaves) for y in x])
    if t is dict:
        keys = list(x.keys())
        return (dict, keys, [_flat(x[k], leaves) for k in keys])
    if isinstance(x, tuple) and hasattr(x, "_fields"):  # a named tuple (return_types.max, ...)
        return ("named", t, [_flat(y, leaves) for y in x])
    leaves.append(x)
    return None


def unflatten(spec, leaves: list):
    it = iter(leaves)
    return _unflat(spec, it)


def _unflat(spec, it):
    if spec is None:
        return next(it)
    if spec[0] is dict:
        _, keys, subs = spec
        return {k: _unflat(s, it) for k, s in zip(keys, subs)}
    if spec[0] == "named":
        _, t, subs = spec
        return t(*[_unflat(s, it) for s in subs])
    t, subs = spec
    return t(_unflat(s, it) for s in subs)
