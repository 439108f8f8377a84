"""The NumPy bridge and Python conversions against torch: numpy() and from_numpy() share memory,
tensor() copies, as_tensor()/Tensor(float32 ndarray) share; tolist, item, __array__, len, iter, bool,
float, int, index; dtype conversions (to / float / long / type ...) for every pair of dtypes.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import tracegrad
from util import DTYPES, LAYOUTS, assert_same, check_op, dtype_name, make_pair

pytestmark = [pytest.mark.filterwarnings("error::RuntimeWarning"),
              # torch's own Tensor.__array__ lacks NumPy 2's copy keyword (ours has it)
              pytest.mark.filterwarnings("ignore:__array__ implementation doesn't accept a copy:DeprecationWarning")]

NP_DTYPES = ["float32", "float64", "float16", "int8", "uint8", "int16", "int32", "int64", "bool"]


def _array(dtype, shape=(3, 4), rng=None):
    rng = rng if rng is not None else np.random.default_rng(0)
    if dtype == "bool":
        return np.asarray(rng.random(shape) < 0.5)
    return (rng.uniform(-5, 5, shape) if dtype.startswith("float") else rng.integers(0, 9, shape)).astype(dtype)


@pytest.mark.parametrize("dtype", NP_DTYPES)
@pytest.mark.parametrize("layout", ["contig", "transposed", "sliced", "offset"])
def test_numpy_shares_memory(dtype, layout, rng):
    """t.numpy() is a view of t's storage: same dtype, shape, strides; writes go both ways."""
    o, t = make_pair((3, 4), dtype, layout, rng)
    a, b = o.numpy(), t.numpy()
    assert a.dtype == b.dtype and a.shape == b.shape and a.strides == b.strides
    np.testing.assert_array_equal(a, b)
    a[1, 2] = b[1, 2] = 1
    assert o[1, 2].item() == t[1, 2].item()
    o[0, 0] = 0
    assert a[0, 0] == 0
    assert np.shares_memory(a, o.numpy())


@pytest.mark.parametrize("dtype", NP_DTYPES)
def test_from_numpy_shares_memory(dtype, rng):
    for arr in (_array(dtype, rng=rng), _array(dtype, (4, 5), rng).T, _array(dtype, (6,), rng)[::2],
                _array(dtype, (), rng), _array(dtype, (0, 3), rng)):
        ours, theirs = tracegrad.from_numpy(arr), torch.from_numpy(arr)
        assert_same(ours, theirs, f"from_numpy {dtype} {arr.shape} {arr.strides}", strides=True)
        if arr.size:
            flat = arr.reshape(-1) if arr.flags.c_contiguous else None
            arr[(0,) * arr.ndim] = 1
            assert ours[(0,) * arr.ndim].item() == theirs[(0,) * arr.ndim].item()
            ours.zero_()
            assert not arr.any()
        assert ours.storage_offset() == theirs.storage_offset()


def test_from_numpy_errors():
    # (complex and uint16/32/64 arrays are left out: torch has those dtypes, tracegrad does not)
    for bad in (np.arange(5)[::-1], np.array(["a"]), [1, 2],
                np.array([object()])):
        check_op("from_numpy error", lambda L: L.from_numpy(bad), [])


def test_copies_and_shares():
    a = np.arange(6, dtype=np.float32)

    def f(L):
        t_copy, t_as, t_as64, t_legacy = L.tensor(a), L.as_tensor(a), L.as_tensor(a, dtype=L.float64), L.Tensor(a)
        t_asarray = L.asarray(a)
        a[0] = 42
        r = (t_copy[0].item(), t_as[0].item(), t_as64[0].item(), t_legacy[0].item(), t_asarray[0].item())
        a[0] = 0
        return r

    check_op("sharing", f, [])
    b = np.arange(3.0)  # float64: Tensor() converts to float32, a copy
    assert tracegrad.Tensor(b).dtype is tracegrad.float32
    b[0] = 5
    assert tracegrad.Tensor(b)[0].item() == 5.0


def test_numpy_refusals():
    check_op("numpy requires_grad", lambda L: L.ones(2, requires_grad=True).numpy(), [])
    check_op("numpy bf16", lambda L: L.ones(2, dtype=L.bfloat16).numpy(), [])
    check_op("numpy force", lambda L: L.ones(2, requires_grad=True).numpy(force=True).tolist(), [])
    check_op("detach numpy", lambda L: L.ones(2, requires_grad=True).detach().numpy().tolist(), [])


@pytest.mark.parametrize("dtype", DTYPES)
def test_tolist_item(dtype, rng):
    for shape in ((), (3,), (2, 3), (0,), (2, 0), (1, 1, 2)):
        x = make_pair(shape, dtype, "contig", rng)
        check_op("tolist", lambda L, x: x.tolist(), [x], shape=shape)
        if int(np.prod(shape)) == 1 or shape == ():
            check_op("item", lambda L, x: x.item(), [x], shape=shape)
    x = make_pair((4, 3), dtype, "transposed", rng)
    check_op("tolist transposed", lambda L, x: x.tolist(), [x])


@pytest.mark.parametrize("dtype", DTYPES)
def test_python_conversions(dtype, rng):
    for shape in ((), (1,), (1, 1), (2,), (0,)):
        x = make_pair(shape, dtype, "contig", rng, "pos")
        for name, fn in [("bool", lambda L, x: bool(x)), ("float", lambda L, x: float(x)), ("int", lambda L, x: int(x)),
                         ("index", lambda L, x: [10, 20, 30, 40, 50, 60][x]), ("len", lambda L, x: len(x)),
                         ("iter", lambda L, x: list(x)), ("complex", lambda L, x: complex(x)),
                         ("is_nonzero", lambda L, x: L.is_nonzero(x)), ("format", lambda L, x: f"{x:.3f}"),
                         ("range", lambda L, x: list(range(x)))]:
            check_op(name, fn, [x], shape=shape)


@pytest.mark.parametrize("dtype", DTYPES)
def test_array_protocol(dtype, rng):
    """np.asarray(t) / np.array(t, dtype) / NumPy functions on tensors give arrays with torch's values."""
    x = make_pair((3, 4), dtype, "transposed", rng)
    if dtype == "bfloat16":
        for L, t in ((tracegrad, x[0]), (torch, x[1])):
            with pytest.raises(TypeError):
                np.asarray(t)
        return
    a, b = np.asarray(x[0]), np.asarray(x[1])
    assert a.dtype == b.dtype and a.shape == b.shape
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(np.array(x[0], dtype=np.float64), np.array(x[1], dtype=np.float64))
    np.testing.assert_allclose(np.sum(np.asarray(x[0]).astype(np.float64)), x[1].double().sum().item(), rtol=1e-6)


CONVERSIONS = {
    "float": lambda L, x: x.float(), "double": lambda L, x: x.double(), "half": lambda L, x: x.half(),
    "bfloat16": lambda L, x: x.bfloat16(), "long": lambda L, x: x.long(), "int": lambda L, x: x.int(),
    "short": lambda L, x: x.short(), "char": lambda L, x: x.char(), "byte": lambda L, x: x.byte(),
    "bool": lambda L, x: x.bool(), "to_dtype": lambda L, x: x.to(L.float64), "to_kw": lambda L, x: x.to(dtype=L.int16),
    "to_other": lambda L, x: x.to(L.zeros(1, dtype=L.uint8)), "to_device_dtype": lambda L, x: x.to("cpu", L.float16),
    "type_dtype": lambda L, x: x.type(L.int32), "type_str": lambda L, x: x.type("torch.DoubleTensor"),
    "type_of": lambda L, x: x.type_as(L.zeros(1, dtype=L.int8)), "to_same": lambda L, x: x.to(x.dtype) is x,
    "to_copy": lambda L, x: x.to(x.dtype, copy=True) is x,
}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("conv", list(CONVERSIONS))
def test_dtype_conversions(conv, dtype, rng, seed):
    """Conversions between every pair of dtypes: float -> int truncates toward zero, anything -> bool is != 0,
    float -> half/bfloat16 rounds to nearest even; dense layouts are kept."""
    for layout in ("contig", "transposed", "sliced"):
        x = make_pair((3, 4), dtype, layout, rng, "small" if dtype != "uint8" else "any")
        check_op(conv, CONVERSIONS[conv], [x], seed=seed, strides=True, layout=layout)


def test_special_value_conversions():
    vals = [0.5, -0.5, 1.5, 2.5, -2.5, 1e-40, 65519.0, 65520.0, 3.4e38, 1.00390625, -0.0]
    for src in ("float32", "float64"):
        arr = np.array(vals, dtype=src)
        x = (tracegrad.tensor(arr), torch.tensor(arr))
        for conv in ("half", "bfloat16", "bool", "long", "int", "float"):
            check_op(conv, CONVERSIONS[conv], [x], values=vals)
    inf = np.array([np.inf, -np.inf, np.nan], dtype=np.float32)
    x = (tracegrad.tensor(inf), torch.tensor(inf))
    for conv in ("half", "bfloat16", "bool", "double"):
        check_op(conv, CONVERSIONS[conv], [x])


def test_data_and_detach_share():
    def f(L):
        x = L.ones(3, requires_grad=True)
        d, e = x.data, x.detach()
        d[0] = 5
        e[1] = 7
        return x.detach().tolist(), d.requires_grad, e.requires_grad, x._version, d._version, e._version, \
            d.is_leaf, e.is_leaf

    check_op("data/detach", f, [])
