"""From op-table entries to Triton expressions, and the dtype rules around them.

Each primitive's Triton form lives in its `Op.lowering` (tracegrad/ops/*.py); this
module only reads it. A lowering is one of

    "tl.exp({0})"                  a format string over the already-loaded arguments
                                   {0} {1} {2}, the op's attrs by name ({lo}, {dtype}),
                                   {ctype}, the Triton type the op computes in, and
                                   {k:0.5}, a constant in that type (not a float32 literal)
    {"float32": ..., "int": ...}   forms per compute dtype: its name, then its
                                   category ("float", "int", "bool"), then "default"
    callable(attrs)                returns one of the above (clamp with or without bounds)
    ("add", 0) / ("add", 0, post)  a reduction: combine ("add", "max", "min", "mul"),
                                   identity ("-inf"/"inf" mean the dtype's extremes), and
                                   an optional epilogue over the result {0} and {n}, {inv_n}

Dtypes follow torch: float16 and bfloat16 values live in float32 inside a kernel
(torch computes half-precision math in float32 too) and are rounded only where
they are stored or explicitly cast; every other dtype computes as itself.
"""
from __future__ import annotations

import math
import string
from typing import Any, Mapping

import numpy as np

from ... import dtypes as D
from ...ops.table import Op

# the Triton element type of each dtype in memory
TL: dict[D.DType, str] = {
    D.bool_: "tl.int1", D.uint8: "tl.uint8", D.int8: "tl.int8", D.int16: "tl.int16", D.int32: "tl.int32",
    D.int64: "tl.int64", D.float16: "tl.float16", D.bfloat16: "tl.bfloat16", D.float32: "tl.float32",
    D.float64: "tl.float64",
}
# the pointer type strings of triton.compile's signatures
PTR_SIG: dict[D.DType, str] = {
    D.bool_: "*i1", D.uint8: "*u8", D.int8: "*i8", D.int16: "*i16", D.int32: "*i32", D.int64: "*i64",
    D.float16: "*fp16", D.bfloat16: "*bf16", D.float32: "*fp32", D.float64: "*fp64",
}


class LoweringError(NotImplementedError):
    """The op (or this dtype of it) has no Triton form; the caller falls back to NumPy."""


def compute_dtype(dt: D.DType) -> D.DType:
    """The dtype a value of torch dtype `dt` is held in inside a kernel."""
    return D.float32 if dt in (D.float16, D.bfloat16) else dt


def category(dt: D.DType) -> str:
    return {D._BOOL: "bool", D._INT: "int", D._FLOAT: "float"}[dt.category]


# ---- constants ----------------------------------------------------------------------------
class Constants:
    """Python numbers as Triton operands of a given compute type.

    A float32 (or int32) operand can be a plain literal: Triton treats literals as
    weakly typed float32/int32, exactly the type it meets. Any other type gets a
    named constant built once at the top of the kernel (`tl.full([], v, dtype)`),
    so a float64 kernel does not see 0.1 rounded to float32 first, nor an int8
    kernel widened to int32 by a literal."""

    def __init__(self):
        self.lines: list[str] = []
        self._names: dict[tuple, str] = {}

    def __call__(self, value: Any, ctype: D.DType) -> str:
        value = _convert(value, ctype)
        if ctype is D.float32 and math.isfinite(value):
            return _paren(repr(float(value)))
        if ctype is D.int32 and -2 ** 31 <= value < 2 ** 31:
            return _paren(str(int(value)))
        key = (repr(value), ctype.name)
        name = self._names.get(key)
        if name is None:
            name = self._names[key] = f"cst{len(self._names)}"
            self.lines.append(f"{name} = tl.full([], {_py(value)}, {TL[ctype]})")
        return name


def _convert(value, ctype: D.DType):
    if ctype.category == D._FLOAT:
        return float(value)
    if ctype is D.bool_:
        return bool(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise LoweringError(f"{value} cannot be an integer constant")
        return int(value)
    return int(value)


def _py(value) -> str:
    """Python source for a number, infinities and NaN included."""
    if isinstance(value, float) and not math.isfinite(value):
        return f'float("{value}")'
    return repr(value)


def _paren(s: str) -> str:
    return f"({s})" if s.startswith("-") else s


def extreme(dt: D.DType, lowest: bool):
    """-inf / inf for floats, the smallest / largest value for integers."""
    if dt.category == D._FLOAT:
        return -math.inf if lowest else math.inf
    if dt is D.bool_:
        return not lowest
    info = np.iinfo(dt.np)
    return int(info.min if lowest else info.max)


# ---- pointwise ops ----------------------------------------------------------------------------
def resolve(op: Op, attrs: Mapping[str, Any], ctype: D.DType):
    """The op's lowering for values of compute dtype `ctype` (a string or a reduction tuple)."""
    low = op.lowering
    if callable(low):
        low = low(attrs)
    if isinstance(low, dict):
        for key in (ctype.name, category(ctype), "default"):
            if key in low:
                low = low[key]
                break
        else:
            raise LoweringError(f"op {op.name!r} has no Triton form for {ctype.name}")
    if low is None:
        raise LoweringError(f"op {op.name!r} has no Triton lowering")
    return low


def is_comparison(op: Op) -> bool:
    """eq/lt/logical_and...: two operands compared in their promoted dtype, bool result."""
    return op.kind == "pointwise" and not op.cast_inputs and op.name in _COMPARISONS


_COMPARISONS = {"eq", "ne", "lt", "le", "gt", "ge", "logical_and", "logical_or", "logical_xor"}


def input_dtypes(op: Op, args: list, out: D.DType, compute: D.DType | None) -> list[D.DType | None]:
    """The dtype each argument is converted to before the op runs (None: as it is).

    This is where torch's promotion, settled by the op table, becomes explicit casts."""
    if op.name == "where":
        return [None, out, out]
    if op.name == "masked_fill":
        return [out, None, out]
    if compute is None:
        if op.cast_inputs:
            compute = out
        elif is_comparison(op):
            compute = D.result_type(*args)
    return [compute] * len(args)


def arith_ctype(dt: D.DType) -> D.DType:
    """The compute type of an arithmetic op on `dt`: bools add/multiply as int8 and the
    result is turned back into a bool (True + True is True in torch, 0 in 1-bit math)."""
    dt = compute_dtype(dt)
    return D.int8 if dt is D.bool_ else dt


def needs_result_cast(op: Op, natural: D.DType | None, out_ctype: D.DType) -> bool:
    """Whether the expression's own Triton type may differ from the value's compute type.

    Arithmetic in float32/float64/int32/int64 stays in that type whatever literal it
    meets; smaller integer types widen against int32 literals, so they get a cast."""
    if natural is None:
        return True
    return not (natural is out_ctype and natural in (D.float32, D.float64, D.int32, D.int64, D.bool_))


class _Formatter(string.Formatter):
    """str.format, plus `{k:0.7071067811865476}`: a number in the op's compute type.

    A bare float literal in Triton source is a float32 constant; an op computing in
    float64 must not have its constants rounded to float32 first."""

    _K = object()

    def __init__(self, consts: Constants, ctype: D.DType):
        super().__init__()
        self.consts, self.ctype = consts, ctype

    def get_value(self, key, args, kwargs):
        if key == "k":
            return self._K
        return super().get_value(key, args, kwargs)

    def format_field(self, value, spec):
        if value is self._K:
            return self.consts(float(spec), self.ctype)
        return super().format_field(value, spec)


def format_expr(template: str, args: list[str], attrs: Mapping[str, Any], ctype: D.DType,
                consts: Constants) -> str:
    """Fill a lowering string: {0}.. are argument expressions, attrs are rendered as Triton source,
    {ctype} is the compute type and {k:<number>} a constant of that type."""
    kw = {"ctype": TL[ctype]}
    for k, v in attrs.items():
        if isinstance(v, D.DType):
            kw[k] = TL[v]
        elif isinstance(v, bool) or v is None:
            kw[k] = repr(v)
        elif isinstance(v, (int, float)):
            kw[k] = consts(v, ctype)
        else:
            kw[k] = repr(v)
    try:
        return _Formatter(consts, ctype).format(template, *args, **kw)
    except (KeyError, IndexError) as e:
        raise LoweringError(f"lowering {template!r} needs {e}, which the step does not give") from None


# ---- reductions ----------------------------------------------------------------------------
class Reduction:
    """A reduce step's combine, its identity in the compute type, and its epilogue."""

    def __init__(self, op: Op, attrs: Mapping[str, Any], ctype: D.DType):
        low = resolve(op, attrs, ctype)
        if not isinstance(low, tuple) or len(low) not in (2, 3):
            raise LoweringError(f"op {op.name!r} has no reduction lowering")
        self.combine = low[0]
        if self.combine not in ("add", "max", "min", "mul"):
            raise LoweringError(f"unknown combine {self.combine!r}")
        ident = low[1]
        if ident in ("-inf", "inf"):
            ident = extreme(ctype, lowest=ident == "-inf")
        self.identity = ident
        self.post = low[2] if len(low) == 3 else None

    def tree(self, x: str, axis: int) -> str:
        """Reduce a block over `axis`, keeping it as a size-1 axis."""
        return f"_tg_reduce_{self.combine}({x}, {axis})"

    def accumulate(self, acc: str, x: str) -> str:
        """One step of a looped reduction: combine elementwise into the accumulator."""
        if self.combine == "add":
            return f"{acc} + {x}"
        if self.combine == "mul":
            return f"{acc} * {x}"
        return f"_tg_{self.combine}({acc}, {x})"

    @property
    def helper(self) -> str:
        return self.combine


# jit helpers the reductions call: the combine and the tree reduction over an axis.
# Generated kernels call only Triton builtins and these (not tl.sum/tl.max, which are
# @jit functions of Triton's standard library: those cannot run under the interpreter
# unless TRITON_INTERPRET=1 was set before Triton was imported). Under the interpreter
# the _tg_reduce_* helpers are NumPy reductions (interpret.py). max and min propagate
# NaN as torch's do.
_COMBINE_BODY = {
    "add": "a + b",
    "mul": "a * b",
    "max": "tl.maximum(a, b, propagate_nan=tl.PropagateNan.ALL)",
    "min": "tl.minimum(a, b, propagate_nan=tl.PropagateNan.ALL)",
}
HELPERS = {
    c: (f"@triton.jit\ndef _tg_{c}(a, b):\n    return {body}\n\n\n"
        f"@triton.jit\ndef _tg_reduce_{c}(x, axis: tl.constexpr):\n"
        f"    return tl.reduce(x, axis, _tg_{c}, keep_dims=True)\n")
    for c, body in _COMBINE_BODY.items()
}
# the matmul template's dot: a helper too, so that the interpreter can run it on NumPy
# (Triton's interpreter multiplies bfloat16 operands as raw uint16 bits and ignores TF32)
# Philox 4x32-10 (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3", 2011), the generator
# torch's CUDA kernels use: ten rounds of two 32x32 -> 64-bit multiplies mixing a 128-bit counter
# under a 64-bit key. Written out here rather than calling tl.philox, so the interpreter runs it too.
HELPERS["philox"] = """@triton.jit
def _tg_philox(seed, c0, c1, c2, c3):
    k0 = (seed & 0xFFFFFFFF).to(tl.uint32)
    k1 = ((seed >> 32) & 0xFFFFFFFF).to(tl.uint32)
    for _ in tl.static_range(10):
        a0 = c0
        a2 = c2
        c0 = tl.umulhi(a2, tl.full(a2.shape, 0xCD9E8D57, tl.uint32)) ^ c1 ^ k0
        c2 = tl.umulhi(a0, tl.full(a0.shape, 0xD2511F53, tl.uint32)) ^ c3 ^ k1
        c1 = a2 * tl.full(a2.shape, 0xCD9E8D57, tl.uint32)
        c3 = a0 * tl.full(a0.shape, 0xD2511F53, tl.uint32)
        k0 = k0 + tl.full(k0.shape, 0x9E3779B9, tl.uint32)
        k1 = k1 + tl.full(k1.shape, 0xBB67AE85, tl.uint32)
    return c0, c1, c2, c3
"""
# the row template's sort (a helper, so that the interpreter can run NumPy's sort instead)
HELPERS["sort_rows"] = "@triton.jit\ndef _tg_sort_rows(x):\n    return tl.sort(x, 1)\n"
HELPERS["dot"] = "@triton.jit\ndef _tg_dot(a, b, acc):\n    return tl.dot(a, b, acc)\n"
for _p in ("ieee", "tf32"):
    HELPERS[f"dot_{_p}"] = (f"@triton.jit\ndef _tg_dot_{_p}(a, b, acc):\n"
                            f"    return tl.dot(a, b, acc, input_precision=\"{_p}\")\n")
