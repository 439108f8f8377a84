"""The one-frame fast paths (operators, unary ops, x.sum(), views, basic indexing, matmul, pow)
against torch, on the cases they take and the ones they hand to the general path: values,
dtypes, strides (all of them for views), sharing, grad_fn names and gradients."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import tracegrad
from util import LAYOUTS, check_op, make_pair

FLOATS = ["float32", "float64", "float16", "bfloat16"]
SOME_DTYPES = FLOATS + ["int64", "int32", "uint8", "bool"]


@pytest.mark.parametrize("layout", list(LAYOUTS))
@pytest.mark.parametrize("name", SOME_DTYPES)
@pytest.mark.parametrize("expr", ["x + y", "x - y", "x * y", "x / y", "x < y", "x == y", "x >= y",
                                  "L.add(x, y)", "L.mul(x, y)"])
def test_operators_same_shape(expr, name, layout):
    rng = np.random.default_rng(1)
    x = make_pair((3, 4), name, layout, rng)
    y = make_pair((3, 4), name, "contig", rng, domain="pos")
    check_op(expr, lambda L, a, b: eval(expr, {"x": a, "y": b, "L": L}), [x, y], strides=True)


@pytest.mark.parametrize("shapes", [((3, 4), (4,)), ((3, 1), (1, 4)), ((2, 3, 4), (3, 1)), ((), (3,)),
                                    ((3,), ()), ((), ()), ((0, 4), (4,)), ((3, 4), (2, 4))])
@pytest.mark.parametrize("op", ["+", "*", "<"])
def test_operators_broadcast_and_errors(shapes, op):
    rng = np.random.default_rng(2)
    x = make_pair(shapes[0], "float32", rng=rng)
    y = make_pair(shapes[1], "float32", rng=rng)
    check_op(f"x {op} y", lambda L, a, b: eval(f"a {op} b"), [x, y], strides=True)


@pytest.mark.parametrize("layout", list(LAYOUTS))
@pytest.mark.parametrize("name", SOME_DTYPES)
@pytest.mark.parametrize("scalar", [2.5, 3, -1, True, 1e30])
@pytest.mark.parametrize("expr", ["x + s", "s + x", "x * s", "s * x", "x - s", "x / s", "x < s", "x ** s"])
def test_operators_with_numbers(expr, scalar, name, layout):
    x = make_pair((3, 4), name, layout, np.random.default_rng(3), domain="pos")
    check_op(expr, lambda L, a: eval(expr, {"x": a, "s": scalar}), [x], strides=True)


@pytest.mark.parametrize("layout", list(LAYOUTS))
@pytest.mark.parametrize("name", SOME_DTYPES)
@pytest.mark.parametrize("fn", ["exp", "relu", "neg", "abs", "sigmoid", "tanh", "sqrt"])
def test_unary(fn, name, layout):
    x = make_pair((3, 4), name, layout, np.random.default_rng(4), domain="pos")
    check_op(fn, lambda L, a: getattr(L, fn)(a), [x], strides=True)


@pytest.mark.parametrize("v", [0.0, -100.0, -88.0, -740.0, -20.0, 17.0, 100.0, float("inf"), -float("inf"),
                               float("nan")])
@pytest.mark.parametrize("name", ["float32", "float64", "float16", "bfloat16"])
def test_sigmoid_tails(v, name):
    ours = tracegrad.sigmoid(tracegrad.tensor([v], dtype=getattr(tracegrad, name)))
    theirs = torch.sigmoid(torch.tensor([v], dtype=getattr(torch, name)))
    np.testing.assert_allclose(ours.double().numpy(), theirs.double().numpy(), rtol=1e-6, atol=0)


@pytest.mark.parametrize("layout", list(LAYOUTS))
@pytest.mark.parametrize("name", ["float32", "float64", "int64", "bfloat16"])
@pytest.mark.parametrize("expr", ["x.sum()", "x.sum(0)", "x.sum(-1)", "x.sum(1, keepdim=True)", "x.mean()",
                                  "x.mean(0)", "x.mean(-1, True)", "x.sum((0, 1))", "L.sum(x)", "x.sum(2)"])
def test_sum_mean(expr, name, layout):
    x = make_pair((3, 4), name, layout, np.random.default_rng(5))
    check_op(expr, lambda L, a: eval(expr, {"x": a, "L": L}), [x])


@pytest.mark.parametrize("shape", [(), (5,), (0, 3), (2, 3, 4)])
def test_sum_mean_shapes(shape):
    x = make_pair(shape, "float32", rng=np.random.default_rng(6))
    for expr in ("x.sum()", "x.mean()", "x.sum(-1)", "x.mean(0)"):
        check_op(expr, lambda L, a: eval(expr, {"x": a}), [x], strides=True)


@pytest.mark.parametrize("layout", list(LAYOUTS))
@pytest.mark.parametrize("expr", ["x.view(12)", "x.view(-1)", "x.view(2, 6)", "x.view(1, 12, 1)", "x.view(-2, 6)",
                                  "x.view(5, 3)", "x.reshape(4, 3)", "x.reshape(-1, 1)", "x.reshape((12,))",
                                  "x.unsqueeze(0)", "x.unsqueeze(1)", "x.unsqueeze(-1)", "x.t()", "x.T",
                                  "x.transpose(0, 1)", "x.transpose(-1, -2)"])
def test_views(expr, layout):
    x = make_pair((3, 4), "float32", layout, np.random.default_rng(7))
    check_op(expr, lambda L, a: eval(expr, {"x": a}), [x], strides=True, sharing=0)


@pytest.mark.parametrize("shape", [(3, 1), (1, 4), (1,), ()])
def test_views_with_size_one_dims(shape):
    """NumPy calls these contiguous whatever the strides of their size-1 dims; torch's strides rule."""
    ours, theirs = make_pair(tuple(reversed(shape)), "float32", rng=np.random.default_rng(8))
    x = (ours.t(), theirs.t()) if len(shape) == 2 else (ours, theirs)
    for expr in ("x.unsqueeze(0)", "x.unsqueeze(-1)", "x.view(-1)", "x.reshape(1, -1)"):
        check_op(expr, lambda L, a: eval(expr, {"x": a}), [x], strides=True, sharing=0)


@pytest.mark.parametrize("layout", list(LAYOUTS))
@pytest.mark.parametrize("expr", ["x[1:, :2]", "x[0]", "x[-1]", "x[1, 2]", "x[..., 1]", "x[::2, 1:]", "x[1:]",
                                  "x[5]", "x[0, 9]", "x[::-1]", "x[1, 2, 3]", "x[0:0]"])
def test_basic_indexing(expr, layout):
    x = make_pair((3, 4), "float32", layout, np.random.default_rng(9))
    check_op(expr, lambda L, a: eval(expr, {"x": a}), [x], strides=True, sharing=0)


@pytest.mark.parametrize("name", ["float32", "float64", "float16", "int64"])
@pytest.mark.parametrize("shapes", [((3, 4), (4, 5)), ((3, 4), (5, 4)), ((1, 4), (4, 1)), ((3, 4), (4,)),
                                    ((2, 3, 4), (4, 2))])
def test_matmul(shapes, name):
    rng = np.random.default_rng(10)
    x = make_pair(shapes[0], name, rng=rng)
    y = make_pair(shapes[1], name, rng=rng)
    check_op("x @ y", lambda L, a, b: a @ b, [x, y], strides=True)
    check_op("mm", lambda L, a, b: L.mm(a, b), [x, y], strides=True)


def test_matmul_dtype_mismatch():
    x = make_pair((2, 3), "float32")
    y = make_pair((3, 2), "float64")
    check_op("x @ y", lambda L, a, b: a @ b, [x, y])


@pytest.mark.parametrize("expr", [
    "(x * y).sum()", "(x + 2.0).mean()", "(x ** 2).sum(0).sum()", "(x @ w).relu().sum()", "x.view(-1).exp().sum()",
    "x.t().reshape(12).sum()", "x[1:, :2].sum()", "(x - y / 3).unsqueeze(0).mean(-1).sum()",
    "(x.T @ y).sigmoid().sum()", "x.transpose(0, 1)[0].sum()", "(x < y).float().sum() + x.sum(1).sum()",
])
def test_fast_paths_record_torch_graphs(expr):
    """With requires_grad the fast paths record the node torch would: same names, same gradients."""
    rng = np.random.default_rng(11)
    arrs = {k: rng.standard_normal(s).astype(np.float32) for k, s in (("x", (3, 4)), ("y", (3, 4)), ("w", (4, 2)))}
    ours = {k: tracegrad.tensor(v, requires_grad=True) for k, v in arrs.items()}
    theirs = {k: torch.tensor(v, requires_grad=True) for k, v in arrs.items()}
    o, t = eval(expr, dict(ours)), eval(expr, dict(theirs))
    assert o.grad_fn.name() == t.grad_fn.name()
    # the whole graph's node names, breadth first, as torch lists them
    def names(fn):
        out, todo = [], [fn]
        while todo:
            n = todo.pop(0)
            if n is None:
                continue
            out.append(n.name().replace("tracegrad::", "torch::"))
            todo.extend(f for f, _ in n.next_functions)
        return out

    assert names(o.grad_fn) == names(t.grad_fn)
    o.backward()
    t.backward()
    for k in arrs:
        tg, tt = ours[k].grad, theirs[k].grad
        assert (tg is None) == (tt is None), k
        if tt is not None:
            np.testing.assert_allclose(tg.numpy(), tt.numpy(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("lib", [tracegrad, torch])
def test_fast_views_share_version_counter(lib):
    x = lib.ones(3, 4, requires_grad=True).clone()
    v = x.view(12)
    z = (v * v).sum()  # mul saves v
    x.mul_(2)  # bumps the version of everything that shares x's storage, v included
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        z.backward()


def test_fast_paths_under_no_grad_and_tracer():
    x = tracegrad.ones(2, 3, requires_grad=True)
    with tracegrad.no_grad():
        y = (x * 2 + 1).sum()
    assert y.grad_fn is None and not y.requires_grad

    def f(a):
        return (a.t() @ a).relu().view(-1)[1:].sum() + (a ** 2).mean(0).sum()

    a = tracegrad.randn(3, 3)
    compiled = tracegrad.compile(f)
    np.testing.assert_allclose(compiled(a).numpy(), f(a).numpy(), rtol=1e-5)


@pytest.mark.parametrize("expr", ["L.relu(x)", "x.clamp(min=0)", "x.clamp(max=0)", "x.clamp(-1.0, 1.0)",
                                  "x.clamp(min=0.0, max=1.0)", "L.nn.functional.relu(x)"])
def test_nans_and_infinities_at_the_bounds(expr):
    """nan passes through relu and clamp, infinities are clamped. (Not checked: the sign of a zero
    that ties with a bound. torch keeps -0.0 there, and NumPy's vectorised maximum does not.)"""
    vals = [0.0, -1.0, 2.0, float("nan"), float("-inf"), float("inf")]
    ours = eval(expr, {"x": tracegrad.tensor(vals), "L": tracegrad})
    theirs = eval(expr, {"x": torch.tensor(vals), "L": torch})
    assert str(ours) == str(theirs).replace("torch", "tracegrad")
    np.testing.assert_array_equal(np.signbit(ours.numpy()), np.signbit(theirs.numpy()))


# ---- NumPy's float warnings: off inside tracegrad's ops, untouched outside ---------------------------
import threading  # noqa: E402
import warnings  # noqa: E402

from tracegrad import dispatch as _dispatch  # noqa: E402

OVERFLOWING = ["x + x", "x * x", "x - (-x)", "x / 1e-30", "x.sum()", "x.sum(0)", "x.mean()", "x.abs() @ x.abs()", "x ** 2",
               "x.exp()", "L.add(x, x)", "(x * 0) * (x * x)", "x.log() - (x * 0).log()", "x.sigmoid()"]


@pytest.mark.parametrize("expr", OVERFLOWING)
@pytest.mark.parametrize("numpy_mode", ["warn", "raise"])
def test_overflow_is_silent_like_torch(expr, numpy_mode):
    """inf and nan come out as in torch, with no NumPy warning, whatever NumPy's own error state."""
    vals = [[3e38, -3e38], [1e38, 2.0]]
    theirs = eval(expr, {"x": torch.tensor(vals), "L": torch})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with np.errstate(all=numpy_mode):
            ours = eval(expr, {"x": tracegrad.tensor(vals), "L": tracegrad})
            assert np.geterr()["over"] == numpy_mode  # the user's setting is left as it was
    np.testing.assert_array_equal(np.isnan(ours.numpy()), np.isnan(theirs.numpy()))
    np.testing.assert_array_equal(np.isinf(ours.numpy()), np.isinf(theirs.numpy()))


def test_numpy_still_warns_for_the_users_own_code():
    x = tracegrad.tensor([3e38, 3e38])
    (x + x).sum()
    with pytest.warns(RuntimeWarning, match="overflow"):
        np.float32(3e38) * np.float32(10)


def test_quiet_context_taken_falls_back():
    """The quiet context admits one thread at a time; an op that finds it taken (here: an op run
    from inside it) silences NumPy the slower way, with the same result."""
    x = tracegrad.tensor([[3e38, 1.0], [2.0, 3.0]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for expr in ("x + x", "x * x", "x.sum()", "x.mean(0)", "x @ x", "x.exp()", "x ** 2", "x - 1.0"):
            inside = _dispatch.quiet_run(lambda: eval(expr, {"x": x}))
            outside = eval(expr, {"x": x})
            np.testing.assert_array_equal(inside.numpy(), outside.numpy())


def test_ops_from_several_threads():
    rng = np.random.default_rng(12)
    a = rng.standard_normal((4, 4)).astype(np.float32) * 1e37
    want = torch.tensor(a) * torch.tensor(a) + torch.tensor(a).sum()
    errors = []

    def work():
        x = tracegrad.tensor(a)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error")
                for _ in range(300):
                    got = x * x + x.sum()
                    np.testing.assert_array_equal(got.numpy(), want.numpy())
        except Exception as e:  # reported below, from the main thread
            errors.append(e)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors[0]
