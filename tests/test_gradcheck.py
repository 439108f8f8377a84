"""tracegrad.autograd.gradcheck / gradgradcheck: finite differences against the analytical
gradients, with torch's own gradcheck as the reference verdict on the same functions.

A checker that always says True is worthless, so every "passes" case here has a twin
that must fail (a custom Function with a wrong backward), and both libraries' checkers
must agree on every case."""
from __future__ import annotations

import re
import warnings

import numpy as np
import pytest

import torch  # the reference; part of the test extra

import tracegrad  # noqa: E402
from tracegrad.autograd import gradcheck, gradgradcheck, GradcheckError  # noqa: E402

LIBS = (torch, tracegrad)


def f64(m, values, requires_grad=True):
    return m.tensor(values, dtype=m.float64, requires_grad=requires_grad)


def make_square(m, wrong=False):
    class Square(m.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            ctx.save_for_backward(x)
            return x * x

        @staticmethod
        def backward(ctx, g):
            (x,) = ctx.saved_tensors
            return g * x if wrong else 2 * g * x

    return Square


def make_detached_backward(m):
    """Right first derivative, but its backward is not differentiable in the right way:
    the second derivative through it is wrong (gradgradcheck must catch it)."""
    class Cube(m.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            ctx.save_for_backward(x)
            return x ** 3

        @staticmethod
        def backward(ctx, g):
            (x,) = ctx.saved_tensors
            return 3 * g * x.detach() ** 2

    return Cube


CASES = {
    "square_ok": (lambda m: make_square(m).apply, [[1.0, -2.0, 0.5]], True),
    "square_wrong": (lambda m: make_square(m, wrong=True).apply, [[1.0, -2.0, 0.5]], False),
    "two_inputs": (lambda m: (lambda a, b: (a * b.exp()).sum(0)), [[[1., 2.], [3., 4.]], [[0.5, -1.], [0.2, 0.1]]],
                   True),
    "two_outputs": (lambda m: (lambda a: (a.sin(), a.cumsum(0))), [[0.3, -0.2, 0.9]], True),
    "matmul": (lambda m: (lambda a, b: a @ b), [[[1., 2.], [3., 4.]], [[0.5], [-1.]]], True),
    "max_dim": (lambda m: (lambda a: a.max(1)[0]), [[[1., 5., 2.], [7., 0.5, 3.]]], True),
}


def _run(m, case, **kw):
    make, values, _ = CASES[case]
    inputs = tuple(f64(m, v) for v in values)
    check = m.autograd.gradcheck
    return check(make(m), inputs, raise_exception=False, **kw)


@pytest.mark.parametrize("case", sorted(CASES))
def test_verdict_matches_torch(case):
    expected = CASES[case][2]
    assert _run(torch, case) is expected
    assert _run(tracegrad, case) is expected


def test_failure_raises_with_both_jacobians():
    x = f64(tracegrad, [1.0, 2.0])
    with pytest.raises(GradcheckError) as ours:
        gradcheck(make_square(tracegrad, wrong=True).apply, (x,))
    with pytest.raises(RuntimeError) as ref:
        torch.autograd.gradcheck(make_square(torch, wrong=True).apply, (f64(torch, [1.0, 2.0]),))
    assert isinstance(ours.value, RuntimeError)
    ours_text = re.sub(r"\d\.\d+", "N", str(ours.value).replace("tracegrad.", "torch."))
    ref_text = re.sub(r"\d\.\d+", "N", str(ref.value))
    assert ours_text == ref_text
    assert str(ours.value).startswith("Jacobian mismatch for output 0 with respect to input 0,\nnumerical:")


def test_non_contiguous_and_views_inputs():
    base = tracegrad.tensor(np.arange(12.0).reshape(3, 4) / 7, dtype=tracegrad.float64)
    x = base.t().detach().requires_grad_(True)  # a transposed leaf
    assert not x.is_contiguous()
    assert gradcheck(lambda t: (t * t).tanh().sum(1), (x,))
    assert not gradcheck(lambda t: make_square(tracegrad, wrong=True).apply(t), (x,), raise_exception=False)


def test_inputs_not_requiring_grad_are_constants():
    a = f64(tracegrad, [1., 2.])
    c = f64(tracegrad, [3., 4.], requires_grad=False)
    assert gradcheck(lambda x, k, y: x * k * y, (a, 2.0, c))


def test_errors_and_warnings_like_torch():
    msgs = []
    for m in LIBS:
        with pytest.raises(ValueError) as e:
            m.autograd.gradcheck(lambda x: x * 2, (f64(m, [1.], requires_grad=False),))
        msgs.append(str(e.value))
    assert msgs[0] == msgs[1]
    texts = []
    for m in LIBS:
        with warnings.catch_warnings(record=True) as w:
            warnings.simplefilter("always")
            m.autograd.gradcheck(lambda x: x * 2, (m.ones(2, requires_grad=True),), raise_exception=False)
        texts.append([str(i.message) for i in w if issubclass(i.category, UserWarning)])
    assert texts[0] == texts[1] and texts[0]


@pytest.mark.parametrize("case,expected", [
    ("cube_ok", True), ("cube_detached", False), ("tanh_matmul", True), ("softplus_like", True),
])
def test_gradgradcheck_verdict_matches_torch(case, expected):
    def fn(m):
        if case == "cube_ok":
            return lambda x: x ** 3
        if case == "cube_detached":
            return make_detached_backward(m).apply
        if case == "tanh_matmul":
            return lambda x: (x.tanh() @ x.t()).sum(1)
        return lambda x: (x.exp() + 1).log()

    for m in LIBS:
        x = f64(m, [[0.3, -0.7], [1.1, 0.4]])
        assert m.autograd.gradgradcheck(fn(m), (x,), raise_exception=False) is expected, m.__name__
