"""Pointwise ops: unary, binary and ternary elementwise math.

Each primitive is one `defop` line: its NumPy function, its Triton expression
(`lowering`, over already-loaded values {0} {1} {2}) and its vjp. The public
functions below settle broadcasting and type promotion (torch's rules) before the
primitive runs, so the primitives themselves never promote."""
from __future__ import annotations

import math

import numpy as np

from .. import dtypes as D
from ..device import OnDevice
from .. import dispatch as _dispatch
from ..dispatch import apply, binary
from ..tensor import Tensor
from .shape_util import broadcast_shapes, sum_to
from .table import defop
from ..autograd.record import name_by_args, save_if
from ..autograd.composite import composite
from .inplace import with_out as _out

_DEFAULT = D.get_default_dtype


# ---- dtype rules -------------------------------------------------------------------
def _promote(args, attrs=None):
    return D.result_type(*args)


def _floatify(dt: D.DType) -> D.DType:
    return dt if dt.is_floating_point else D.get_default_dtype()


def _float_result(args, attrs=None):
    return _floatify(D.result_type(*args))


def _bool_result(args, attrs=None):
    return D.bool_


def _same(args, attrs=None):
    return args[0].dtype


def _refuse(kernel: str, dt: D.DType):
    """torch's error for a dtype a kernel has no implementation for."""
    raise NotImplementedError(f'"{kernel}" not implemented for \'{dt.short}\'')


def _zero_grads(ctx):
    return tuple(None for _ in ctx.shapes)


# ---- vjp rules (written with tracegrad ops, so they trace) ------------------------------
def _vjp_add(ctx, saved, g):
    a, b = ctx.shapes if len(ctx.shapes) == 2 else (ctx.shapes[0], None)
    if len(ctx.shapes) == 1:
        return (sum_to(g, ctx.shapes[0]),)
    return sum_to(g, a), sum_to(g, b)


def _vjp_sub(ctx, saved, g):
    if len(ctx.shapes) == 1:  # tensor - scalar, or scalar - tensor (rsub)
        return (sum_to(g if isinstance(ctx.args[0], Tensor) else -g, ctx.shapes[0]),)
    return sum_to(g, ctx.shapes[0]), sum_to(-g, ctx.shapes[1])


def _vjp_mul(ctx, saved, g):
    # saved = (a if b needs a gradient else None, b if a needs one else None): see MUL.save below
    x0, x1 = ctx.args
    if not isinstance(x1, Tensor):  # tensor * number
        return (g * x1,)
    if not isinstance(x0, Tensor):  # number * tensor
        return (g * x0,)
    a, b = saved
    return (sum_to(g * b, ctx.shapes[0]) if ctx.needs[0] else None,
            sum_to(g * a, ctx.shapes[1]) if ctx.needs[1] else None)


def _vjp_div(ctx, saved, g):
    # saved = (a if b needs a gradient else None, b): see DIV.save below
    x0, x1 = ctx.args
    if not isinstance(x1, Tensor):  # tensor / number
        return (g / x1,)
    a, b = saved
    if not isinstance(x0, Tensor):  # number / tensor
        return (-g * x0 / (b * b),)
    ga = sum_to(g / b, ctx.shapes[0]) if ctx.needs[0] else None
    gb = sum_to(-g * a / (b * b), ctx.shapes[1]) if ctx.needs[1] else None
    return ga, gb


def _vjp_pow(ctx, saved, g):
    a0, a1 = ctx.args
    if not isinstance(a1, Tensor):  # x ** c
        x = saved[0]
        if a1 == 0:
            return (g * 0.0,)
        return (g * a1 * x ** (a1 - 1),)
    if not isinstance(a0, Tensor):  # c ** x: saved (x, out)
        x, out = saved
        if a0 == 0:  # torch: 0 where the exponent is >= 0, else out * log(0)
            return (where(x >= 0, g * 0.0, g * out * float("-inf")),)
        return (g * out * (math.log(a0) if a0 > 0 else float("nan")),)
    x, y, out = saved
    gx = sum_to(g * y * where(y == 0, x * 0.0, x ** (y - 1)), ctx.shapes[0]) if ctx.needs[0] else None
    # d/dy x**y = out * log(x); torch takes it as 0 where x == 0 and y >= 0 (and NaN for x < 0)
    gy = sum_to(g * where(logical_and(x == 0, y >= 0), out * 0.0, out * log(x)), ctx.shapes[1]) \
        if ctx.needs[1] else None
    return gx, gy


def _vjp_maxmin(ctx, saved, g):
    a, b = saved
    # ties split the gradient in half, as torch does
    sel = (a > b) if ctx.attrs.get("is_max") else (a < b)
    tie = a == b
    ga = where(sel, g, where(tie, g * 0.5, g * 0.0))
    gb = where(sel, g * 0.0, where(tie, g * 0.5, g))
    return (sum_to(ga, ctx.shapes[0]) if ctx.needs[0] else None,
            sum_to(gb, ctx.shapes[1]) if ctx.needs[1] else None)


def _unary(name, fn, lowering, vjp=None, save=(0,), dtype=_float_result, grad_name=None):
    return defop(name, "pointwise", fn, dtype=dtype, cast_inputs=True, vjp=vjp, save=save,
                 lowering=lowering, grad_name=grad_name)


# ---- the primitives ---------------------------------------------------------------
# add/sub/mul stay quiet (NumPy warns on inf - inf, inf * 0 and float overflow; torch never does);
# comparisons cannot warn, so they skip the errstate
ADD = defop("add", "pointwise", np.add, dtype=_promote, cast_inputs=True, vjp=_vjp_add, lowering="{0} + {1}")
SUB = defop("sub", "pointwise", np.subtract, dtype=_promote, cast_inputs=True, vjp=_vjp_sub, lowering="{0} - {1}",
            grad_name=lambda a: "RsubBackward1" if a.get("rsub") else "SubBackward0")
MUL = defop("mul", "pointwise", np.multiply, dtype=_promote, cast_inputs=True, vjp=_vjp_mul, save=(0, 1),
            lowering="{0} * {1}")
DIV = defop("div", "pointwise", np.true_divide, dtype=_float_result, cast_inputs=True, vjp=_vjp_div, save=(0, 1),
            lowering={"float32": "tl.math.div_rn({0}, {1})", "default": "{0} / {1}"})
# pow has three forms (x ** c, x ** y, c ** x) that save different things
def _np_pow(a, b):
    bk = np.asarray(b).dtype.kind
    # (a is a Python bool in True ** int_tensor: NumPy treats it as an integer too)
    if bk == "i" and np.asarray(a).dtype.kind in "biu" and np.any(np.asarray(b) < 0):
        # integer a ** -k truncates 1 / a**k: 1 for a == 1, +-1 for a == -1, else 0 (NumPy refuses)
        neg = np.asarray(b) < 0
        r = np.power(a, np.where(neg, 0, b))
        alt = np.where(a == 1, 1, np.where(a == -1, np.where(np.asarray(b) % 2 == 0, 1, -1), 0))
        return np.where(neg, alt, r).astype(r.dtype)
    return np.power(a, b)


POW = defop("pow", "pointwise", _np_pow, dtype=_promote, cast_inputs=True, vjp=_vjp_pow,
            save=lambda a: {0: (0,), 1: (0, 1, "out"), 2: (1, "out")}[a["form"]],
            lowering={"float": "libdevice.pow({0}, {1})",  # integers: exact in float64 below 2**53
                      "int": "libdevice.rint(libdevice.pow(tl.cast({0}, tl.float64), tl.cast({1}, tl.float64)))"
                             ".to({ctype})"},
            grad_name=lambda a: {0: "PowBackward0", 1: "PowBackward1", 2: "PowBackward2"}[a.get("form", 1)])
MAXIMUM = defop("maximum", "pointwise", np.maximum, dtype=_promote, cast_inputs=True, vjp=_vjp_maxmin,
                save=(0, 1), lowering="tl.maximum({0}, {1}, propagate_nan=tl.PropagateNan.ALL)")
MINIMUM = defop("minimum", "pointwise", np.minimum, dtype=_promote, cast_inputs=True, vjp=_vjp_maxmin,
                save=(0, 1), lowering="tl.minimum({0}, {1}, propagate_nan=tl.PropagateNan.ALL)")


def _np_floor_div(a, b):
    if isinstance(a, np.ndarray) and a.dtype.kind in "iu" or isinstance(b, np.ndarray) and b.dtype.kind in "iu":
        if np.any(np.asarray(b) == 0):
            raise RuntimeError("ZeroDivisionError")
    return np.floor_divide(a, b)


def _np_trunc_div(a, b):
    if (isinstance(a, np.ndarray) and a.dtype.kind in "iub") or (isinstance(b, np.ndarray) and b.dtype.kind in "iub"):
        if np.any(np.asarray(b) == 0):
            raise RuntimeError("ZeroDivisionError")
        q = np.floor_divide(a, b)
        fix = (q < 0) & (q * b != a)
        return q + fix.astype(q.dtype)
    return np.trunc(np.true_divide(a, b))


def _np_remainder(a, b):
    if (isinstance(b, np.ndarray) and b.dtype.kind in "iu" or isinstance(b, int)) and np.any(np.asarray(b) == 0) \
            and np.asarray(a).dtype.kind != "f":  # (a 0-d bfloat16 operand arrives as a NumPy scalar)
        raise RuntimeError("ZeroDivisionError")
    return np.remainder(a, b)


def _vjp_none(ctx, saved, g):
    return tuple(None for _ in ctx.shapes)


def _vjp_zero(ctx, saved, g):
    return tuple(sum_to(g * 0.0, s) if n else None for s, n in zip(ctx.shapes, ctx.needs))


def _vjp_fmod(ctx, saved, g):
    if len(ctx.shapes) == 1:
        return (g if isinstance(ctx.args[0], Tensor) else g * 0.0,)
    a, b = saved
    gb = sum_to(-g * div(a, b, rounding_mode="trunc"), ctx.shapes[1]) if ctx.needs[1] else None
    return (sum_to(g, ctx.shapes[0]) if ctx.needs[0] else None), gb


def _vjp_remainder(ctx, saved, g):
    if len(ctx.shapes) == 1:
        return (g if isinstance(ctx.args[0], Tensor) else g * 0.0,)
    a, b = saved
    return sum_to(g, ctx.shapes[0]), sum_to(-g * floor_divide(a, b), ctx.shapes[1])


FLOOR_DIVIDE = defop("floor_divide", "pointwise", _np_floor_div, dtype=_promote, cast_inputs=True,
                     vjp=_vjp_zero, grad_name="DivBackward2", lowering={
                         "float32": "tl.math.floor(tl.math.div_rn({0}, {1}))",
                         "float": "tl.math.floor({0} / {1})",
                         # Triton's // truncates like C; step down where the signs differ and it was inexact
                         "int": "tl.where((({0} % {1}) != 0) & (({0} < 0) != ({1} < 0)), {0} // {1} - 1, {0} // {1})"})
TRUNC_DIVIDE = defop("trunc_divide", "pointwise", _np_trunc_div, dtype=_promote, cast_inputs=True,
                     vjp=_vjp_zero, grad_name="DivBackward2", lowering={
                         "float32": "libdevice.trunc(tl.math.div_rn({0}, {1}))",
                         "float": "libdevice.trunc({0} / {1})", "int": "{0} // {1}"})
# torch's remainder takes the divisor's sign: fmod (C's %, the dividend's sign) moved by one divisor
_REMAINDER_LOWERING = {
    "float": "tl.where((libdevice.fmod({0}, {1}) != 0) & ((libdevice.fmod({0}, {1}) < 0) != ({1} < 0)), "
             "libdevice.fmod({0}, {1}) + {1}, libdevice.fmod({0}, {1}))",
    "int": "tl.where((({0} % {1}) != 0) & ((({0} % {1}) < 0) != ({1} < 0)), ({0} % {1}) + {1}, {0} % {1})",
}
REMAINDER = defop("remainder", "pointwise", _np_remainder, dtype=_promote, cast_inputs=True,
                  vjp=_vjp_remainder, save=(0, 1), lowering=_REMAINDER_LOWERING)
def _np_fmod(a, b):
    if isinstance(a, np.ndarray) and a.dtype.kind in "iub" and not (isinstance(b, float) or
                                                                    getattr(b, "dtype", None) is not None and
                                                                    b.dtype.kind == "f"):
        if np.any(np.asarray(b) == 0):
            raise RuntimeError("ZeroDivisionError")
    return np.fmod(a, b)


FMOD = defop("fmod", "pointwise", _np_fmod, dtype=_promote, cast_inputs=True, vjp=_vjp_fmod, save=(0, 1),
             lowering={"float": "libdevice.fmod({0}, {1})", "int": "{0} % {1}"})
def _vjp_atan2(ctx, s, g):
    y, x = s
    r2 = y * y + x * x
    # at (0, 0) torch's gradient is 0 for both (its rule masks the 0 / 0 there), not NaN
    recip = where(r2 == 0, r2 * 0.0, 1.0 / r2)
    return (sum_to(g * x * recip, ctx.shapes[0]) if ctx.needs[0] else None,
            sum_to(-g * y * recip, ctx.shapes[1]) if ctx.needs[1] else None)


ATAN2 = defop("atan2", "pointwise", np.arctan2, dtype=_float_result, cast_inputs=True, save=(0, 1),
              vjp=_vjp_atan2,
              lowering="libdevice.atan2({0}, {1})")

# comparisons and logic: bool results, no gradient
_CMP = {}
for _name, _fn, _low in [("eq", np.equal, "{0} == {1}"), ("ne", np.not_equal, "{0} != {1}"),
                         ("lt", np.less, "{0} < {1}"), ("le", np.less_equal, "{0} <= {1}"),
                         ("gt", np.greater, "{0} > {1}"), ("ge", np.greater_equal, "{0} >= {1}"),
                         ("logical_and", np.logical_and, "({0} != 0) & ({1} != 0)"),
                         ("logical_or", np.logical_or, "({0} != 0) | ({1} != 0)"),
                         ("logical_xor", np.logical_xor, "({0} != 0) ^ ({1} != 0)")]:
    _CMP[_name] = defop(_name, "pointwise", _fn, dtype=_bool_result, lowering=_low, quiet=False)


def _bitwise(name, fn, low):
    def np_fn(a, b):
        return fn(a, b)

    return defop(name, "pointwise", np_fn, dtype=_promote, cast_inputs=True, lowering=low)


BITWISE_AND = _bitwise("bitwise_and", np.bitwise_and, "{0} & {1}")
BITWISE_OR = _bitwise("bitwise_or", np.bitwise_or, "{0} | {1}")
BITWISE_XOR = _bitwise("bitwise_xor", np.bitwise_xor, "{0} ^ {1}")


def _g(fn):
    """vjp for a unary op whose derivative is fn(x, out)."""
    return lambda ctx, s, g: (g * fn(*s),)


EXP = _unary("exp", np.exp, "tl.exp({0})", _g(lambda out: out), save=("out",))
EXP2 = _unary("exp2", np.exp2, "tl.exp2({0})", _g(lambda out: out * math.log(2.0)), save=("out",))
EXPM1 = _unary("expm1", np.expm1, "libdevice.expm1({0})", _g(lambda out: out + 1), save=("out",))
LOG = _unary("log", np.log, "tl.log({0})", _g(lambda x: 1 / x))
LOG2 = _unary("log2", np.log2, "tl.log2({0})", _g(lambda x: 1 / (x * math.log(2.0))))
LOG10 = _unary("log10", np.log10, "libdevice.log10({0})", _g(lambda x: 1 / (x * math.log(10.0))))
LOG1P = _unary("log1p", np.log1p, "libdevice.log1p({0})", _g(lambda x: 1 / (x + 1)), grad_name="Log1PBackward0")
# float32 sqrt and division round as IEEE (and torch) do; plain tl.sqrt and / are approximate on the GPU
SQRT = _unary("sqrt", np.sqrt, {"float32": "tl.sqrt_rn({0})", "default": "tl.sqrt({0})"}, _g(lambda out: 0.5 / out),
              save=("out",))
RSQRT = _unary("rsqrt", lambda x: 1 / np.sqrt(x), "libdevice.rsqrt({0})", _g(lambda out: -0.5 * out * out * out),
               save=("out",))
SIN = _unary("sin", np.sin, "tl.sin({0})", _g(lambda x: cos(x)))
COS = _unary("cos", np.cos, "tl.cos({0})", _g(lambda x: -sin(x)))
TAN = _unary("tan", np.tan, "libdevice.tan({0})", _g(lambda out: 1 + out * out), save=("out",))
ASIN = _unary("asin", np.arcsin, "libdevice.asin({0})", _g(lambda x: rsqrt(1 - x * x)))
ACOS = _unary("acos", np.arccos, "libdevice.acos({0})", _g(lambda x: -rsqrt(1 - x * x)))
ATAN = _unary("atan", np.arctan, "libdevice.atan({0})", _g(lambda x: 1 / (1 + x * x)))
SINH = _unary("sinh", np.sinh, "libdevice.sinh({0})", _g(lambda x: cosh(x)))
COSH = _unary("cosh", np.cosh, "libdevice.cosh({0})", _g(lambda x: sinh(x)))
TANH = _unary("tanh", np.tanh, "libdevice.tanh({0})", _g(lambda out: 1 - out * out), save=("out",))


def _np_sigmoid(x):
    # torch's formula, 1 / (1 + exp(-x)): exp(-x) overflows to inf far out on the left, and the
    # result is 0 there (torch's float32 sigmoid(-100) is 0, not the denormal 3.7e-44); float16
    # and bfloat16 compute in float32, as torch's CPU kernels do
    t = np.negative(x, dtype=np.float64 if x.dtype == np.float64 else np.float32)
    if type(t) is not np.ndarray:  # a 0-d input gives a NumPy scalar, which out= cannot write
        t = np.asarray(t)
    np.exp(t, out=t)
    t += 1.0
    np.reciprocal(t, out=t)
    return t if t.dtype == x.dtype else t.astype(x.dtype)


SIGMOID = _unary("sigmoid", _np_sigmoid, "1.0 / (1.0 + tl.exp(-{0}))", _g(lambda out: out * (1 - out)), save=("out",))
RECIPROCAL = _unary("reciprocal", np.reciprocal, "1.0 / {0}", _g(lambda out: -out * out), save=("out",))


def _np_erf(x):
    # NumPy has no erf: a vectorised polynomial fit, within 2 ulps of math.erf (see ops/special.py)
    from .special import erf_np

    return erf_np(x)


ERF = _unary("erf", _np_erf, "libdevice.erf({0})", _g(lambda x: (2 / math.sqrt(math.pi)) * exp(-x * x)))

# ops that keep the input's dtype (integers stay integers)
NEG = _unary("neg", np.negative, "-{0}", lambda ctx, s, g: (-g,), save=(), dtype=_same)
ABS = _unary("abs", np.abs, "tl.abs({0})", _g(lambda x: sign(x)), dtype=_same)
SIGN = _unary("sign", lambda x: x.copy() if x.dtype == np.bool_ else np.where(x != x, 0, np.sign(x)).astype(x.dtype), "({0} > 0).to({ctype}) - ({0} < 0).to({ctype})",
              lambda ctx, s, g: (g * 0.0,), save=(), dtype=_same)
_ZEROS: dict = {}  # NumPy dtype -> its zero: max(x, 0) with a typed zero skips converting the Python 0


def _np_relu(x):
    z = _ZEROS.get(x.dtype)
    if z is None:
        z = _ZEROS[x.dtype] = x.dtype.type(0)
    # (relu(-0.0) is +0.0 here, -0.0 in torch: see _np_clamp for why the zero goes second)
    return np.maximum(x, z)


def _vjp_relu(ctx, saved, g):
    (out,) = saved
    if _dispatch._grad["enabled"] and _dispatch.TRACER[0] is None:
        # create_graph: torch's gradient (threshold_backward) takes the output as an input too, with a
        # zero derivative, so it requires grad and can be differentiated again
        return (where(out > 0, g, out * 0.0),)
    return (g * (out > 0).to(out.dtype),)


RELU = _unary("relu", _np_relu,
              "tl.maximum({0}, 0, propagate_nan=tl.PropagateNan.ALL)",
              _vjp_relu, save=("out",), dtype=_same)
# rounding an integer is the integer itself
FLOOR = _unary("floor", np.floor, {"float": "tl.math.floor({0})", "int": "{0}"}, lambda ctx, s, g: (g * 0.0,), save=(),
               dtype=_same)
CEIL = _unary("ceil", np.ceil, {"float": "tl.math.ceil({0})", "int": "{0}"}, lambda ctx, s, g: (g * 0.0,), save=(),
              dtype=_same)
TRUNC = _unary("trunc", np.trunc, {"float": "libdevice.trunc({0})", "int": "{0}"}, lambda ctx, s, g: (g * 0.0,), save=(),
               dtype=_same)
ROUND = _unary("round", np.round, {"float": "libdevice.nearbyint({0})", "int": "{0}"}, lambda ctx, s, g: (g * 0.0,),
               save=(), dtype=_same)
LOGICAL_NOT = defop("logical_not", "pointwise", np.logical_not, dtype=_bool_result, lowering="{0} == 0")
BITWISE_NOT = defop("bitwise_not", "pointwise", np.invert, dtype=_same, lowering="~{0}")
ISNAN = defop("isnan", "pointwise", np.isnan, dtype=_bool_result, lowering="{0} != {0}")
ISINF = defop("isinf", "pointwise", np.isinf, dtype=_bool_result, lowering="tl.abs({0}) == float('inf')")
ISFINITE = defop("isfinite", "pointwise", np.isfinite, dtype=_bool_result,
                 lowering="tl.abs({0}) < float('inf')")


def _np_cast(x, dtype):
    return x  # the dispatcher's to_storage does the conversion to the output dtype


def _vjp_cast(ctx, saved, g):
    return (g.to(ctx.dtypes[0]),)


CAST = defop("to_copy", "pointwise", _np_cast, dtype=lambda args, attrs: attrs["dtype"], vjp=_vjp_cast,
             lowering="{0}.to({dtype})", grad_name="ToCopyBackward0")


def _vjp_where(ctx, saved, g):
    cond = saved[0]
    z = g * 0.0
    ga = sum_to(where(cond, g, z), ctx.shapes[1]) if ctx.needs[1] else None
    gb = sum_to(where(cond, z, g), ctx.shapes[2]) if len(ctx.shapes) > 2 and ctx.needs[2] else None
    return None, ga, gb


def _np_where(c, a, b):
    return np.where(c, a, b)


WHERE = defop("where", "pointwise", _np_where, vjp=None, save=(0,), lowering="tl.where({0}, {1}, {2})")


def _vjp_where_any(ctx, saved, g):
    # tensor positions among (cond, a, b); scalars do not get gradients
    cond = saved[0]
    z = g * 0.0
    out = [None]
    for pos in (1, 2):
        a = ctx.args[pos]
        if isinstance(a, Tensor):
            out.append(sum_to(where(cond, g, z) if pos == 1 else where(cond, z, g), a.shape))
    return tuple(out)


WHERE.vjp = _vjp_where_any
WHERE.differentiable = True


def _vjp_clamp(ctx, saved, g):
    x = saved[0]
    lo, hi = ctx.attrs["lo"], ctx.attrs["hi"]
    keep = (x >= lo) if lo is not None else None
    if hi is not None:
        k2 = x <= hi
        keep = k2 if keep is None else logical_and(keep, k2)
    return (where(keep, g, g * 0.0),)


def _clamp_lowering(attrs):
    # NaN stays NaN, as in torch.clamp; a missing bound is no bound at all
    nan = ", propagate_nan=tl.PropagateNan.ALL"
    x = "{0}"
    if attrs.get("lo") is not None:
        x = f"tl.maximum({x}, {{lo}}{nan})"
    if attrs.get("hi") is not None:
        x = f"tl.minimum({x}, {{hi}}{nan})"
    return x


def _np_clamp(x, lo=None, hi=None):
    # (one known difference: torch keeps x where it ties with a bound, so -0.0 clamped at 0 stays
    # -0.0; NumPy's vectorised maximum returns the bound. Putting the number first would keep the
    # sign but takes NumPy's scalar loop, twice as slow on large arrays.)
    if lo is not None:
        x = np.maximum(x, lo)
    if hi is not None:
        x = np.minimum(x, hi)
    return x


CLAMP = defop("clamp", "pointwise", _np_clamp, dtype=lambda args, attrs: D.result_type(args[0], *(
    v for v in (attrs["lo"], attrs["hi"]) if v is not None)), cast_inputs=True,
    vjp=_vjp_clamp, save=(0,), lowering=_clamp_lowering, grad_name="ClampBackward1")


# ---- public functions ------------------------------------------------------------
def _scalar_ok(x):
    return isinstance(x, (int, float, bool, np.number, np.bool_))


def _check(a, b):
    ta, tb = isinstance(a, Tensor), isinstance(b, Tensor)
    if ta and tb:
        if a._data.shape != b._data.shape:
            broadcast_shapes(a._data.shape, b._data.shape)
    elif not ta and not tb:
        raise TypeError(f"expected Tensor as element 0 in argument 0, but got {type(a).__name__}")
    elif not (ta or _scalar_ok(a)) or not (tb or _scalar_ok(b)):
        bad = b if ta else a
        raise TypeError(f"unsupported operand type(s): '{type(bad).__name__}' for a tensor operation")


def _binary(op, a, b, attrs=None):
    if attrs is None and isinstance(a, Tensor):
        return binary(op, a, b)
    if not isinstance(a, Tensor) and not isinstance(b, Tensor):
        a = _as_tensor(a)
    _check(a, b)
    return apply(op, (a, b), attrs or {})


def _checked_binary(op, a, b):
    _check(a, b)
    if op is SUB:
        _check_sub(a, b)
    return apply(op, (a, b))


def _is_bool(x) -> bool:
    return type(x) is bool or getattr(x, "dtype", None) is D.bool_


def _check_sub(a, b) -> None:
    """torch refuses `-` with a bool operand (a Python bool counts as a bool tensor)."""
    if _is_bool(a) and _is_bool(b):
        raise RuntimeError("Subtraction, the `-` operator, with two bool tensors is not supported. "
                           "Use the `^` or `logical_xor()` operator instead.")
    if _is_bool(a) or _is_bool(b):
        raise RuntimeError("Subtraction, the `-` operator, with a bool tensor is not supported. If you are trying "
                           "to invert a mask, use the `~` or `logical_not()` operator instead.")


def _no_bool(kernel: str, a, b) -> None:
    """Division-like kernels have no bool version (an int operand promotes them away from bool)."""
    if isinstance(a, Tensor) or isinstance(b, Tensor):
        dt = D.result_type(a, b)
        if dt is D.bool_:
            _refuse(kernel, dt)


def _ints_only(kernel: str, a, b) -> None:
    dt = D.result_type(a, b)
    if dt.is_floating_point:
        _refuse(kernel, dt)


_dispatch.SLOW_BINARY[0] = _checked_binary


def _sub_checked(a, b):
    _check_sub(a, b)
    return binary(SUB, a, b)


def fast_binary_method(op, fallback=None):
    """`Tensor.__add__` and friends: the dispatcher's one-frame operator, which hands what it
    does not cover to `fallback` (by default the checked binary path)."""
    if fallback is None:
        fallback = _sub_checked if op is SUB else (lambda a, b: binary(op, a, b))
    return _dispatch.binary_method(op, fallback)


_ADD_OPERATOR, _MUL_OPERATOR = fast_binary_method(ADD), fast_binary_method(MUL)


def _as_tensor(x):
    from ..creation import tensor

    return tensor(x)


def _with_alpha(op, input, other, alpha):
    """input (op) alpha * other, in the dtype of input (op) other: alpha never promotes."""
    dt = D.result_type(input, other)
    if dt.category == D._INT and isinstance(alpha, float):
        raise RuntimeError("For integral input tensors, argument alpha must not be a floating point number.")
    r = _binary(op, input, other * alpha)
    return r if r.dtype is dt else r.to(dt)


def add(input, other, *, alpha=1, out=None):
    if alpha == 1 and out is None and isinstance(input, Tensor):
        return _ADD_OPERATOR(input, other)
    if alpha != 1:  # one AddBackward0 node over (input, other), as in torch
        return _out(out, composite("AddBackward0", lambda a, b: _with_alpha(ADD, a, b, alpha), input, other,
                                   torch_args=(0, 1)))
    return _out(out, _binary(ADD, input, other))


def sub(input, other, *, alpha=1, out=None):
    _check_sub(input, other)
    if alpha != 1:  # one SubBackward0 node over (input, other), as in torch
        return _out(out, composite("SubBackward0", lambda a, b: _with_alpha(SUB, a, b, alpha), input, other,
                                   torch_args=(0, 1)))
    return _out(out, _binary(SUB, input, other))


subtract = sub


def rsub(input, other, *, alpha=1):
    _check_sub(input, other)
    if alpha != 1:
        input = input * alpha
    return _binary(SUB, other, input, {"rsub": True})


def mul(input, other, *, out=None):
    if out is None and isinstance(input, Tensor):
        return _MUL_OPERATOR(input, other)
    r = _binary(MUL, input, other)
    return _out(out, r)


multiply = mul


def div(input, other, *, rounding_mode=None, out=None):
    if rounding_mode is None:
        r = _binary(DIV, input, other)
    elif rounding_mode == "floor":
        _no_bool("div_floor_cpu", input, other)
        r = _binary(FLOOR_DIVIDE, input, other)
    elif rounding_mode == "trunc":
        _no_bool("div_trunc_cpu", input, other)
        r = _binary(TRUNC_DIVIDE, input, other)
    else:
        raise RuntimeError(f"div expected rounding_mode to be one of None, 'trunc', or 'floor' but found '{rounding_mode}'")
    return _out(out, r)


divide = div


def true_divide(input, other, *, out=None):
    return div(input, other, out=out)


def floor_divide(input, other, *, out=None):
    _no_bool("div_floor_cpu", input, other)
    return _out(out, _binary(FLOOR_DIVIDE, input, other))


def remainder(input, other, *, out=None):
    _no_bool("remainder_cpu", input, other)
    return _out(out, _binary(REMAINDER, input, other))


def fmod(input, other, *, out=None):
    _no_bool("fmod_cpu", input, other)
    return _out(out, _binary(FMOD, input, other))


def atan2(input, other, *, out=None):
    _tensor_arg("atan2", other)
    return _out(out, _binary(ATAN2, input, other))


arctan2 = atan2


_HALF_MAX = {D.float16: 65504.0, D.bfloat16: 3.3895313892515355e38}  # torch checks pow's exponent fits
_tn_half = {D.float16: "c10::Half", D.bfloat16: "c10::BFloat16"}
_POW_TENSOR_SCALAR = {"form": 0}  # shared by the nodes the fast path records: never written to
_POW_FAST = (D.float32, D.float64)


def pow(input, exponent, *, out=None):
    te = type(exponent)
    res = None
    if (te is float or te is int) and out is None and _dispatch.TRACER[0] is None and isinstance(input, Tensor) \
            and input.dtype in _POW_FAST:
        # x ** 2 on a float tensor: the dtype is the input's, nothing to check
        try:
            res = _dispatch.quiet_call(np.power, input._data, exponent)
        except OnDevice:
            res = None  # a CUDA tensor: the general path below hands it to the device
    if res is not None:
        if type(res) is not np.ndarray:  # (a 0-d input gives a NumPy scalar)
            res = np.asarray(res)
        elif res.ndim > 1 and res.strides != input._data.strides:
            res = _dispatch._match_layout(res, (input,))
        r = Tensor._make(res, input.dtype)
        if input._requires_grad and _dispatch._grad["enabled"]:
            _dispatch._record_grad(POW, (input, exponent), _POW_TENSOR_SCALAR, (r,))
        return r
    if isinstance(input, Tensor) and not isinstance(exponent, Tensor):
        form = 0
        if input.dtype.category <= D._INT and isinstance(exponent, int) and exponent < 0:
            raise RuntimeError("Integers to negative integer powers are not allowed.")
        if input.dtype.category == D._INT and isinstance(exponent, int):  # int8 ** 300: torch's overflow error
            D.check_scalar_fits(exponent, input.dtype)
        if input.dtype.itemsize == 2 and input.dtype.is_floating_point and isinstance(exponent, (int, float)) \
                and math.isfinite(exponent) and not -_HALF_MAX[input.dtype] <= exponent <= _HALF_MAX[input.dtype]:
            raise RuntimeError(f"value cannot be converted to type {_tn_half[input.dtype]} without overflow")
    else:
        form = 2 if not isinstance(input, Tensor) else 1
    _check(input, exponent)
    if form:  # (bool_tensor ** True stays bool in torch, but True ** bool_tensor has no kernel)
        _no_bool("pow", input, exponent)
    r = apply(POW, (input, exponent), {"form": form})
    if form == 2 and not r._data.flags.c_contiguous:
        # torch's pow(Scalar, Tensor) returns a row-major result whatever the exponent's layout;
        # r is brand new, so swapping its array is invisible to anyone else
        r._data = np.ascontiguousarray(r._data)
    return _out(out, r)


def _tensor_arg(name: str, other) -> None:
    """Ops whose `other` must be a tensor in torch (a Python number is a TypeError there)."""
    if not isinstance(other, Tensor):
        raise TypeError(f"{name}(): argument 'other' (position 2) must be Tensor, not {type(other).__name__}")


def maximum(input, other, *, out=None):
    _tensor_arg("maximum", other)
    return _out(out, _binary(MAXIMUM, input, other, {"is_max": True}))


def minimum(input, other, *, out=None):
    _tensor_arg("minimum", other)
    return _out(out, _binary(MINIMUM, input, other, {"is_max": False}))


def _fmaxmin(name, input, other, out, is_max):
    # NaN loses to a number (maximum propagates it), and the gradient goes to input wherever it is
    # chosen, ties included (torch's fmax/fmin rule; maximum splits ties): a where() gives both
    _tensor_arg(name, other)

    def pick(a, b):
        return where(logical_or(a >= b if is_max else a <= b, isnan(b)), a, b)

    _check(input, other)
    return _out(out, composite(name.capitalize() + "Backward0", pick, input, other))


def fmax(input, other, *, out=None):
    return _fmaxmin("fmax", input, other, out, True)


def fmin(input, other, *, out=None):
    return _fmaxmin("fmin", input, other, out, False)


def _cmp(name):
    op = _CMP[name]

    def f(input, other, *, out=None):
        if name.startswith("logical"):
            _tensor_arg(name, other)
        if not isinstance(input, Tensor):
            input = _as_tensor(input)
        _check(input, other)
        r = apply(op, (input, other), compute=D.result_type(input, other))
        return _out(out, r)

    f.__name__ = name
    f.__doc__ = f"Elementwise `{name}`, with broadcasting; the result is a bool tensor."
    return f


eq, ne, lt, le, gt, ge = (_cmp(n) for n in ("eq", "ne", "lt", "le", "gt", "ge"))
greater, greater_equal, less, less_equal, not_equal = gt, ge, lt, le, ne
logical_and, logical_or, logical_xor = (_cmp(n) for n in ("logical_and", "logical_or", "logical_xor"))


def bitwise_and(input, other, *, out=None):
    _ints_only("bitwise_and_cpu", input, other)
    return _out(out, _binary(BITWISE_AND, input, other))


def bitwise_or(input, other, *, out=None):
    _ints_only("bitwise_or_cpu", input, other)
    return _out(out, _binary(BITWISE_OR, input, other))


def bitwise_xor(input, other, *, out=None):
    _ints_only("bitwise_xor_cpu", input, other)
    return _out(out, _binary(BITWISE_XOR, input, other))


def equal(input, other) -> bool:
    return input.shape == other.shape and bool(eq(input, other).all())


def isclose(input, other, rtol=1e-05, atol=1e-08, equal_nan=False):
    """|input - other| <= atol + rtol * |other|, elementwise; composite over primitives, as torch
    writes it: equal values (infinities included) are close."""
    _tensor_arg("isclose", other)
    if input.dtype is not other.dtype:
        raise RuntimeError(f"{input.dtype.short} did not match {other.dtype.short}")
    if rtol < 0:
        raise RuntimeError(f"rtol must be greater than or equal to zero, but got {rtol:g}")
    if atol < 0:
        raise RuntimeError(f"atol must be greater than or equal to zero, but got {atol:g}")
    close = eq(input, other)
    if equal_nan and input.dtype.is_floating_point:
        close = logical_or(close, logical_and(isnan(input), isnan(other)))
    if rtol == 0 and atol == 0:
        return close
    # integer and bool inputs compare in the dtype of rtol * other (the default float): an unsigned
    # difference must not wrap around (uint8 1 - 2 is 255 in the input dtype)
    a, b = (x if x.dtype.is_floating_point else x.to(D.get_default_dtype()) for x in (input, other))
    allowed = add(abs(mul(b, rtol)), atol)
    actual = abs(sub(a, b))
    return logical_or(close, logical_and(isfinite(actual), le(actual, allowed)))


def allclose(input, other, rtol=1e-05, atol=1e-08, equal_nan=False) -> bool:
    return bool(isclose(input, other, rtol, atol, equal_nan).all())


def _refuse_bool(kernel):
    def check(dt):
        if dt is D.bool_:
            _refuse(kernel, dt)

    return check


def _refuse_float(kernel):
    def check(dt):
        if dt.is_floating_point:
            _refuse(kernel, dt)

    return check


def _neg_check(dt):
    if dt is D.bool_:
        raise RuntimeError("Negation, the `-` operator, on a bool tensor is not supported. If you are trying to "
                           "invert a mask, use the `~` or `logical_not()` operator instead.")


def _relu_check(dt):
    if dt is D.bool_:
        raise RuntimeError("Boolean inputs not supported for relu")


# the input dtypes torch has no kernel for, per unary op
_UNARY_CHECKS = {"neg": _neg_check, "relu": _relu_check, "abs": _refuse_bool("abs_cpu"),
                 "floor": _refuse_bool("floor_vml_cpu"), "ceil": _refuse_bool("ceil_vml_cpu"),
                 "trunc": _refuse_bool("trunc_vml_cpu"), "round": _refuse_bool("round_vml_cpu"),
                 "bitwise_not": _refuse_float("bitwise_not_cpu")}


def _out_exact(out, r):
    """out= for ops whose result keeps the input's dtype: torch wants out of exactly that dtype."""
    if out is not None and out.dtype is not r.dtype:
        raise RuntimeError(f"Found dtype {out.dtype.short} but expected {r.dtype.short}")
    return _out(out, r)


def _un(op, check_float=False):
    check = _UNARY_CHECKS.get(op.name)
    write = _out_exact if op.dtype is _same else _out

    def f(input, *, out=None):
        if not isinstance(input, Tensor):
            raise TypeError(f"{op.name}(): argument 'input' (position 1) must be Tensor, not {type(input).__name__}")
        if check is not None:
            check(input.dtype)
        return write(out, apply(op, (input,)))

    f.__name__ = op.name
    f.__doc__ = f"Elementwise `{op.name}`."
    return _dispatch.unary_function(op, f, check)


exp, exp2, expm1, log, log2, log10, log1p = (_un(o) for o in (EXP, EXP2, EXPM1, LOG, LOG2, LOG10, LOG1P))
sqrt, rsqrt, sin, cos, tan, tanh, sigmoid = (_un(o) for o in (SQRT, RSQRT, SIN, COS, TAN, TANH, SIGMOID))
asin, acos, atan, sinh, cosh, erf = (_un(o) for o in (ASIN, ACOS, ATAN, SINH, COSH, ERF))
arcsin, arccos, arctan = asin, acos, atan
neg, abs, sign, relu, floor, ceil, trunc = (_un(o) for o in (NEG, ABS, SIGN, RELU, FLOOR, CEIL, TRUNC))
negative, absolute, fix = neg, abs, trunc
reciprocal = _un(RECIPROCAL)
logical_not, bitwise_not = _un(LOGICAL_NOT), _un(BITWISE_NOT)
isnan, isinf, isfinite = _un(ISNAN), _un(ISINF), _un(ISFINITE)


def round(input, *, decimals: int = 0, out=None):
    if decimals:
        if not input.dtype.is_floating_point:
            _refuse("round_cpu", input.dtype)
        def scaled_round(t):
            # torch scales in float32 for half and bfloat16 and rounds to the dtype once, at the end
            x = t.float() if t.dtype.itemsize == 2 else t
            r = apply(ROUND, (x * 10.0 ** decimals,)) / 10.0 ** decimals if decimals > 0 else \
                apply(ROUND, (x / 10.0 ** -decimals,)) * 10.0 ** -decimals
            return r.to(t.dtype)

        return _out_exact(out, composite("RoundBackward1", scaled_round, input))  # one node, as in torch
    _UNARY_CHECKS["round"](input.dtype)
    return _out_exact(out, apply(ROUND, (input,)))


def square(input, *, out=None):
    return _out(out, pow(input, 2))


def frac(input, *, out=None):
    if not input.dtype.is_floating_point:
        _refuse("frac_cpu", input.dtype)
    return _out_exact(out, composite("FracBackward0", lambda t: t - trunc(t), input))  # one node, as in torch


def clamp(input, min=None, max=None, *, out=None):
    if min is None and max is None:
        raise RuntimeError("torch.clamp: At least one of 'min' or 'max' must not be None")
    if isinstance(min, Tensor) or isinstance(max, Tensor):
        def bounded(x, lo, hi):
            r = x
            if lo is not None:
                r = maximum(r, lo)
            if hi is not None:
                r = minimum(r, hi)
            return r

        def grads(saved, g):
            # torch's rule (clamp_backward_min_max): x gets g where min <= x <= max, a bound where x is
            # strictly past it; nothing is split at ties (maximum/minimum's half-and-half would be)
            it = iter(saved)
            x, lo, hi = (next(it) if isinstance(a, Tensor) else a for a in (input, min, max))
            ge = None if lo is None else x >= lo
            le = None if hi is None else x <= hi
            keep = ge if le is None else le if ge is None else logical_and(ge, le)
            res = [sum_to(where(keep, g, 0.0), x.shape)]
            both_ = lo is not None and hi is not None
            # (NaN is past neither bound; with min > max the result is max, so max gets the gradient)
            past = {0: lambda: logical_and(x < lo, lo < hi) if both_ else x < lo,
                    1: lambda: logical_or(x > hi, hi < lo) if both_ else x > hi}
            for k, b in enumerate((lo, hi)):
                if isinstance(b, Tensor):
                    res.append(sum_to(where(past[k](), g, 0.0), b.shape) if b._requires_grad else None)
            return res

        return _out(out, composite("ClampBackward0", bounded, input, min, max, torch_args=(0, 1, 2),
                                   grads=grads))
    lo, hi = min, max
    dt = D.result_type(input, *(v for v in (min, max) if v is not None))
    if dt is input.dtype:  # bounds that do not promote must fit the tensor's dtype (300 for int8, 1e5 for half)
        if dt is D.bool_:  # torch has no bool clamp kernel
            _refuse("clamp_scalar_cpu" if min is not None and max is not None else
                    "clamp_min_scalar_cpu" if min is not None else "clamp_max_scalar_cpu", dt)
        for v in (min, max):
            if v is not None:
                D.check_scalar_fits(v, dt)
    if dt.category == D._INT:  # bounds in range now; negative ones wrap for unsigned types, as in torch
        lo = None if min is None else D.wrap_int(int(min), dt)
        hi = None if max is None else D.wrap_int(int(max), dt)
    return _out_exact(out, apply(CLAMP, (input,), {"lo": lo, "hi": hi}, dtype=dt))


clip = clamp


def clamp_min(input, min):
    if not isinstance(min, Tensor):  # torch names this node ClampMinBackward0
        return apply(CLAMP, (input,), {"lo": min, "hi": None, "name": "ClampMinBackward0"})
    return clamp(input, min=min)


def clamp_max(input, max):
    if not isinstance(max, Tensor):
        return apply(CLAMP, (input,), {"lo": None, "hi": max, "name": "ClampMaxBackward0"})
    return clamp(input, max=max)


def where(condition, input=None, other=None):
    if input is None and other is None:
        from .index import nonzero

        return nonzero(condition, as_tuple=True)
    if not isinstance(condition, Tensor) or condition.dtype is not D.bool_:
        if isinstance(condition, Tensor) and condition.dtype is D.uint8:
            condition = condition.to(D.bool_)
        else:
            raise RuntimeError(f"where expected condition to be a boolean tensor, but got a tensor with dtype "
                               f"{condition.dtype.short if isinstance(condition, Tensor) else type(condition).__name__}")
    shapes = [x._data.shape for x in (condition, input, other) if isinstance(x, Tensor)]
    broadcast_shapes(*shapes)
    dt = D.result_type(*(x for x in (input, other)))
    if dt.category == D._INT:  # a Python number must fit an integer result (300 with int8); floats just round
        for x in (input, other):
            if not isinstance(x, Tensor):
                D.check_scalar_fits(x, dt)
    return _where(condition, input, other, dt)


def _where(c, a, b, dt):
    a2 = a.to(dt) if isinstance(a, Tensor) and a.dtype is not dt else a
    b2 = b.to(dt) if isinstance(b, Tensor) and b.dtype is not dt else b
    return apply(WHERE, (c, a2, b2), dtype=dt)


def lerp(input, end, weight, *, out=None):
    """input + weight * (end - input), with torch's two-sided formula (exact at weight 0 and 1)
    computed in float32 for half and bfloat16, rounding once."""
    wt = isinstance(weight, Tensor)
    # torch's order: the dtype checks, then the kernel's dtype refusal; a 0-d weight binds to the
    # Scalar overload, so only a weight with dims must share the input's dtype
    if end.dtype is not input.dtype:
        raise RuntimeError(f"expected dtype {_c_name(input.dtype)} for `end` but got dtype {_c_name(end.dtype)}")
    if wt and weight.ndim and weight.dtype is not input.dtype:
        raise RuntimeError(f"expected dtype {_c_name(input.dtype)} for `weight` but got dtype {_c_name(weight.dtype)}")
    if wt:  # the result dtype promotes over all three (a 0-d float64 weight lifts 0-d float32 ends to float64)
        dt = D.result_type(input, end, weight)
        if dt is not input.dtype:
            input, end = input.to(dt), end.to(dt)
    if not input.dtype.is_floating_point:
        _refuse("lerp_kernel_tensor" if wt else "lerp_kernel_scalar", input.dtype)
    # one node, as torch's lerp kernel (LerpBackward0/1); its backward differentiates _lerp
    r = composite("LerpBackward1" if wt else "LerpBackward0", _lerp, input, end, weight)
    return _out(out, r)


def _lerp(input, end, weight):
    wt = isinstance(weight, Tensor)
    low = input.dtype.itemsize == 2
    a, b = (input.float(), end.float()) if low else (input, end)
    w = weight.to(a.dtype) if wt and weight.dtype is not a.dtype else weight
    diff = b - a
    if wt:
        r = where(w.abs() < 0.5, a + w * diff, b - diff * (1 - w))
    else:  # the weight in the compute dtype, so 1 - w rounds as torch's does
        w = np.asarray(w, dtype=D.compute_np(a.dtype))
        r = a + float(w) * diff if np.abs(w) < 0.5 else b - diff * float(np.subtract(1, w, dtype=w.dtype))
    return r.to(input.dtype) if low else r


def _c_name(dt: D.DType) -> str:
    """The C++ type name torch uses in some messages ('float', 'double', 'c10::Half')."""
    return {"float32": "float", "float64": "double", "float16": "c10::Half", "bfloat16": "c10::BFloat16",
            "int64": "long int", "int32": "int", "int16": "short int", "int8": "signed char",
            "uint8": "unsigned char", "bool": "bool"}[dt.name]


def to_dtype(x: Tensor, dtype: D.DType) -> Tensor:
    return apply(CAST, (x,), {"dtype": dtype})


# ---- autograd: how torch lists these ops' inputs and names their nodes -----------------------
# A Python number operand of add/sub/mul/div is wrapped into a tensor by torch, so it shows up
# in next_functions as (None, 0); `rsub` takes it as a Scalar and does not list it.
for _op in (ADD, MUL, DIV):
    _op.edges = (0, 1)
# torch saves only what the formulas read (and counts a Python number operand as saved)
MUL.save = save_if((0, (1,)), (1, (0,)))
DIV.save = save_if((0, (1,)), (1, (0, 1)))
SUB.edges = lambda args, attrs: (1,) if attrs.get("rsub") else (0, 1)
WHERE.edges = (1, 2)  # the condition is not differentiable, so torch does not list it
CLAMP.grad_name = lambda attrs: attrs.get("name", "ClampBackward1")
REMAINDER.grad_name = name_by_args(lambda attrs, args: "RemainderBackward1" if isinstance(args[1], Tensor)
                                   else "RemainderBackward0")
FMOD.grad_name = name_by_args(lambda attrs, args: "FmodBackward1" if isinstance(args[1], Tensor)
                              else "FmodBackward0")


# ---- autograd: fused backward ops -------------------------------------------------------------
# A unary op's vjp is `g * f'(x or out)`, a few ops when written with tracegrad ops. During an
# ordinary backward (grad mode off) each of those would pay the dispatcher once, so the common
# rules also exist as one backward primitive each, like torch's tanh_backward/sigmoid_backward:
# NumPy formula (torch's own, for the same rounding) and Triton lowering, over (g, saved).
# With grad mode on (create_graph=True, a double backward) the rule's op-by-op form runs
# instead, so the backward is itself recorded and differentiable.
def _fuse_backward(op, np_fn, lowering):
    composite = op.vjp
    bop = defop(op.name + "_backward", "pointwise", np_fn, dtype=lambda args, attrs: args[0].dtype,
                cast_inputs=True, lowering=lowering, quiet=True)
    grad_state = _dispatch._grad

    def vjp(ctx, saved, g):
        if grad_state["enabled"]:
            return composite(ctx, saved, g)
        return (apply(bop, (g,) + tuple(saved)),)

    vjp.__doc__ = f"{op.name}'s vjp: one `{bop.name}` op, or {composite.__name__} when recording."
    op.vjp = vjp
    return bop


def _relu_backward_np(g, out):
    """g where out > 0, else +0 (torch's threshold_backward). Multiplying by the mask is ~10x faster
    than np.where; `+= 0.0` turns the -0.0 of a negative g times False into +0.0, and a non-finite g
    (inf * 0 is nan, where torch gives 0) takes the np.where path."""
    r = g * (out > 0)
    r += 0.0
    if not np.isfinite(g).all():
        r = np.where(out > 0, g, 0).astype(g.dtype, copy=False)
    return r


_LN2, _LN10, _2_SQRTPI = math.log(2.0), math.log(10.0), 2.0 / math.sqrt(math.pi)
_FUSED = [  # op, NumPy (g, saved), Triton ({0} = g, {1} = saved)
    (EXP2, lambda g, out: g * out * _LN2, "{0} * {1} * 0.6931471805599453"),
    (EXPM1, lambda g, out: g * (out + 1), "{0} * ({1} + 1)"),
    (LOG, lambda g, x: g / x, "{0} / {1}"),
    (LOG2, lambda g, x: g / (x * _LN2), "{0} / ({1} * 0.6931471805599453)"),
    (LOG10, lambda g, x: g / (x * _LN10), "{0} / ({1} * 2.302585092994046)"),
    (LOG1P, lambda g, x: g / (x + 1), "{0} / ({1} + 1)"),
    (SQRT, lambda g, out: g / (2 * out), "{0} / (2 * {1})"),
    (RSQRT, lambda g, out: -0.5 * g * out * out * out, "-0.5 * {0} * {1} * {1} * {1}"),
    (SIN, lambda g, x: g * np.cos(x), "{0} * tl.cos({1})"),
    (COS, lambda g, x: g * -np.sin(x), "{0} * -tl.sin({1})"),
    (TAN, lambda g, out: g * (1 + out * out), "{0} * (1 + {1} * {1})"),
    (ASIN, lambda g, x: g / np.sqrt(1 - x * x), "{0} * libdevice.rsqrt(1 - {1} * {1})"),
    (ACOS, lambda g, x: -g / np.sqrt(1 - x * x), "-{0} * libdevice.rsqrt(1 - {1} * {1})"),
    (ATAN, lambda g, x: g / (x * x + 1), "{0} / ({1} * {1} + 1)"),
    (SINH, lambda g, x: g * np.cosh(x), "{0} * libdevice.cosh({1})"),
    (COSH, lambda g, x: g * np.sinh(x), "{0} * libdevice.sinh({1})"),
    (TANH, lambda g, out: g * (1 - out * out), "{0} * (1 - {1} * {1})"),
    (SIGMOID, lambda g, out: g * (1 - out) * out, "{0} * (1 - {1}) * {1}"),
    (RECIPROCAL, lambda g, out: -g * (out * out), "-{0} * ({1} * {1})"),
    (ERF, lambda g, x: _2_SQRTPI * np.exp(-(x * x)) * g, "1.1283791670955126 * tl.exp(-({1} * {1})) * {0}"),
    (ABS, lambda g, x: g * np.sign(x), "{0} * tl.where({1} > 0, 1, tl.where({1} < 0, -1, 0))"),
    (RELU, lambda g, out: _relu_backward_np(g, out), "tl.where({1} > 0, {0}, 0)"),
]
FUSED_BACKWARD = {op.name: _fuse_backward(op, f, low) for op, f, low in _FUSED}
