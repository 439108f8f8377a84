"""tracegrad.nn.init against torch.nn.init: gains, fans, bounds and distributions (random numbers
differ between the libraries, so values are compared through their ranges and moments)."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import tracegrad
from nn_helpers import raises_like

I_O, I_T = tracegrad.nn.init, torch.nn.init


@pytest.mark.parametrize("args", [("linear",), ("conv2d",), ("sigmoid",), ("tanh",), ("relu",), ("leaky_relu",),
                                  ("leaky_relu", 0.2), ("leaky_relu", math.sqrt(5)), ("selu",),
                                  ("conv_transpose2d",)])
def test_calculate_gain(args):
    assert I_O.calculate_gain(*args) == I_T.calculate_gain(*args)


def test_gain_and_fan_errors():
    raises_like(lambda: I_O.calculate_gain("nope"), lambda: I_T.calculate_gain("nope"))
    raises_like(lambda: I_O.calculate_gain("leaky_relu", "x"), lambda: I_T.calculate_gain("leaky_relu", "x"))
    raises_like(lambda: I_O.kaiming_uniform_(tracegrad.empty(3)), lambda: I_T.kaiming_uniform_(torch.empty(3)))
    raises_like(lambda: I_O.kaiming_normal_(tracegrad.empty(3, 4), mode="fan_x"),
                lambda: I_T.kaiming_normal_(torch.empty(3, 4), mode="fan_x"))


@pytest.mark.parametrize("shape", [(3, 4), (8, 3, 5, 5), (2, 6, 3), (5, 1, 2, 2, 2)])
def test_fans(shape):
    assert I_O._calculate_fan_in_and_fan_out(tracegrad.empty(shape)) == \
        I_T._calculate_fan_in_and_fan_out(torch.empty(shape))


def _stats(t):
    a = t.detach().numpy() if isinstance(t, tracegrad.Tensor) else t.detach().numpy()
    return a.min(), a.max(), a.mean(), a.std()


UNIFORMS = [
    ("uniform_", dict(a=-0.3, b=0.7)),
    ("xavier_uniform_", dict(gain=2.0)),
    ("kaiming_uniform_", dict(a=math.sqrt(5))),
    ("kaiming_uniform_", dict(mode="fan_out", nonlinearity="relu")),
]
NORMALS = [
    ("normal_", dict(mean=1.0, std=0.5)),
    ("xavier_normal_", dict(gain=0.5)),
    ("kaiming_normal_", dict()),
    ("kaiming_normal_", dict(mode="fan_out", nonlinearity="tanh")),
    ("trunc_normal_", dict(mean=0.5, std=1.0, a=-1.0, b=1.5)),
]


@pytest.mark.parametrize("name,kw", UNIFORMS + NORMALS, ids=[n + str(k) for n, k in UNIFORMS + NORMALS])
def test_distributions_match_torch(name, kw):
    shape = (300, 200, 2)
    tracegrad.manual_seed(0)
    torch.manual_seed(0)
    po = tracegrad.nn.Parameter(tracegrad.empty(shape))
    pt = torch.nn.Parameter(torch.empty(shape))
    assert getattr(I_O, name)(po, **kw) is po  # in place on a Parameter (no_grad inside), returns it
    getattr(I_T, name)(pt, **kw)
    so, st = _stats(po), _stats(pt)
    spread = st[3]
    if (name, kw) in UNIFORMS:
        assert so[0] >= st[0] - 1e-3 * spread and so[1] <= st[1] + 1e-3 * spread  # the same bounds
        assert abs(so[0] - st[0]) < 0.01 * spread and abs(so[1] - st[1]) < 0.01 * spread
    if name == "trunc_normal_":
        assert so[0] >= kw["a"] and so[1] <= kw["b"]
    assert abs(so[2] - st[2]) < 0.02 * spread + 1e-3
    assert abs(so[3] - st[3]) < 0.02 * spread
    assert po.requires_grad and po.is_leaf


def test_deterministic_fills_match_torch():
    for name, shape, args in [("constant_", (3, 4), (0.25,)), ("ones_", (2, 3), ()), ("zeros_", (2, 3), ()),
                              ("eye_", (3, 5), ()), ("dirac_", (4, 2, 3, 3), ()), ("dirac_", (4, 2, 3, 3), (2,))]:
        po, pt = tracegrad.nn.Parameter(tracegrad.randn(shape)), torch.nn.Parameter(torch.randn(shape))
        getattr(I_O, name)(po, *args)
        getattr(I_T, name)(pt, *args)
        np.testing.assert_array_equal(po.detach().numpy(), pt.detach().numpy(), err_msg=name)


def test_orthogonal_and_sparse():
    for shape in [(4, 6), (6, 4), (3, 2, 2)]:
        w = I_O.orthogonal_(tracegrad.empty(shape), gain=2.0).reshape(shape[0], -1).numpy().astype(np.float64)
        small = w @ w.T if w.shape[0] <= w.shape[1] else w.T @ w
        np.testing.assert_allclose(small, 4 * np.eye(small.shape[0]), atol=1e-5)
    s = I_O.sparse_(tracegrad.empty(10, 7), sparsity=0.3).numpy()
    assert ((s == 0).sum(0) >= 3).all()
