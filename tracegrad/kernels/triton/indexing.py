"""Index math: from (shape, strides, offset) to the offset expression a kernel loads from.

Two steps, the ones torch's TensorIterator takes too:

1. align every operand to the kernel's iteration shape (a broadcast dim gets
   stride 0) and **coalesce**: adjacent dims merge when every operand walks them
   as one (stride[d] == stride[d+1] * size[d+1]), size-1 dims drop. A contiguous
   tensor becomes one flat dim, whatever its rank.
2. per operand, an offset expression over a linear index variable: the variable
   itself when the operand is contiguous over the coalesced space (Triton then
   sees unit stride and emits vector loads), otherwise a sum of coordinate*stride
   with coordinates peeled off the linear index by // and %.
"""
from __future__ import annotations

import math
from typing import Sequence

from .spec import contiguous_strides


def align(kernel_shape: Sequence[int], shape: Sequence[int] | None, strides: Sequence[int] | None) -> tuple[int, ...]:
    """An operand's strides over the kernel's dims: 0 where it broadcasts."""
    kernel_shape = tuple(kernel_shape)
    shape = kernel_shape if shape is None else tuple(shape)
    strides = contiguous_strides(shape) if strides is None else tuple(strides)
    pad = len(kernel_shape) - len(shape)
    out = [0] * pad
    for d, (n, s) in enumerate(zip(shape, strides)):
        out.append(0 if n == 1 else s)
    return tuple(out)


def coalesce(shape: Sequence[int], operands: Sequence[Sequence[int]], groups: Sequence[int]):
    """Merge dims every operand walks as one; never across group boundaries.

    groups: sizes of consecutive dim groups (rows then reduced dims, or batch, M, N).
    Returns (shapes per group, strides per group per operand)."""
    shapes, strides = [], [[] for _ in operands]
    start = 0
    for g in groups:
        dims = [d for d in range(start, start + g) if shape[d] != 1]
        gshape: list[int] = []
        gstr: list[list[int]] = [[] for _ in operands]
        for d in reversed(dims):  # innermost first
            if gshape and all(op[d] == s[0] * gshape[0] for op, s in zip(operands, gstr)):
                gshape[0] *= shape[d]
                continue
            gshape.insert(0, shape[d])
            for op, s in zip(operands, gstr):
                s.insert(0, op[d])
        shapes.append(tuple(gshape))
        for i, s in enumerate(gstr):
            strides[i].append(tuple(s))
        start += g
    return shapes, strides


def max_offset(shape: Sequence[int], strides: Sequence[int], offset: int = 0) -> int:
    """The largest element offset an operand reaches (decides 32- vs 64-bit index math)."""
    return offset + sum((n - 1) * abs(s) for n, s in zip(shape, strides) if n > 0)


class LinearIndex:
    """Coordinates of one coalesced dim group, peeled off a linear index variable.

    `expr(strides)` gives an operand's offset within the group; the coordinate
    variables it needs are collected and emitted by `lines()`."""

    def __init__(self, var: str, shape: Sequence[int], prefix: str):
        self.var = var
        self.shape = tuple(shape)
        self.prefix = prefix
        self.needed: set[int] = set()

    def expr(self, strides: Sequence[int]) -> str | None:
        """The offset expression, or None when the operand does not move along this group."""
        strides = tuple(strides)
        if not self.shape or all(s == 0 for s in strides):
            return None
        if strides == contiguous_strides(self.shape):
            return self.var
        terms = []
        for d, s in enumerate(strides):
            if s == 0:
                continue
            if len(self.shape) == 1:
                c = self.var  # one dim: the coordinate is the index itself
            else:
                self.needed.add(d)
                c = f"{self.prefix}{d}"
            terms.append(c if s == 1 else f"{c} * {s}" if s > 0 else f"{c} * ({s})")
        return " + ".join(terms)

    def lines(self) -> list[str]:
        out = []
        for d in sorted(self.needed):
            inner = math.prod(self.shape[d + 1:])
            e = self.var if inner == 1 else f"({self.var} // {inner})"
            if d > 0:
                e = f"{e} % {self.shape[d]}"
            out.append(f"{self.prefix}{d} = {e}")
        return out


def join_offsets(parts: Sequence[str | None], offset: int) -> str:
    """'a + b + 3' from the non-empty parts; '0'-free."""
    terms = [p for p in parts if p]
    if offset:
        terms.append(str(offset))
    if not terms:
        return ""
    if len(terms) == 1:
        return terms[0]
    return " + ".join(f"({t})" if " + " in t else t for t in terms)
