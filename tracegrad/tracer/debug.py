"""TRACEGRAD_DEBUG: what the compiler does, on stderr.

    TRACEGRAD_DEBUG=1   one line per kernel launch: its name (kind and shape), time,
                        GB/s, GFLOP/s and the user ops it fused; a line per
                        (re)compilation naming what changed in the input signature
    TRACEGRAD_DEBUG=2   also the generated source of every program when it is built

The level is read when a function is compiled for a new signature, so a
program built with debugging off carries no timing code at all. Whatever the
level, a function recompiled more than `RECOMPILE_LIMIT` times gets one
warning naming what keeps changing."""
from __future__ import annotations

import os
import sys

RECOMPILE_LIMIT = 8


def level() -> int:
    v = os.environ.get("TRACEGRAD_DEBUG", "")
    try:
        return int(v) if v else 0
    except ValueError:
        return 1


def log(msg: str) -> None:
    print(f"[tracegrad] {msg}", file=sys.stderr)


def describe_change(old_key: tuple | None, new_key: tuple, names: list) -> str:
    """What differs between two cache keys, in words ('x: shape [3, 4] -> [5, 4]')."""
    if old_key is None:
        return "first call"
    parts = []
    if old_key[0] != new_key[0]:
        parts.append(f"grad mode {'on' if old_key[0] else 'off'} -> {'on' if new_key[0] else 'off'}")
    olds, news = old_key[1:], new_key[1:]
    if len(olds) != len(news):
        parts.append(f"number of arguments {len(olds)} -> {len(news)}")
    for i, (a, b) in enumerate(zip(olds, news)):
        if a == b:
            continue
        if isinstance(a, tuple) and a[:1] == ("free",):
            parts.append("a tensor named by the function's closure or globals was rebound")
            continue
        name = names[i] if i < len(names) else f"argument {i}"
        parts.append(f"{name}: " + _diff(a, b))
    return "; ".join(parts) or "captured tensors changed"


_FIELDS = ("dtype", "shape", "strides", "requires_grad", "grad is None", "device")


def _diff(a, b) -> str:
    if isinstance(a, tuple) and isinstance(b, tuple) and len(a) == len(b) == len(_FIELDS) and a[:1] != ("s",):
        out = []
        for f, x, y in zip(_FIELDS, a, b):
            if x != y:
                if f == "shape":
                    x, y = list(x), list(y)
                elif f == "dtype":
                    x, y = getattr(x, "name", x), getattr(y, "name", y)
                elif f == "strides":
                    x = "contiguous" if x is None else x
                    y = "contiguous" if y is None else y
                elif f == "grad is None":
                    f, x, y = ".grad", "None" if x else "set", "None" if y else "set"
                out.append(f"{f} {x} -> {y}")
        if out:
            return ", ".join(out)
    return f"{_short(a)} -> {_short(b)}"


def _short(k) -> str:
    s = repr(k)
    return s if len(s) < 60 else s[:57] + "..."
