"""tracegrad's tensor printing must match torch's character for character.

Every test builds the same tensor in torch and in tracegrad from one NumPy
array and compares ``str()`` (with ``tracegrad.`` written as ``torch.``).
torch is only the reference here; tracegrad itself never imports it.
"""
from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

import torch  # the reference; part of the test extra

import tracegrad  # noqa: E402
from tracegrad import dtypes as tg_dtypes  # noqa: E402
from tracegrad import printing  # noqa: E402

import hypothesis
from hypothesis import given, settings, strategies as st  # noqa: E402
from hypothesis.extra import numpy as hnp  # noqa: E402

DTYPES = [
    "float32", "float64", "float16", "bfloat16",
    "int8", "int16", "int32", "int64", "uint8", "bool",
]
FLOATS = ["float32", "float64", "float16", "bfloat16"]


# ---------------------------------------------------------------------------
# Building the same tensor twice
# ---------------------------------------------------------------------------


def _np_dtype(name):
    """The NumPy dtype test data is generated in (bfloat16 travels as float32)."""
    special = {"bfloat16": np.float32, "bool": np.bool_}
    return np.dtype(special[name]) if name in special else np.dtype(name)


def _to_bf16_grid(a):
    """Round float32 values toward zero onto bfloat16 values (drop the low 16 bits),
    so torch and tracegrad store exactly the same bits and no rounding rule is
    being tested here."""
    a = np.ascontiguousarray(a, dtype=np.float32)
    return (a.view(np.uint32) & np.uint32(0xFFFF0000)).view(np.float32)


def _torch_tensor(arr, name, requires_grad=False):
    arr = np.asarray(arr)
    if name == "bfloat16":
        t = torch.from_numpy(arr.copy()).to(torch.bfloat16)
    else:
        t = torch.from_numpy(arr.copy())
    if requires_grad:
        t.requires_grad_(True)
    return t


def _tg_tensor(arr, name, requires_grad=False):
    arr = np.asarray(arr)
    dtype = getattr(tracegrad, name)
    t = tracegrad.tensor(arr, dtype=dtype)
    if requires_grad:
        t.requires_grad_(True)
    return t


def _as_torch_text(t):
    return str(t).replace("tracegrad.", "torch.")


def assert_same(arr, name, requires_grad=False):
    """Print `arr` as a tensor of dtype `name` in both libraries and compare."""
    ours = _as_torch_text(_tg_tensor(arr, name, requires_grad))
    ref = str(_torch_tensor(arr, name, requires_grad))
    assert ours == ref, f"\n--- tracegrad ---\n{ours}\n--- torch ---\n{ref}"
    # repr and str are the same thing; from_numpy must print like tensor()
    if name != "bfloat16":
        t = tracegrad.from_numpy(np.array(arr)).requires_grad_(requires_grad)
        assert repr(t).replace("tracegrad.", "torch.") == ref


def _cast(values, name):
    """Cast float64 data to the test dtype (overflow to inf is fine and expected)."""
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        a = np.asarray(values).astype(_np_dtype(name))
    if name == "bfloat16":
        a = _to_bf16_grid(a)
    return a


# ---------------------------------------------------------------------------
# Option / default-dtype isolation
# ---------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def _restore_state():
    """Every test starts and ends with default print options and float32 default."""
    torch.set_printoptions(profile="default")
    printing.set_printoptions(profile="default")
    yield
    torch.set_printoptions(profile="default")
    printing.set_printoptions(profile="default")
    torch.set_default_dtype(torch.float32)
    tg_dtypes.set_default_dtype(tg_dtypes.float32)


def set_both(**kwargs):
    torch.set_printoptions(**kwargs)
    printing.set_printoptions(**kwargs)


# ---------------------------------------------------------------------------
# Hand-picked cases: one per rule
# ---------------------------------------------------------------------------

nan, inf = math.nan, math.inf

CASES = {
    "fixed": ([0.1, 2.5, -3.25], "float32"),
    "integral": ([1.0, 2.0, -30.0], "float32"),
    "integral_sci_by_ratio": ([1.0, 2000.0], "float32"),
    "integral_sci_by_size": ([1e9, 2e9], "float64"),
    "sci_small": ([1e-5, 0.5], "float32"),
    "sci_ratio": ([0.1, 500.0], "float64"),
    "no_sci_at_1000": ([1.0, 1000.0], "float64"),
    "no_sci_below_1e8": ([1.5, 99999999.0], "float64"),
    "nan_inf": ([nan, inf, -inf, 1.5], "float32"),
    "nan_inf_integral": ([nan, inf, -inf, 1.0], "float32"),
    "only_nonfinite": ([nan, inf, -inf], "float32"),
    "neg_zero": ([-0.0], "float32"),
    "neg_zero_mixed": ([-0.0, 0.0, 1.0, -2.0], "float64"),
    "neg_zero_fixed": ([-0.0, 0.5], "float32"),
    "zeros": ([0.0, 0.0], "float32"),
    "rounding_half": ([0.00005, 0.00015, 1.0], "float64"),
    "scalar": (3.0, "float32"),
    "scalar_frac": (-0.125, "float64"),
    "scalar_nan": (nan, "float32"),
    "scalar_int": (7, "int64"),
    "scalar_int8": (-7, "int8"),
    "scalar_bool": (True, "bool"),
    "scalar_half": (0.1, "float16"),
    "scalar_bf16": (0.1, "bfloat16"),
    "ints": ([1, -200, 30000], "int64"),
    "int32": ([1, -200, 30000], "int32"),
    "uint8": ([0, 255, 7], "uint8"),
    "bools": ([True, False, True], "bool"),
    "int64_extremes": ([-(2**63), 2**63 - 1], "int64"),
    "half_exact": ([0.1, 0.2, 1000.0], "float16"),
    "half_max": ([65504.0, -65504.0, 1.0], "float16"),
    "half_subnormal": ([6e-8, 1.0], "float16"),
    "bf16_big": ([3e38, 1.0], "bfloat16"),
    "float32_exact_value": ([0.1, 0.7], "float32"),
    "matrix": ([[1.5, 2.0], [3.0, 4.0]], "float32"),
    "cube": (np.arange(24).reshape(2, 3, 4) / 7, "float32"),
    "4d": (np.arange(48).reshape(2, 2, 3, 4) - 20, "int64"),
    "size1_dims": ([[[2.5]]], "float64"),
    "column": ([[1.0], [2.0], [3.0]], "float32"),
    "wrap_1d": (np.linspace(-1, 1, 30), "float32"),
    "wrap_2d": (np.linspace(-1e3, 1e3, 60).reshape(2, 30), "float64"),
    "wrap_ints": (np.arange(100) * 12345, "int64"),
    "wrap_bools": (np.arange(40) % 3 == 0, "bool"),
    "summarise_1d": (np.arange(1001) * 0.5, "float32"),
    "summarise_2d": (np.arange(40 * 30).reshape(40, 30), "int32"),
    "summarise_3d": (np.arange(5 * 10 * 25).reshape(5, 10, 25) / 3, "float64"),
    "summarise_short_dim": (np.arange(2 * 600).reshape(2, 600) / 3, "float32"),
    "summarise_hides_outlier": (np.r_[np.ones(600), 1e9, np.ones(600)], "float32"),
    "exactly_threshold": (np.arange(1000) / 4, "float32"),
    "wide_sci_rows": (np.logspace(-10, 10, 24).reshape(3, 8), "float64"),
}


@pytest.mark.parametrize("case", list(CASES), ids=list(CASES))
def test_hand_picked(case):
    values, name = CASES[case]
    assert_same(_cast(values, name), name)


@pytest.mark.parametrize("shape", [(0,), (0, 3), (2, 0), (3, 0, 2), (0, 0, 0, 1)])
@pytest.mark.parametrize("name", ["float32", "float64", "int64", "bool", "uint8"])
def test_empty(shape, name):
    assert_same(np.zeros(shape, dtype=_np_dtype(name)), name)


# ---------------------------------------------------------------------------
# Seeded random tensors: many dtypes x shapes x value ranges
# ---------------------------------------------------------------------------


def _random_shape(rng):
    kind = rng.integers(0, 10)
    if kind == 0:
        return ()
    if kind == 1:  # big enough to summarise
        return [(1001,), (40, 30), (5, 10, 25), (2, 3, 11, 17), (1, 1200)][rng.integers(0, 5)]
    if kind == 2:  # wide rows that wrap
        return (int(rng.integers(1, 4)), int(rng.integers(15, 60)))
    ndim = int(rng.integers(1, 5))
    return tuple(int(rng.integers(1, 6)) if rng.random() < 0.8 else 1 for _ in range(ndim))


def _random_float_values(rng, shape):
    """float64 values of one of several 'kinds' that exercise different modes."""
    n = int(np.prod(shape))
    kind = rng.integers(0, 7)
    if kind == 0:  # ordinary values of some scale
        v = rng.standard_normal(n) * 10.0 ** rng.uniform(-6, 10)
    elif kind == 1:  # whole numbers
        v = rng.integers(-10 ** int(rng.integers(1, 10)), 10 ** int(rng.integers(1, 10)), n).astype(float)
    elif kind == 2:  # magnitudes spread over many decades
        v = rng.choice([-1, 1], n) * 10.0 ** rng.uniform(-8, 12, n)
    elif kind == 3:  # tiny
        v = rng.uniform(-1e-4, 1e-4, n)
    elif kind == 4:  # few significant digits
        v = np.round(rng.uniform(-100, 100, n), int(rng.integers(0, 4)))
    elif kind == 5:  # near the 1000x / 1e8 / 1e-4 borders
        v = rng.choice([1e-4, 1.0001e-4, 1e8, 1.0001e8, 1.0, 1000.0, 999.99, 0.5], n)
    else:
        v = rng.standard_normal(n)
    if rng.random() < 0.35:  # sprinkle special values
        specials = np.array([nan, inf, -inf, -0.0, 0.0])
        mask = rng.random(n) < 0.2
        v[mask] = rng.choice(specials, int(mask.sum()))
    return v.reshape(shape)


def _random_values(rng, shape, name):
    if name == "bool":
        return rng.random(shape) < 0.5
    if name in FLOATS:
        return _cast(_random_float_values(rng, shape), name)
    info = np.iinfo(name)
    hi = int(min(info.max, 10 ** int(rng.integers(1, 20))))
    lo = int(max(info.min, -hi)) if info.min < 0 else 0
    return rng.integers(lo, hi, size=shape, endpoint=True, dtype=name)


@pytest.mark.parametrize("seed", range(300))
def test_random(seed):
    rng = np.random.default_rng(seed)
    name = DTYPES[seed % len(DTYPES)]
    shape = _random_shape(rng)
    assert_same(_random_values(rng, shape, name), name)


@pytest.mark.parametrize("seed", range(40))
def test_random_with_float64_default(seed):
    """After set_default_dtype(float64), float64 loses its dtype= and float32 gains one."""
    torch.set_default_dtype(torch.float64)
    tg_dtypes.set_default_dtype(tg_dtypes.float64)
    rng = np.random.default_rng(1000 + seed)
    name = ["float32", "float64", "float16", "int64", "bool"][seed % 5]
    shape = _random_shape(rng) if seed % 7 else (0, 2)
    assert_same(_random_values(rng, shape, name), name)


float_elements = st.floats(allow_nan=True, allow_infinity=True, width=64)


@settings(max_examples=150, deadline=None)
@given(
    arr=hnp.arrays(np.float64, hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=5), elements=float_elements),
    name=st.sampled_from(FLOATS),
)
def test_hypothesis_floats(arr, name):
    assert_same(_cast(arr, name), name)


@settings(max_examples=60, deadline=None)
@given(
    arr=hnp.arrays(np.int64, hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=6)),
    name=st.sampled_from(["int8", "int16", "int32", "int64", "uint8"]),
)
def test_hypothesis_ints(arr, name):
    info = np.iinfo(name)
    assert_same(np.clip(arr, info.min, info.max).astype(name), name)


# ---------------------------------------------------------------------------
# set_printoptions
# ---------------------------------------------------------------------------

OPTION_CASES = [
    dict(precision=2),
    dict(precision=0),
    dict(precision=8),
    dict(threshold=5),
    dict(threshold=0),
    dict(edgeitems=1, threshold=10),
    dict(edgeitems=0, threshold=10),
    dict(linewidth=40),
    dict(linewidth=5),
    dict(linewidth=200),
    dict(sci_mode=True),
    dict(sci_mode=False),
    dict(profile="short"),
    dict(profile="full"),
    dict(profile="short", precision=6),
]

OPTION_TENSORS = [
    (np.arange(20) / 3, "float32"),
    (np.arange(24).reshape(2, 3, 4) * 1.5, "float64"),
    (np.array([1e-6, 1.0, 1e6]), "float64"),
    (np.array([1.0, 2.0, 1e10]), "float32"),
    (np.array([nan, -0.0, 0.0]), "float32"),
    (np.arange(1500).reshape(30, 50), "int64"),
    (np.linspace(-5, 5, 2000), "float32"),
    (np.array(2.5), "float32"),
    (np.arange(12) % 2 == 0, "bool"),
]


@pytest.mark.parametrize("opts", OPTION_CASES, ids=lambda d: ",".join(f"{k}={v}" for k, v in d.items()))
def test_printoptions(opts):
    set_both(**opts)
    for values, name in OPTION_TENSORS:
        assert_same(_cast(values, name), name)
        assert_same(_cast(values, name), name, requires_grad=name in FLOATS)


@pytest.mark.parametrize("seed", range(40))
def test_random_options(seed):
    """Random tensors under random precision / linewidth / edgeitems / threshold."""
    rng = np.random.default_rng(5000 + seed)
    opts = dict(
        precision=int(rng.integers(0, 9)),
        linewidth=int(rng.integers(1, 150)),
        edgeitems=int(rng.integers(0, 5)),
        threshold=int(rng.choice([0, 5, 50, 1000])),
    )
    if seed % 3 == 0:
        opts["sci_mode"] = bool(seed % 2)
    set_both(**opts)
    name = DTYPES[seed % len(DTYPES)]
    arr = _random_values(rng, _random_shape(rng), name)
    assert_same(arr, name, requires_grad=name in FLOATS and seed % 2 == 0)


def test_set_printoptions_semantics():
    printing.set_printoptions(precision=2, linewidth=60)
    assert printing.get_printoptions() == dict(
        precision=2, threshold=1000, edgeitems=3, linewidth=60, sci_mode=None
    )
    printing.set_printoptions(sci_mode=True)
    assert printing.PRINT_OPTS.sci_mode is True and printing.PRINT_OPTS.precision == 2
    # like torch, a call without sci_mode= resets it to automatic
    printing.set_printoptions(precision=3)
    assert printing.PRINT_OPTS.sci_mode is None
    printing.set_printoptions(profile="full")
    assert printing.PRINT_OPTS.threshold == math.inf and printing.PRINT_OPTS.precision == 4
    printing.set_printoptions(profile="default")
    assert printing.get_printoptions() == torch._tensor_str.get_printoptions()


def test_printoptions_context_manager():
    with printing.printoptions(precision=1):
        assert printing.PRINT_OPTS.precision == 1
        assert str(tracegrad.tensor([1.25, 2.0])) == "tensor([1.2, 2.0])"
    assert printing.PRINT_OPTS.precision == 4


# ---------------------------------------------------------------------------
# Suffixes: dtype, requires_grad, grad_fn, device, and their line wrapping
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "values",
    [
        [1.5, 2.0],
        np.linspace(-1, 1, 14),  # the suffix no longer fits on the line
        np.linspace(-1, 1, 15),
        np.linspace(-1, 1, 30).reshape(3, 10),
        np.arange(12.0).reshape(2, 6),
        2.0,
        np.linspace(0, 1, 2000),
    ],
    ids=lambda v: str(np.shape(v)),
)
@pytest.mark.parametrize("name", FLOATS)
def test_requires_grad_suffix(values, name):
    assert_same(_cast(values, name), name, requires_grad=True)


@pytest.mark.parametrize("n", [1, 5, 10, 11, 12, 13, 14, 20])
def test_suffix_wraps_like_torch(n):
    """dtype= plus requires_grad=True near the end of a line: where each breaks."""
    assert_same(_cast(np.linspace(-1, 1, n), "float64"), "float64", requires_grad=False)
    assert_same(_cast(np.linspace(-1, 1, n), "float16"), "float16", requires_grad=True)
    assert_same(_cast(np.arange(n * 7) - 3, "int8"), "int8")


class _Device:
    def __init__(self, text):
        self.type = text.split(":")[0]
        self.text = text

    def __str__(self):
        return self.text


class _GradFn:
    def __init__(self, name):
        self._name = name

    def name(self):
        return self._name


class _DuckTensor:
    """A minimal object with the attributes tensor_repr reads, for suffixes the
    CPU-only build cannot produce (a CUDA device)."""

    def __init__(self, arr, dtype, device="cpu", requires_grad=False, grad_fn=None):
        self._arr = np.asarray(arr)
        self.shape = self._arr.shape
        self.dtype = dtype
        self.device = _Device(device)
        self.requires_grad = requires_grad
        self.grad_fn = grad_fn

    def _values(self):
        return self._arr


def test_device_suffix_duck_typed():
    arr = np.linspace(-1, 1, 14, dtype=np.float64)
    duck = _DuckTensor(arr, tg_dtypes.float64, device="cuda:0", grad_fn=_GradFn("MulBackward0"))
    expected = (
        "tensor([-1.0000, -0.8462, -0.6923, -0.5385, -0.3846, -0.2308, -0.0769,  0.0769,\n"
        "         0.2308,  0.3846,  0.5385,  0.6923,  0.8462,  1.0000], device='cuda:0',\n"
        "       dtype=tracegrad.float64, grad_fn=<MulBackward0>)"
    )
    assert printing.tensor_repr(duck) == expected
    # grad_fn wins over requires_grad, as in torch
    duck = _DuckTensor(np.array([1.0]), tg_dtypes.float32, grad_fn=_GradFn("AddBackward0"), requires_grad=True)
    assert printing.tensor_repr(duck) == "tensor([1.], grad_fn=<AddBackward0>)"
    duck = _DuckTensor(np.zeros((0, 2)), tg_dtypes.float32, device="cuda:0")
    assert printing.tensor_repr(duck) == "tensor([], device='cuda:0', size=(0, 2))"


def test_meta_device_duck_typed():
    duck = _DuckTensor(np.zeros((2, 3)), tg_dtypes.int64, device="meta")
    assert printing.tensor_repr(duck) == str(torch.empty(2, 3, dtype=torch.int64, device="meta")).replace(
        "torch.", "tracegrad."
    )


def test_grad_fn_suffix_from_real_autograd():
    """An op result prints grad_fn=<...Backward0> instead of requires_grad=True."""
    x = tracegrad.tensor([1.0, 2.0, 3.0], requires_grad=True)
    y = x * 2
    assert y.grad_fn is not None
    tx = torch.tensor([1.0, 2.0, 3.0], requires_grad=True)
    assert _as_torch_text(y) == str(tx * 2)
