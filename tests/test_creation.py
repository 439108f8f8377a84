"""Creation against torch: tensor() from every kind of data, the legacy constructors, factories
(empty zeros ones full eye arange linspace logspace and the *_like forms), the default dtype, devices,
and the random factories.

Random values cannot match torch's (a different generator); for them we check what can be compared:
dtype, shape, range, moments, and that manual_seed makes the stream reproducible and private to a
Generator.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import tracegrad
from util import DTYPES, FLOATS, assert_same, check_op, make_pair, run_both, describe

pytestmark = pytest.mark.filterwarnings("error::RuntimeWarning")

DATA = {
    "int": 3, "float": 2.5, "bool": True, "neg_zero": -0.0, "big_int": 2 ** 40, "list_int": [1, 2, 3],
    "list_float": [1.0, 2.5], "list_mixed": [1, 2.0], "list_bool": [True, False], "list_bool_int": [True, 2],
    "nested": [[1, 2], [3, 4]], "nested_mixed": [[1.5, 2], [3, 4]], "empty": [], "empty_nested": [[], []],
    "tuple": (1, 2), "deep": [[[1.0]], [[2.0]]], "nan_inf": [math.nan, math.inf, -math.inf],
    "np_f64_scalar": np.float64(1.5), "np_i32_scalar": np.int32(7), "np_bool_scalar": np.bool_(True),
    "list_np_scalars": [np.float32(1), np.float64(2)], "list_np_int_and_int": [np.int32(1), 2],
    "np_f32": np.arange(6, dtype=np.float32).reshape(2, 3), "np_f64": np.linspace(0, 1, 5),
    "np_i8": np.array([-1, 2], dtype=np.int8), "np_u8": np.array([0, 255], dtype=np.uint8),
    "np_bool": np.array([[True], [False]]), "np_i16": np.array([3], dtype=np.int16),
    "np_f16": np.array([0.1, 65504], dtype=np.float16), "np_0d": np.array(5.0),
    "np_transposed": np.arange(6.0).reshape(2, 3).T, "np_sliced": np.arange(10)[::3],
}


@pytest.mark.parametrize("name", list(DATA))
def test_tensor_from_data(name):
    data = DATA[name]
    ctx = describe("tensor", [], data=name)
    check_op("tensor", lambda L, d: L.tensor(d), [data], strides="contiguous", data=name)
    for dt in ("float64", "int32", "bool", "float16", "bfloat16", "uint8"):
        if name in ("nan_inf",) and dt in ("int32", "uint8", "bool"):
            continue  # (converting nan to an integer is undefined in both)
        if name in ("big_int", "np_u8", "np_f16") and dt in ("int32", "uint8", "float16", "bfloat16"):
            continue  # (out-of-range conversions are undefined behaviour in C, so torch's result is arbitrary)
        if name in ("np_bool_scalar", "list_np_scalars") and dt in ("int32", "uint8", "bool"):
            continue  # (torch raises a TypeError converting these NumPy scalars to ints; we convert them)
        check_op("tensor dtype=" + dt, lambda L, d: L.tensor(d, dtype=getattr(L, dt)), [data], ctx=ctx)


def test_tensor_copies_and_keeps_no_history(rng):
    a = np.arange(4.0, dtype=np.float32)
    t = tracegrad.tensor(a)
    a[0] = 100
    assert t[0].item() == 0.0  # tensor() copies
    x = make_pair((3,), "float32", "contig", rng)
    y = tracegrad.tensor(x[0])
    assert not (y.untyped_storage().data_ptr() == x[0].untyped_storage().data_ptr())
    with pytest.warns(UserWarning, match="To copy construct from a tensor"):
        torch.tensor(x[1])  # (torch warns here; we copy silently)


def test_tensor_from_tensors_in_lists():
    def f(L):
        return L.tensor([L.tensor(1.5), L.tensor(2)]), L.tensor([[L.tensor(1), 2], [3, 4]])

    check_op("tensor of tensors", f, [])


def test_requires_grad_and_errors():
    check_op("requires_grad", lambda L: L.tensor([1.0], requires_grad=True).requires_grad, [])
    for fn in (lambda L: L.tensor([1, 2], requires_grad=True), lambda L: L.zeros(2, dtype=L.int64, requires_grad=True),
               lambda L: L.tensor([[1, 2], [3]]), lambda L: L.tensor([1, [2]]), lambda L: L.tensor("a"),
               lambda L: L.tensor([1, None]), lambda L: L.zeros(-1), lambda L: L.arange(0, 5, 0),
               lambda L: L.arange(5, 0, 1), lambda L: L.linspace(0, 1, -1), lambda L: L.eye(-1),
               lambda L: L.full((2,), 300, dtype=L.uint8), lambda L: L.randint(5, 3, (2,)),
               lambda L: L.tensor([1.0]).requires_grad_(True).long().requires_grad_(True)):
        check_op("error", fn, [])


FACTORIES = {
    "zeros": lambda L: L.zeros(2, 3), "zeros_tuple": lambda L: L.zeros((2, 3)), "zeros_list": lambda L: L.zeros([4]),
    "zeros_size": lambda L: L.zeros(L.Size([2, 1])), "zeros_0d": lambda L: L.zeros(()), "zeros_empty": lambda L: L.zeros(0, 3),
    "ones": lambda L: L.ones(3, dtype=L.int8), "ones_bool": lambda L: L.ones(2, 2, dtype=L.bool),
    "ones_bf16": lambda L: L.ones(2, dtype=L.bfloat16),
    "full_int": lambda L: L.full((2, 2), 7), "full_float": lambda L: L.full((3,), 1.5), "full_bool": lambda L: L.full((2,), True),
    "full_dtype": lambda L: L.full((2,), 3, dtype=L.float16), "full_neg_uint8": lambda L: L.full((2,), -1, dtype=L.uint8),
    "full_0d_tensor": lambda L: L.full((2,), L.tensor(4.0)),
    "empty_shape": lambda L: L.empty(2, 3).shape, "empty_dtype": lambda L: L.empty(2, dtype=L.int16).dtype,
    "eye": lambda L: L.eye(3), "eye_rect": lambda L: L.eye(2, 4), "eye_dtype": lambda L: L.eye(3, dtype=L.int64),
    "eye_zero": lambda L: L.eye(0),
    "arange_int": lambda L: L.arange(5), "arange_start": lambda L: L.arange(2, 7), "arange_step": lambda L: L.arange(1, 10, 3),
    "arange_neg": lambda L: L.arange(5, -5, -2), "arange_float": lambda L: L.arange(0, 1, 0.1),
    "arange_float_end": lambda L: L.arange(2.5), "arange_dtype": lambda L: L.arange(5, dtype=L.float64),
    "arange_float_to_int": lambda L: L.arange(0.5, 4.5, dtype=L.int64), "arange_tensor": lambda L: L.arange(L.tensor(4)),
    "arange_empty": lambda L: L.arange(3, 3), "arange_big_step": lambda L: L.arange(0, 10, 20),
    "arange_neg_float_step": lambda L: L.arange(1.0, 0.0, -0.25), "arange_f16": lambda L: L.arange(0, 3, 0.5, dtype=L.float16),
    "linspace": lambda L: L.linspace(0, 1, 5), "linspace_one": lambda L: L.linspace(3, 7, 1),
    "linspace_zero": lambda L: L.linspace(0, 1, 0), "linspace_rev": lambda L: L.linspace(2, -2, 7),
    "linspace_int": lambda L: L.linspace(0, 10, 4, dtype=L.int64), "linspace_f64": lambda L: L.linspace(-1, 1, 11, dtype=L.float64),
    "linspace_long": lambda L: L.linspace(0, 1, 101), "linspace_tensor": lambda L: L.linspace(L.tensor(0.0), L.tensor(2.0), 3),
    "logspace": lambda L: L.logspace(0, 2, 3), "logspace_base": lambda L: L.logspace(0, 3, 4, base=2),
    "logspace_f64": lambda L: L.logspace(-2, 2, 5, dtype=L.float64),
    "size": lambda L: L.zeros(2, 3).size(), "numel": lambda L: L.numel(L.zeros(2, 3)),
}


@pytest.mark.parametrize("name", list(FACTORIES))
def test_factories(name):
    check_op(name, FACTORIES[name], [], strides=True)


@pytest.mark.parametrize("name", ["zeros_like", "ones_like", "empty_like", "full_like", "rand_like", "randn_like",
                                  "zeros_like_dtype", "full_like_int", "randint_like"])
@pytest.mark.parametrize("layout", ["contig", "transposed", "sliced", "expanded", "permuted"])
def test_like_factories(name, layout, rng, seed):
    """*_like keep dtype and shape and, as torch's preserve_format does, the strides of a dense input."""
    fns = {"zeros_like": lambda L, x: L.zeros_like(x), "ones_like": lambda L, x: L.ones_like(x),
           "empty_like": lambda L, x: L.empty_like(x).zero_(), "full_like": lambda L, x: L.full_like(x, 2.5),
           "rand_like": lambda L, x: L.rand_like(x).mul(0), "randn_like": lambda L, x: L.randn_like(x).mul(0),
           "zeros_like_dtype": lambda L, x: L.zeros_like(x, dtype=L.int32), "full_like_int": lambda L, x: L.full_like(x, 7),
           "randint_like": lambda L, x: L.randint_like(x, 3, 4)}
    for dtype in ("float32", "float64", "int64" if name not in ("rand_like", "randn_like") else "float16"):
        x = make_pair((3, 4, 2), dtype, layout, rng)
        check_op(name, fns[name], [x], seed=seed, strides=True, layout=layout)


def test_default_dtype():
    for d in ("float64", "float16", "bfloat16", "float32"):
        def f(L):
            L.set_default_dtype(getattr(L, d))
            try:
                return (L.get_default_dtype(), L.tensor([1.0]), L.tensor([1, 2.5]), L.zeros(2), L.arange(0.0, 2.0),
                        L.tensor(3).float() * 0.5 if False else L.tensor([1]) / 2, L.linspace(0, 1, 3), L.eye(2),
                        L.full((2,), 2.5), L.tensor([True]) + 0.5, L.tensor(np.float32(1.0)), L.ones(1, dtype=L.float))
            finally:
                L.set_default_dtype(L.float32)

        check_op("default dtype " + d, f, [])
    for fn in (lambda L: L.set_default_dtype(L.int64),):
        check_op("set_default_dtype(int64)", fn, [])


def test_legacy_constructors():
    arr32 = np.arange(4, dtype=np.float32)
    cases = {
        "Tensor_sizes": lambda L: L.Tensor(2, 3).shape, "Tensor_list": lambda L: L.Tensor([1, 2]),
        "Tensor_empty": lambda L: L.Tensor(), "FloatTensor": lambda L: L.FloatTensor([1, 2]),
        "LongTensor": lambda L: L.LongTensor([1, 2]), "DoubleTensor": lambda L: L.DoubleTensor([[1.5]]),
        "IntTensor": lambda L: L.IntTensor([3]), "ByteTensor": lambda L: L.ByteTensor([3]),
        "BoolTensor": lambda L: L.BoolTensor([True, False]), "FloatTensor_sizes": lambda L: L.FloatTensor(2, 2).dtype,
        "Tensor_ndarray": lambda L: L.Tensor(arr32), "Tensor_ndarray_f64": lambda L: L.Tensor(np.arange(3.0)),
        "type_str": lambda L: L.zeros(1).type(), "type_long_str": lambda L: L.zeros(1, dtype=L.long).type(),
    }
    for name, fn in cases.items():
        r = check_op(name, fn, [])
        if name == "type_str":
            assert r[0] == "torch.FloatTensor"
    # Tensor(float32 ndarray) shares memory, as in torch
    t = tracegrad.Tensor(arr32)
    arr32[1] = 42
    assert t[1].item() == 42.0 and torch.Tensor(arr32)[1].item() == 42.0


def test_devices():
    cpu = tracegrad.device("cpu")
    assert cpu == tracegrad.device("cpu") == "cpu" and str(cpu) == "cpu" and cpu.type == "cpu"
    assert repr(cpu) == repr(torch.device("cpu")) and repr(tracegrad.device("cuda", 1)) == repr(torch.device("cuda", 1))
    assert repr(tracegrad.device("cuda:0")) == repr(torch.device("cuda:0"))
    x = tracegrad.zeros(2, device="cpu")
    assert x.device == cpu and x.device.type == "cpu" and not x.is_cuda
    assert tracegrad.zeros(1, device=cpu).to("cpu").device == cpu and x.cpu() is x and x.to(cpu) is x
    for bad in ("gpu", "cuda:x"):
        check_op("device " + bad, lambda L: L.device(bad), [])


@pytest.mark.parametrize("call", ["zeros", "tensor", "to", "cuda", "randn", "ones_like", "arange", "empty"])
def test_cuda_without_gpu(call):
    """No GPU here: device='cuda' is torch's RuntimeError that no CUDA device or driver was found."""
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    fns = {"zeros": lambda L: L.zeros(2, device="cuda"), "tensor": lambda L: L.tensor([1.0], device="cuda"),
           "to": lambda L: L.zeros(2).to("cuda"), "cuda": lambda L: L.zeros(2).cuda(),
           "randn": lambda L: L.randn(2, device=L.device("cuda")), "ones_like": lambda L: L.ones_like(L.zeros(1), device="cuda:0"),
           "arange": lambda L: L.arange(3, device="cuda"), "empty": lambda L: L.empty(1, device="cuda")}
    with pytest.raises(Exception):  # (a CPU-only torch raises AssertionError: "not compiled with CUDA enabled")
        fns[call](torch)
    with pytest.raises(RuntimeError, match="no CUDA device or driver was found") as e:
        fns[call](tracegrad)
    assert "pip install" in str(e.value)  # and how to get the GPU extra
    assert tracegrad.cuda.is_available() is False and tracegrad.cuda.device_count() == 0


# ---- random factories -----------------------------------------------------------------------------
RANDOM = {
    "rand": lambda L, g: L.rand(2000, generator=g), "randn": lambda L, g: L.randn(40, 50, generator=g),
    "rand_f64": lambda L, g: L.rand(1000, dtype=L.float64, generator=g),
    "randn_f16": lambda L, g: L.randn(1000, dtype=L.float16, generator=g),
    "randint": lambda L, g: L.randint(3, 9, (2000,), generator=g), "randint_high": lambda L, g: L.randint(5, (30, 40), generator=g),
    "randint_dtype": lambda L, g: L.randint(0, 2, (1000,), dtype=L.bool, generator=g),
    "randperm": lambda L, g: L.randperm(50, generator=g), "normal": lambda L, g: L.normal(2.0, 3.0, (4000,), generator=g),
    "normal_tensors": lambda L, g: L.normal(L.arange(1000.0), L.ones(1000), generator=g),
    "bernoulli": lambda L, g: L.bernoulli(L.full((4000,), 0.25), generator=g),
    "uniform_": lambda L, g: L.empty(3000).uniform_(-2, 5, generator=g),
    "normal_": lambda L, g: L.empty(3000, dtype=L.float64).normal_(1, 0.5, generator=g),
    "multinomial": lambda L, g: L.multinomial(L.tensor([0.1, 0.0, 0.9]), 2000, replacement=True, generator=g),
}


@pytest.mark.parametrize("name", list(RANDOM))
def test_random_factories(name):
    """Same dtype, shape and distribution as torch's (moments within a few standard errors), and a seeded
    Generator reproduces its stream."""
    fn = RANDOM[name]
    g_ours, g_theirs = tracegrad.Generator().manual_seed(7), torch.Generator().manual_seed(7)
    ours, theirs = fn(tracegrad, g_ours), fn(torch, g_theirs)
    ctx = describe(name, [], seed=7)
    assert ours.dtype == getattr(tracegrad, str(theirs.dtype).split(".")[1]), ctx
    assert tuple(ours.shape) == tuple(theirs.shape), ctx
    a, b = np.asarray(ours.double().tolist() if ours.dtype is not tracegrad.bool else ours.tolist(), dtype=float), \
        theirs.double().numpy()
    assert a.min() >= b.min() - 4 * b.std() - 1e-9 and a.max() <= b.max() + 4 * b.std() + 1e-9, ctx
    n = a.size
    se = b.std() / math.sqrt(n) + 1e-12
    assert abs(a.mean() - b.mean()) < 6 * se + 1e-3 * abs(b.mean()), f"mean {a.mean()} vs {b.mean()}\n  {ctx}"
    assert abs(a.std() - b.std()) < 0.1 * b.std() + 1e-9, f"std {a.std()} vs {b.std()}\n  {ctx}"
    if name == "randperm":
        assert sorted(a.tolist()) == sorted(b.tolist())
    if name.startswith("randint"):
        assert set(a.ravel().tolist()) <= set(range(int(b.min()), int(b.max()) + 1))
    again = fn(tracegrad, tracegrad.Generator().manual_seed(7))
    assert again.tolist() == ours.tolist(), "a seeded Generator must reproduce its stream"


def test_manual_seed_and_generators():
    tracegrad.manual_seed(3)
    a = tracegrad.rand(5)
    g = tracegrad.Generator().manual_seed(3)
    tracegrad.manual_seed(3)
    b = tracegrad.rand(5)
    c = tracegrad.rand(5, generator=g)  # a private stream: drawing from it does not move the global one
    assert a.tolist() == b.tolist() and c.tolist() == a.tolist()
    d = tracegrad.rand(5)
    assert d.tolist() != a.tolist()
    tracegrad.manual_seed(3)
    tracegrad.rand(5)
    assert tracegrad.rand(5).tolist() == d.tolist()
    assert tracegrad.initial_seed() == 3
    s = tracegrad.get_rng_state()
    e = tracegrad.rand(3)
    tracegrad.set_rng_state(s)
    assert tracegrad.rand(3).tolist() == e.tolist()
    assert isinstance(tracegrad.manual_seed(1), tracegrad.Generator) and isinstance(torch.manual_seed(1), torch.Generator)


def test_random_argument_errors():
    for fn in (lambda L: L.normal(0.0, -1.0, (2,)), lambda L: L.normal(L.zeros(2), -L.ones(2)),
               lambda L: L.randint(3, 3, (1,)), lambda L: L.rand(2, 3, dtype=L.int64)):
        check_op("random error", fn, [])


# the namespace items of the API page this suite covers (everything but autograd, nn, optim and the tracer)
API_FUNCTIONS = """float16 half bfloat16 float32 float float64 double int8 uint8 int16 int32 int int64 long bool
get_default_dtype set_default_dtype Size device tensor Tensor FloatTensor LongTensor empty zeros ones full eye arange
linspace rand randn randint normal rand_like randn_like zeros_like ones_like empty_like full_like from_numpy as_tensor
manual_seed add sub mul div true_divide floor_divide remainder pow neg abs exp log log1p expm1 sqrt rsqrt sin cos tanh
sigmoid relu clamp clip sign floor ceil round maximum minimum where lerp eq ne lt le gt ge logical_and logical_or
logical_not isnan isinf isfinite sum mean prod max min amax amin argmax argmin std var norm logsumexp any all cumsum
mm matmul bmm dot mv outer t reshape flatten unflatten squeeze unsqueeze transpose permute narrow chunk split cat stack
unbind flip index_select gather scatter scatter_add masked_fill masked_select nonzero no_grad enable_grad
set_grad_enabled is_grad_enabled inference_mode""".split()
API_METHODS = """add sub mul div true_divide floor_divide remainder pow neg abs exp log log1p expm1 sqrt rsqrt sin cos
tanh sigmoid relu clamp clip sign floor ceil round maximum minimum where lerp eq ne lt le gt ge logical_and logical_or
logical_not isnan isinf isfinite sum mean prod max min amax amin argmax argmin std var norm logsumexp any all cumsum mm
matmul bmm dot mv outer t view view_as reshape flatten unflatten squeeze unsqueeze transpose permute expand expand_as
repeat contiguous is_contiguous stride storage_offset narrow chunk split unbind flip index_select gather scatter
scatter_add masked_fill masked_select nonzero add_ sub_ mul_ div_ zero_ fill_ copy_ clamp_ t_ transpose_ unsqueeze_
requires_grad_ numpy tolist item __array__ __len__ __iter__ __bool__ __float__ __int__ __index__ to cpu cuda float
double long int bool half type size dim numel element_size detach detach_ retain_grad backward""".split()
API_ATTRIBUTES = "data device dtype shape ndim grad grad_fn is_leaf requires_grad T".split()


def test_api_surface_exists():
    missing = [n for n in API_FUNCTIONS if not hasattr(tracegrad, n)]
    assert not missing, f"tracegrad lacks {missing}"
    x = tracegrad.ones(2, 2)
    missing = [n for n in API_METHODS if not callable(getattr(x, n, None))]
    missing += [n for n in API_ATTRIBUTES if not hasattr(x, n)]
    assert not missing, f"Tensor lacks {missing}"
    # and torch has every one of them (so the list names real torch API)
    assert all(hasattr(torch, n) for n in API_FUNCTIONS)
    t = torch.ones(2, 2)
    assert all(hasattr(t, n) for n in API_METHODS + API_ATTRIBUTES)
