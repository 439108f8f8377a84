"""dtypes and torch's type promotion.

A `DType` names a torch dtype and the NumPy dtype that stores it. NumPy has no
bfloat16, so bfloat16 tensors keep their raw bits in uint16 arrays and are widened
to float32 to compute (then rounded back), the way CPUs without bf16 units do it.

Promotion follows torch: categories bool < integer < float < complex; inside a
category a dimensioned tensor beats a 0-dim tensor, which beats a Python scalar;
a higher category that only a scalar (or 0-dim) brings promotes to that
category's default (float -> the default dtype, int -> int64)."""
from __future__ import annotations

from builtins import type as builtins_type

import numpy as np

_BOOL, _INT, _FLOAT = 0, 1, 2


class DType:
    __slots__ = ("name", "np", "itemsize", "category", "is_signed", "_rank", "short")

    def __init__(self, name: str, np_dtype, category: int, rank: int, short: str, signed: bool = True):
        self.name = name
        self.np = np.dtype(np_dtype)
        self.itemsize = self.np.itemsize
        self.category = category
        self.is_signed = signed
        self._rank = rank  # position in torch's promotion lattice
        self.short = short  # 'Float' in 'torch.FloatTensor', 'Long' in error messages

    @property
    def is_floating_point(self) -> bool:
        return self.category == _FLOAT

    @property
    def is_complex(self) -> bool:
        return False

    def __repr__(self) -> str:
        return "tracegrad." + self.name

    def to_real(self) -> "DType":
        return self

    def __reduce__(self):
        return (_by_name, (self.name,))


bool_ = DType("bool", np.bool_, _BOOL, 0, "Bool", signed=False)
uint8 = DType("uint8", np.uint8, _INT, 1, "Byte", signed=False)
int8 = DType("int8", np.int8, _INT, 2, "Char")
int16 = DType("int16", np.int16, _INT, 3, "Short")
int32 = DType("int32", np.int32, _INT, 4, "Int")
int64 = DType("int64", np.int64, _INT, 5, "Long")
float16 = DType("float16", np.float16, _FLOAT, 6, "Half")
bfloat16 = DType("bfloat16", np.uint16, _FLOAT, 7, "BFloat16")
float32 = DType("float32", np.float32, _FLOAT, 8, "Float")
float64 = DType("float64", np.float64, _FLOAT, 9, "Double")

ALL = (bool_, uint8, int8, int16, int32, int64, float16, bfloat16, float32, float64)
_NAMES = {d.name: d for d in ALL}
_FROM_NP = {d.np: d for d in ALL if d is not bfloat16}


def _by_name(name: str) -> DType:
    return _NAMES[name]


_default = [float32]


def get_default_dtype() -> DType:
    return _default[0]


def set_default_dtype(d: DType) -> None:
    if d not in (float16, bfloat16, float32, float64):
        raise TypeError("only floating-point types are supported as the default type")
    _default[0] = d
    import sys

    dispatch = sys.modules.get("tracegrad.dispatch")
    if dispatch is not None:  # its cache of result dtypes depends on the default dtype
        dispatch._DTYPE_CACHE.clear()


def from_numpy_dtype(npd) -> DType:
    npd = np.dtype(npd)
    try:
        return _FROM_NP[npd]
    except KeyError:
        raise TypeError(
            f"can't convert np.ndarray of type numpy.{npd.name}. The only supported types are: "
            "float64, float32, float16, complex64, complex128, int64, int32, int16, int8, uint8, and bool."
        ) from None


def compute_np(d: DType) -> np.dtype:
    """The NumPy dtype arithmetic on `d` runs in."""
    return np.dtype(np.float32) if d is bfloat16 else d.np


# --- promotion between two dtypes (torch.promote_types) ---
def _promote2(a: DType, b: DType) -> DType:
    if a is b:
        return a
    if a.category != b.category:
        return a if a.category > b.category else b
    if a.category == _INT:
        # uint8 with a signed type needs a wider signed type
        if a is uint8 or b is uint8:
            other = b if a is uint8 else a
            return int16 if other is int8 else other
        return a if a._rank > b._rank else b
    if a.category == _FLOAT:
        if {a, b} == {float16, bfloat16}:
            return float32
        return a if a._rank > b._rank else b
    return a


def promote_types(a: DType, b: DType) -> DType:
    return _promote2(a, b)


def scalar_dtype(x) -> DType:
    """The dtype a Python scalar gets when it becomes a tensor."""
    if isinstance(x, (bool, np.bool_)):
        return bool_
    if isinstance(x, (int, np.integer)):
        return int64
    return get_default_dtype()


def _scalar_category(x) -> int:
    if isinstance(x, (bool, np.bool_)):
        return _BOOL
    if isinstance(x, (int, np.integer)):
        return _INT
    return _FLOAT


def result_type(*operands) -> DType:
    """torch.result_type over tensors and Python scalars.

    Three tiers: tensors with dims, 0-dim tensors, Python scalars. The answer is
    the promotion of the highest non-empty tier, lifted to a higher category if a
    lower tier has one (to the default dtype of that category)."""
    dim_t = zero_t = None
    scalar_cat = -1
    for o in operands:
        dt = getattr(o, "dtype", None)
        if isinstance(dt, DType):
            if o.ndim:
                dim_t = dt if dim_t is None else _promote2(dim_t, dt)
            else:
                zero_t = dt if zero_t is None else _promote2(zero_t, dt)
        elif o is not None:
            scalar_cat = max(scalar_cat, _scalar_category(o))
    res = dim_t
    if zero_t is not None:
        if res is None:
            res = zero_t
        elif zero_t.category > res.category:
            res = zero_t
    if scalar_cat >= 0:
        if res is None:
            res = {_BOOL: bool_, _INT: int64, _FLOAT: get_default_dtype()}[scalar_cat]
        elif scalar_cat > res.category:
            res = {_INT: int64, _FLOAT: get_default_dtype()}[scalar_cat]
    return res


def can_cast(src: DType, dst: DType) -> bool:
    """torch.can_cast for in-place results: a category may not go down."""
    return src.category <= dst.category


# --- Python ints meeting integer tensors ---
_INT_BOUNDS = {d: (int(np.iinfo(d.np).min), int(np.iinfo(d.np).max)) for d in (uint8, int8, int16, int32, int64)}
# the C++ type names torch's "value cannot be converted to type ... without overflow" uses
_CTYPE = {uint8: "uint8_t", int8: "int8_t", int16: "int16_t", int32: "int", int64: "int64_t",
          float16: "c10::Half", bfloat16: "c10::BFloat16", float32: "float", float64: "double"}
_FLOAT_MAX = {float16: 65504.0, bfloat16: 3.3895313892515355e38, float32: 3.4028234663852886e38}


def wrap_int(value: int, dt: DType):
    """A Python int as torch's arithmetic sees it in integer dtype `dt`: wrapped modulo 2**bits
    (`uint8_tensor + -1` adds 255). NumPy 2 refuses such values, so out-of-range ones are wrapped here."""
    bounds = _INT_BOUNDS.get(dt)
    if bounds is None or bounds[0] <= value <= bounds[1]:
        return value
    return np.array(value % (1 << 64), dtype=np.uint64).astype(dt.np)[()]


def check_scalar_fits(value, dt: DType, numel: int | None = None) -> None:
    """torch's checked conversion of a Python scalar into dtype `dt` (c10's `overflows`), which fill_,
    masked_fill, full, clamp, where and friends apply to their scalar argument (binary arithmetic wraps
    instead). Integers: in range, or for unsigned types a negative value whose magnitude is in range
    (it wraps: -1 fills a uint8 with 255). Floats into integers: the real value in range (127.5 does
    not fit int8), never inf or nan. Into float16/bfloat16/float32: within the largest finite value,
    inf and nan always fit. `numel`: the size of the tensor a fill writes; torch fills a one-element
    tensor through a path that converts to float16/bfloat16 unchecked (1e5 becomes inf there)."""
    if numel == 1 and dt in (float16, bfloat16):
        return
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.number)) or dt is bool_:
        return
    bounds = _INT_BOUNDS.get(dt)
    if bounds is not None:
        lo, hi = bounds
        if isinstance(value, (float, np.floating)):
            bad = not np.isfinite(value) or value < lo or value > hi
        else:
            v = int(value)
            bad = v > hi or (v < -hi if lo == 0 else v < lo)
    elif dt in _FLOAT_MAX:
        bad = not (isinstance(value, (float, np.floating)) and not np.isfinite(value)) and abs(value) > _FLOAT_MAX[dt]
    else:
        return
    if bad:
        raise RuntimeError(f"value cannot be converted to type {_CTYPE[dt]} without overflow")


# --- finfo / iinfo: the numeric limits of a dtype, as torch.finfo / torch.iinfo give them ---
# bfloat16 has no NumPy type: its limits are float32's exponent range with an 8-bit significand
_BF16_INFO = {"bits": 16, "eps": 0.0078125, "max": 3.3895313892515355e+38, "tiny": 1.1754943508222875e-38,
              "resolution": 0.01}


class finfo:
    """Limits of a floating dtype (the default dtype when none is given)."""

    def __init__(self, *args):
        if len(args) > 1:
            raise TypeError(f"finfo() takes at most 1 argument ({len(args)} given)")
        type = args[0] if args else get_default_dtype()  # finfo() is the default dtype's; finfo(None) refused
        if not isinstance(type, DType):
            raise TypeError(f"finfo(): argument 'type' (position 1) must be torch.dtype, not "
                            f"{builtins_type(type).__name__}")
        if not type.is_floating_point:
            raise TypeError("torch.finfo() requires a floating point input type. Use torch.iinfo to handle "
                            "'torch.finfo'")
        if type is bfloat16:
            info = _BF16_INFO
        else:
            f = np.finfo(type.np)
            info = {"bits": int(f.bits), "eps": float(f.eps), "max": float(f.max),
                    "tiny": float(f.smallest_normal), "resolution": 10.0 ** -int(f.precision)}  # (exact, as torch has it)
        self.bits = info["bits"]
        self.eps = info["eps"]
        self.max = info["max"]
        self.min = -info["max"]
        self.tiny = self.smallest_normal = info["tiny"]
        self.resolution = info["resolution"]
        self.dtype = type.name  # torch gives the name as a str

    def __repr__(self) -> str:
        return (f"finfo(resolution={self.resolution:g}, min={self.min:g}, max={self.max:g}, eps={self.eps:g}, "
                f"smallest_normal={self.smallest_normal:g}, tiny={self.tiny:g}, dtype={self.dtype})")


class iinfo:
    """Limits of an integer dtype."""

    def __init__(self, type: DType):
        if type is bool_:
            raise TypeError("torch.bool is not supported by torch.iinfo")
        if not isinstance(type, DType) or type.category != _INT:
            raise TypeError("torch.iinfo() requires an integer input type. Use torch.finfo to handle "
                            "'torch.iinfo'")
        self.bits = type.itemsize * 8
        self.min, self.max = _INT_BOUNDS[type]
        self.dtype = type.name

    def __repr__(self) -> str:
        return f"iinfo(min={self.min:g}, max={self.max:g}, dtype={self.dtype})"


# torch takes Python's number types wherever it takes a dtype: float is float64, int is int64
_PY_TYPES = {float: float64, int: int64, bool: bool_}


def canonical(d):
    """`d` with Python's float/int/bool read as torch reads them (anything else unchanged)."""
    return _PY_TYPES.get(d, d) if builtins_type(d) is type else d
