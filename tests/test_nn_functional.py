"""tracegrad.nn.functional against torch.nn.functional: values, grad_fn names, gradients
(through a non-uniform upstream loss), double backward, errors, and the decompositions."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as TF

import tracegrad
import tracegrad.nn.functional as F
from tracegrad.ops import nn_ops
from nn_helpers import close, grad_name, pair, raises_like, tg, th, upstream_loss

DT = ["float32", "float64"]


def run_both(fn_ours, fn_theirs, inputs, dtype="float32", check_name=True, grad=True, rtol=None, atol=None):
    """Forward, grad_fn name and input gradients (for every input that requires grad) vs torch."""
    ours_in = [o for o, _ in inputs]
    theirs_in = [t for _, t in inputs]
    out_o = fn_ours(*ours_in)
    out_t = fn_theirs(*theirs_in)
    close(out_o, out_t, dtype, "forward", rtol=rtol, atol=atol)
    if check_name:
        assert grad_name(out_o) == grad_name(out_t)
    if grad and out_t.requires_grad:
        upstream_loss(out_o).backward()
        upstream_loss(out_t).backward()
        for i, (o, t) in enumerate(inputs):
            if t.requires_grad:
                close(o.grad, t.grad, dtype, f"grad of input {i}", rtol=rtol, atol=atol)
    return out_o, out_t


# ---- linear -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", DT)
@pytest.mark.parametrize("xshape", [(4, 5), (2, 3, 5), (5,)])
@pytest.mark.parametrize("bias", [True, False])
def test_linear(dtype, xshape, bias):
    x = pair(xshape, dtype, 1)
    w = pair((3, 5), dtype, 2)
    b = pair((3,), dtype, 3)
    ins = [x, w] + ([b] if bias else [])
    run_both(lambda *a: F.linear(*a), lambda *a: TF.linear(*a), ins, dtype)


def test_linear_errors():
    x = tracegrad.randn(4, 5)
    raises_like(lambda: F.linear(x, tracegrad.randn(3, 6)), lambda: TF.linear(torch.randn(4, 5), torch.randn(3, 6)))
    raises_like(lambda: F.linear(x.double(), tracegrad.randn(3, 5)),
                lambda: TF.linear(torch.randn(4, 5).double(), torch.randn(3, 5)), "must have the same dtype")


# ---- activations -----------------------------------------------------------------------------------------
ACTS = [
    ("relu", lambda L, x: L.nn.functional.relu(x)),
    ("relu6", lambda L, x: L.nn.functional.relu6(x * 4)),
    ("leaky_relu", lambda L, x: L.nn.functional.leaky_relu(x, 0.2)),
    ("gelu", lambda L, x: L.nn.functional.gelu(x)),
    ("gelu_tanh", lambda L, x: L.nn.functional.gelu(x, approximate="tanh")),
    ("silu", lambda L, x: L.nn.functional.silu(x)),
    ("elu", lambda L, x: L.nn.functional.elu(x, 0.7)),
    ("softplus", lambda L, x: L.nn.functional.softplus(x * 5, beta=2, threshold=5)),
    ("hardtanh", lambda L, x: L.nn.functional.hardtanh(x, -0.5, 0.8)),
    ("sigmoid", lambda L, x: L.nn.functional.sigmoid(x)),
    ("tanh", lambda L, x: L.nn.functional.tanh(x)),
    ("softmax0", lambda L, x: L.nn.functional.softmax(x, 0)),
    ("softmax1", lambda L, x: L.nn.functional.softmax(x, dim=-1)),
    ("log_softmax", lambda L, x: L.nn.functional.log_softmax(x, 1)),
    ("softmin", lambda L, x: L.nn.functional.softmin(x, 1)),
    ("normalize", lambda L, x: L.nn.functional.normalize(x, dim=1)),
]


@pytest.mark.parametrize("dtype", DT)
@pytest.mark.parametrize("name,fn", ACTS, ids=[a[0] for a in ACTS])
def test_activation(name, fn, dtype):
    x = pair((6, 7), dtype, 4)
    run_both(lambda a: fn(tracegrad, a), lambda a: fn(torch, a), [x], dtype)


@pytest.mark.parametrize("fn", ["relu", "leaky_relu", "silu", "elu", "hardtanh"])
def test_inplace_activation(fn):
    xo, xt = pair((3, 4), requires_grad=False)
    ro = getattr(F, fn)(xo, inplace=True)
    rt = getattr(TF, fn)(xt, inplace=True)
    assert ro is xo and rt is xt
    close(xo, xt)


def test_softmax_extreme_and_implicit_dim():
    x = torch.tensor([[1000.0, 0.0, -1000.0], [-1e4, -1e4, -1e4]])
    close(F.softmax(tg(x), 1), TF.softmax(x, 1))
    close(F.log_softmax(tg(x), 1), TF.log_softmax(x, 1))
    with pytest.warns(UserWarning, match="Implicit dimension choice for softmax"):
        o = F.softmax(tg(x))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        close(o, TF.softmax(x))
    x3 = torch.randn(2, 3, 4)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        close(F.log_softmax(tg(x3)), TF.log_softmax(x3))  # implicit dim 0 for 3-D input
    close(F.softmax(tg(x), 1, dtype=tracegrad.float64), TF.softmax(x, 1, dtype=torch.float64))


def test_gelu_erf_accuracy():
    x = torch.linspace(-8, 8, 20001, dtype=torch.float64)
    close(F.gelu(tg(x)), TF.gelu(x))
    close(tracegrad.erf(tg(x)), torch.erf(x))
    x32 = x.float()
    close(tracegrad.erf(tg(x32)), torch.erf(x32), atol=2e-7, rtol=0)
    close(F.gelu(tg(x32)), TF.gelu(x32))


def test_dropout():
    tracegrad.manual_seed(0)
    x = tracegrad.ones(200, 50, requires_grad=True)
    y = F.dropout(x, 0.3)
    assert grad_name(y) == grad_name(TF.dropout(torch.ones(2, 2, requires_grad=True), 0.3)) == "MulBackward0"
    v = y.detach().numpy()
    kept = v != 0
    assert abs(kept.mean() - 0.7) < 0.02
    np.testing.assert_allclose(v[kept], 1 / 0.7, rtol=1e-6)
    y.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), kept / 0.7, rtol=1e-6)
    assert F.dropout(x, 0.5, training=False) is x
    assert F.dropout(x, 0.0) is x
    assert (F.dropout(x, 1.0).detach().numpy() == 0).all()
    raises_like(lambda: F.dropout(x, 1.5), lambda: TF.dropout(torch.ones(2), 1.5))


# ---- convolution and pooling ------------------------------------------------------------------------------
CONVS = [
    dict(),
    dict(stride=2),
    dict(padding=1),
    dict(padding=(2, 1), stride=(2, 1)),
    dict(dilation=2, padding=2),
    dict(groups=2),
    dict(groups=4, padding=1),
    dict(padding="same"),
    dict(padding="same", dilation=2),
    dict(padding="valid"),
]


@pytest.mark.parametrize("dtype", DT)
@pytest.mark.parametrize("kw", CONVS, ids=[str(c) for c in CONVS])
@pytest.mark.parametrize("bias", [True, False])
def test_conv2d(kw, bias, dtype):
    g = kw.get("groups", 1)
    x = pair((2, 4, 9, 8), dtype, 5)
    w = pair((6 if g != 4 else 8, 4 // g, 3, 3), dtype, 6)
    b = pair((w[1].shape[0],), dtype, 7)
    ins = [x, w] + ([b] if bias else [])
    run_both(lambda *a: F.conv2d(a[0], a[1], a[2] if bias else None, **kw),
             lambda *a: TF.conv2d(a[0], a[1], a[2] if bias else None, **kw), ins, dtype)


WIDE = [dict(), dict(stride=2, padding=1), dict(dilation=2, padding=(2, 1)), dict(stride=(1, 2), padding="same")]


@pytest.mark.parametrize("kw", WIDE, ids=[str(c) for c in WIDE])
def test_conv2d_many_channels(kw):
    """16 input channels: the channels-last path, fused backward and (create_graph) recorded backward."""
    if kw.get("padding") == "same" and kw.get("stride") not in (None, 1):
        kw = dict(padding="same")
    x = pair((3, 16, 7, 6), "float64", 60)
    w = pair((12, 16, 3, 3), "float64", 61)
    b = pair((12,), "float64", 62)
    run_both(lambda *a: F.conv2d(*a, **kw), lambda *a: TF.conv2d(*a, **kw), [x, w, b], "float64")
    xo, xt = pair((2, 16, 5, 5), "float64", 63)
    wo, wt = pair((4, 16, 3, 3), "float64", 64)
    go = tracegrad.autograd.grad(upstream_loss(F.conv2d(xo, wo, **kw)), (xo, wo), create_graph=True)
    gt = torch.autograd.grad(upstream_loss(TF.conv2d(xt, wt, **kw)), (xt, wt), create_graph=True)
    for a, b_ in zip(go, gt):
        close(a, b_)
    ((go[0] ** 2).sum() + (go[1] ** 2).sum()).backward()
    ((gt[0] ** 2).sum() + (gt[1] ** 2).sum()).backward()
    close(xo.grad, xt.grad)
    close(wo.grad, wt.grad)


def test_conv2d_even_kernel_same_and_unbatched():
    x = pair((3, 7, 6), "float64", 8)
    w = pair((2, 3, 4, 2), "float64", 9)
    run_both(lambda a, b: F.conv2d(a, b, padding="same"), lambda a, b: TF.conv2d(a, b, padding="same"), [x, w],
             "float64", check_name=False)
    run_both(lambda a, b: F.conv2d(a, b, stride=2), lambda a, b: TF.conv2d(a, b, stride=2),
             [pair((3, 7, 6), "float64", 8), pair((2, 3, 4, 2), "float64", 9)], "float64")


def test_conv2d_errors():
    raises_like(lambda: F.conv2d(tracegrad.randn(2, 3), tracegrad.randn(4, 3, 3, 3)),
                lambda: TF.conv2d(torch.randn(2, 3), torch.randn(4, 3, 3, 3)))
    raises_like(lambda: F.conv2d(tracegrad.randn(2, 5, 8, 8), tracegrad.randn(4, 3, 3, 3)),
                lambda: TF.conv2d(torch.randn(2, 5, 8, 8), torch.randn(4, 3, 3, 3)))
    raises_like(lambda: F.conv2d(tracegrad.randn(2, 3, 2, 2), tracegrad.randn(4, 3, 3, 3)),
                lambda: TF.conv2d(torch.randn(2, 3, 2, 2), torch.randn(4, 3, 3, 3)))


MAXPOOLS = [
    dict(kernel_size=2),
    dict(kernel_size=3, stride=2, padding=1),
    dict(kernel_size=(2, 3), stride=(1, 2)),
    dict(kernel_size=2, dilation=2),
    dict(kernel_size=3, stride=2, ceil_mode=True),
    dict(kernel_size=2, stride=2, padding=1, ceil_mode=True),
    dict(kernel_size=3, stride=1),
]


@pytest.mark.parametrize("dtype", DT)
@pytest.mark.parametrize("kw", MAXPOOLS, ids=[str(c) for c in MAXPOOLS])
def test_max_pool2d(kw, dtype):
    x = pair((2, 3, 9, 10), dtype, 10)
    run_both(lambda a: F.max_pool2d(a, **kw), lambda a: TF.max_pool2d(a, **kw), [x], dtype)
    xo, xt = pair((2, 3, 9, 10), dtype, 10)
    vo, io = F.max_pool2d(xo, return_indices=True, **kw)
    vt, it = TF.max_pool2d(xt, return_indices=True, **kw)
    assert io.dtype is tracegrad.int64
    np.testing.assert_array_equal(io.numpy(), it.numpy())


@pytest.mark.parametrize("kw", MAXPOOLS[:5], ids=[str(c) for c in MAXPOOLS[:5]])
def test_max_pool2d_nan_and_inf(kw):
    x = torch.randn(2, 3, 9, 10, dtype=torch.float64)
    x[0, 0, 1, 1] = x[0, 0, 1, 0] = float("nan")  # NaN wins, the last one torch scans
    x[1, 2, :5, :5] = -float("inf")  # windows of only -inf report their first real position
    x[1, 1, 3, 3] = float("inf")
    vt, it = TF.max_pool2d(x, return_indices=True, **kw)
    vo, io = F.max_pool2d(tg(x), return_indices=True, **kw)
    np.testing.assert_array_equal(vo.numpy(), vt.numpy())
    np.testing.assert_array_equal(io.numpy(), it.numpy())


def test_max_pool2d_unbatched_ties_and_errors():
    x = torch.tensor([[[1.0, 1.0, 0.0], [1.0, 0.5, 2.0], [0.0, 2.0, 2.0]]], requires_grad=True)
    run_both(lambda a: F.max_pool2d(a, 2, 1), lambda a: TF.max_pool2d(a, 2, 1), [(tg(x, True), x)])
    raises_like(lambda: F.max_pool2d(tracegrad.randn(1, 1, 4, 4), 3, padding=2),
                lambda: TF.max_pool2d(torch.randn(1, 1, 4, 4), 3, padding=2))
    raises_like(lambda: F.max_pool2d(tracegrad.randn(2, 3), 2), lambda: TF.max_pool2d(torch.randn(2, 3), 2))


AVGPOOLS = [
    dict(kernel_size=2),
    dict(kernel_size=3, stride=2, padding=1),
    dict(kernel_size=3, stride=2, padding=1, count_include_pad=False),
    dict(kernel_size=3, stride=2, ceil_mode=True),
    dict(kernel_size=3, stride=2, padding=1, ceil_mode=True, count_include_pad=False),
    dict(kernel_size=(2, 3), divisor_override=4),
]


@pytest.mark.parametrize("dtype", DT)
@pytest.mark.parametrize("kw", AVGPOOLS, ids=[str(c) for c in AVGPOOLS])
def test_avg_pool2d(kw, dtype):
    x = pair((2, 3, 9, 10), dtype, 11)
    run_both(lambda a: F.avg_pool2d(a, **kw), lambda a: TF.avg_pool2d(a, **kw), [x], dtype)


@pytest.mark.parametrize("size", [1, (2, 2), (3, 3), (4, None), (7, 5)])
def test_adaptive_avg_pool2d(size):
    x = pair((2, 3, 7, 5), "float64", 12)
    run_both(lambda a: F.adaptive_avg_pool2d(a, size), lambda a: TF.adaptive_avg_pool2d(a, size), [x], "float64")


# ---- normalisation ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", DT)
@pytest.mark.parametrize("affine", ["both", "weight", "none"])
@pytest.mark.parametrize("shape", [(4, 6), (2, 3, 4, 5)])
def test_layer_norm(dtype, affine, shape):
    ns = shape[-1:] if len(shape) == 2 else shape[-2:]
    x = pair(shape, dtype, 13)
    w = pair(ns, dtype, 14)
    b = pair(ns, dtype, 15)
    ins = [x] + ([w] if affine != "none" else []) + ([b] if affine == "both" else [])

    def f(L, *a):
        return L.nn.functional.layer_norm(a[0], ns, a[1] if len(a) > 1 else None, a[2] if len(a) > 2 else None,
                                          eps=1e-4)

    run_both(lambda *a: f(tracegrad, *a), lambda *a: f(torch, *a), ins, dtype)


@pytest.mark.parametrize("dtype", DT)
@pytest.mark.parametrize("shape", [(8, 5), (4, 3, 6), (3, 4, 5, 2)])
@pytest.mark.parametrize("training", [True, False])
def test_batch_norm(dtype, shape, training):
    c = shape[1]
    x = pair(shape, dtype, 16)
    w = pair((c,), dtype, 17)
    b = pair((c,), dtype, 18)
    rm_t = torch.randn(c, dtype=getattr(torch, dtype))
    rv_t = torch.rand(c, dtype=getattr(torch, dtype)) + 0.5
    rm_o, rv_o = tg(rm_t), tg(rv_t)
    run_both(lambda *a: F.batch_norm(a[0], rm_o, rv_o, a[1], a[2], training, 0.3, 1e-3),
             lambda *a: TF.batch_norm(a[0], rm_t, rv_t, a[1], a[2], training, 0.3, 1e-3), [x, w, b], dtype)
    close(rm_o, rm_t, dtype, "running_mean")
    close(rv_o, rv_t, dtype, "running_var")


def test_batch_norm_no_stats_and_errors():
    x = pair((6, 4), "float64", 19)
    run_both(lambda a: F.batch_norm(a, None, None, training=True), lambda a: TF.batch_norm(a, None, None, training=True),
             [x], "float64")
    raises_like(lambda: F.batch_norm(tracegrad.randn(1, 5), tracegrad.zeros(5), tracegrad.ones(5), training=True),
                lambda: TF.batch_norm(torch.randn(1, 5), torch.zeros(5), torch.ones(5), training=True),
                "Expected more than 1 value per channel when training")
    raises_like(lambda: F.layer_norm(tracegrad.randn(4, 5), (4,)), lambda: TF.layer_norm(torch.randn(4, 5), (4,)))


# ---- embedding, one_hot, pad -------------------------------------------------------------------------------
@pytest.mark.parametrize("padding_idx", [None, 0, -1])
def test_embedding(padding_idx):
    w = pair((7, 4), "float64", 20)
    idx = torch.tensor([[0, 2, 2, 6], [1, 0, 6, 6]])
    run_both(lambda a: F.embedding(tg(idx), a, padding_idx), lambda a: TF.embedding(idx, a, padding_idx), [w],
             "float64")


def test_embedding_max_norm_and_errors():
    wt = torch.randn(5, 3) * 3
    wo = tg(wt)
    idx = torch.tensor([0, 1, 1, 3])
    out_t = TF.embedding(idx, wt, max_norm=1.0)
    out_o = F.embedding(tg(idx), wo, max_norm=1.0)
    close(out_o, out_t)
    close(wo, wt, msg="rows renormalised in place")
    raises_like(lambda: F.embedding(tracegrad.tensor([5]), tracegrad.randn(3, 2)),
                lambda: TF.embedding(torch.tensor([5]), torch.randn(3, 2)))
    raises_like(lambda: F.embedding(tracegrad.tensor([1.0]), tracegrad.randn(3, 2)),
                lambda: TF.embedding(torch.tensor([1.0]), torch.randn(3, 2)), "Expected tensor for argument #1")


def test_one_hot():
    t = torch.tensor([[0, 3], [2, 1]])
    for n in (-1, 5):
        o, r = F.one_hot(tg(t), n), TF.one_hot(t, n)
        assert o.dtype is tracegrad.int64
        np.testing.assert_array_equal(o.numpy(), r.numpy())
    raises_like(lambda: F.one_hot(tracegrad.tensor([3]), 2), lambda: TF.one_hot(torch.tensor([3]), 2))
    raises_like(lambda: F.one_hot(tracegrad.tensor([-1])), lambda: TF.one_hot(torch.tensor([-1])))
    raises_like(lambda: F.one_hot(tracegrad.tensor([1.0])), lambda: TF.one_hot(torch.tensor([1.0])))


PADS = [
    ((1, 2), "constant", None),
    ((1, 0, 2, 3), "constant", 1.5),
    ((-1, 2, 0, -2), "constant", None),
    ((2, 1, 1, 2), "reflect", None),
    ((2, 1, 1, 2), "replicate", None),
    ((2, 1, 1, 2), "circular", None),
    ((3, 3), "reflect", None),
]


@pytest.mark.parametrize("pad,mode,value", PADS, ids=[f"{p}-{m}" for p, m, _ in PADS])
def test_pad(pad, mode, value):
    x = pair((2, 3, 5, 4)[-len(pad) // 2 - 2:] if mode != "constant" else (2, 3, 5, 4), "float64", 21)
    kw = {} if value is None else {"value": value}
    run_both(lambda a: F.pad(a, pad, mode, **kw), lambda a: TF.pad(a, pad, mode, **kw), [x], "float64",
             check_name=(mode == "constant"))
    raises_like(lambda: F.pad(tracegrad.randn(2, 3), (1,)), lambda: TF.pad(torch.randn(2, 3), (1,)))
    raises_like(lambda: F.pad(tracegrad.randn(1, 2, 3, 4), (1, 1), "reflect"),
                lambda: TF.pad(torch.randn(1, 2, 3, 4), (1, 1), "reflect"))


def test_cosine_similarity():
    a, b = pair((4, 6), "float64", 22), pair((4, 6), "float64", 23)
    run_both(lambda x, y: F.cosine_similarity(x, y), lambda x, y: TF.cosine_similarity(x, y), [a, b], "float64",
             check_name=False)


# ---- losses -------------------------------------------------------------------------------------------------
RED = ["mean", "sum", "none"]


@pytest.mark.parametrize("dtype", DT)
@pytest.mark.parametrize("reduction", RED)
@pytest.mark.parametrize("name,kw", [("mse_loss", {}), ("l1_loss", {}), ("smooth_l1_loss", {}),
                                     ("smooth_l1_loss", {"beta": 0.5}), ("smooth_l1_loss", {"beta": 0.0}),
                                     ("huber_loss", {"delta": 2.0})])
def test_regression_losses(name, kw, reduction, dtype):
    x = pair((5, 4), dtype, 24)
    y = pair((5, 4), dtype, 25)
    run_both(lambda a, b: getattr(F, name)(a * 2, b, reduction=reduction, **kw),
             lambda a, b: getattr(TF, name)(a * 2, b, reduction=reduction, **kw), [x, y], dtype)


def test_mse_broadcast_warns():
    x, y = pair((4, 1), "float64", 26), pair((4,), "float64", 27)
    with pytest.warns(UserWarning, match="Using a target size"):
        o = F.mse_loss(x[0], y[0])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t = TF.mse_loss(x[1], y[1])
    close(o, t)
    raises_like(lambda: F.mse_loss(tracegrad.randn(4, 5), tracegrad.randn(3)),
                lambda: TF.mse_loss(torch.randn(4, 5), torch.randn(3)), "must match the size")


CE_CASES = [
    dict(),
    dict(reduction="sum"),
    dict(reduction="none"),
    dict(weight=True),
    dict(weight=True, reduction="none"),
    dict(ignore_index=1),
    dict(ignore_index=1, weight=True),
    dict(label_smoothing=0.2),
    dict(label_smoothing=0.2, weight=True, ignore_index=2),
    dict(label_smoothing=0.1, reduction="sum"),
    dict(label_smoothing=0.1, reduction="none", ignore_index=0),
]


@pytest.mark.parametrize("dtype", DT)
@pytest.mark.parametrize("kw", CE_CASES, ids=[str(c) for c in CE_CASES])
@pytest.mark.parametrize("shape", [(6, 5), (3, 5, 2, 4), (5,)])
def test_cross_entropy_indices(kw, shape, dtype):
    rng = np.random.default_rng(28)
    x = pair(shape, dtype, 29)
    c = shape[1] if len(shape) > 1 else shape[0]
    tshape = (shape[0],) + shape[2:] if len(shape) > 1 else ()
    target = torch.tensor(rng.integers(0, c, size=tshape))
    kw = dict(kw)
    if kw.pop("weight", False):
        wt = torch.tensor(rng.uniform(0.5, 2, c), dtype=getattr(torch, dtype))
        kw_o, kw_t = dict(kw, weight=tg(wt)), dict(kw, weight=wt)
    else:
        kw_o, kw_t = kw, kw
    run_both(lambda a: F.cross_entropy(a, tg(target), **kw_o), lambda a: TF.cross_entropy(a, target, **kw_t), [x],
             dtype)
    if not kw.get("label_smoothing"):
        lp = pair(shape, dtype, 30)
        run_both(lambda a: F.nll_loss(F.log_softmax(a, 1 if len(shape) > 1 else 0), tg(target), **kw_o),
                 lambda a: TF.nll_loss(TF.log_softmax(a, 1 if len(shape) > 1 else 0), target, **kw_t), [lp], dtype)


@pytest.mark.parametrize("kw", [dict(), dict(reduction="sum"), dict(reduction="none"), dict(label_smoothing=0.3),
                                dict(weight=True)])
def test_cross_entropy_probabilities(kw):
    x = pair((4, 5), "float64", 31)
    probs = torch.softmax(torch.randn(4, 5, dtype=torch.float64), 1)
    kw = dict(kw)
    if kw.pop("weight", False):
        wt = torch.rand(5, dtype=torch.float64) + 0.5
        kw_o, kw_t = dict(kw, weight=tg(wt)), dict(kw, weight=wt)
    else:
        kw_o, kw_t = kw, kw
    run_both(lambda a: F.cross_entropy(a, tg(probs), **kw_o), lambda a: TF.cross_entropy(a, probs, **kw_t), [x],
             "float64", check_name=False)


try:
    from hypothesis import given, strategies as st
except ImportError:  # pragma: no cover - hypothesis is a test extra
    given = None


def _fused_ce_case(n, c, reduction, ignore, dtype, seed):
    """(N, C) logits and class indices (some set to ignore_index): the one-op path of cross_entropy."""
    rng = np.random.default_rng(seed)
    x = pair((n, c), dtype, seed)
    t = rng.integers(0, c, size=n)
    if ignore:
        t[rng.random(n) < 0.3] = -100
    target = torch.tensor(t)
    out_o, out_t = run_both(lambda a: F.cross_entropy(a, tg(target), reduction=reduction),
                            lambda a: TF.cross_entropy(a, target, reduction=reduction), [x], dtype)
    assert len(out_o.grad_fn.next_functions) == len(out_t.grad_fn.next_functions) == 1


if given is not None:
    @given(n=st.integers(1, 40), c=st.integers(1, 20), reduction=st.sampled_from(["mean", "sum", "none"]),
           ignore=st.booleans(), dtype=st.sampled_from(DT), seed=st.integers(0, 2 ** 16))
    def test_cross_entropy_fused_path(n, c, reduction, ignore, dtype, seed):
        _fused_ce_case(n, c, reduction, ignore, dtype, seed)


@pytest.mark.parametrize("n,c", [(923, 4), (200, 10), (64, 16), (5, 40)])
def test_cross_entropy_fused_path_long_batches(n, c):
    """Batches long enough for the column-wise row reductions."""
    for reduction in ("mean", "none"):
        _fused_ce_case(n, c, reduction, True, "float32", n + c)
    x = pair((n, c), "float32", n)
    run_both(lambda a: F.softmax(a, 1), lambda a: TF.softmax(a, 1), [x])
    run_both(lambda a: F.log_softmax(a, -1), lambda a: TF.log_softmax(a, -1), [x])


def test_cross_entropy_every_target_ignored():
    x = pair((3, 4), "float64", 41)
    target = torch.tensor([-100, -100, -100])
    run_both(lambda a: F.cross_entropy(a, tg(target)), lambda a: TF.cross_entropy(a, target), [x], "float64")


def test_cross_entropy_retain_graph_and_free():
    """The one-op path keeps its softmax for a second backward with retain_graph, and frees like torch."""
    xo, xt = pair((5, 3), "float64", 42)
    t = torch.tensor([0, 2, 1, 1, 0])
    lo, lt = F.cross_entropy(xo, tg(t)), TF.cross_entropy(xt, t)
    lo.backward(retain_graph=True)
    lo.backward()
    lt.backward(retain_graph=True)
    lt.backward()
    close(xo.grad, xt.grad, "float64")
    raises_like(lambda: lo.backward(), lambda: lt.backward(), "second time")


@pytest.mark.parametrize("dtype,grad_rtol", [("float16", 4e-3), ("bfloat16", 4e-2)])
def test_cross_entropy_half_precision(dtype, grad_rtol):
    """Half-precision logits take log_softmax and nll_loss as two ops, as torch does. The gradient
    may still be a few units in the last place off: torch rounds the intermediate gradient of
    each backward kernel to the half type at other points than the float32 math here."""
    xt = torch.randn(6, 5, generator=torch.Generator().manual_seed(43)).to(getattr(torch, dtype))
    xt.requires_grad_(True)
    xo = tg(xt, True)
    t = torch.tensor([0, 4, 1, 2, 3, 3])
    lo, lt = F.cross_entropy(xo, tg(t)), TF.cross_entropy(xt, t)
    close(lo, lt, dtype)
    assert grad_name(lo) == grad_name(lt) and lo.grad_fn.next_functions[0][0].name() == "LogSoftmaxBackward0"
    lo.backward()
    lt.backward()
    close(xo.grad, xt.grad, dtype, rtol=grad_rtol, atol=1e-3)


def test_cross_entropy_errors():
    x = torch.randn(4, 5)
    cases = [
        (torch.tensor([0, 1, 2]), {}, None),
        (torch.tensor([0, 1, 2, 7]), {}, None),
        (torch.tensor([0, 1, -1, 3]), {}, None),
        (torch.tensor([0, 1, 5, 3]), {"ignore_index": 2}, None),
        (torch.tensor([0, -100, -3, 3]), {}, None),
        (torch.tensor([0.0, 1, 2, 3]), {}, None),
        (torch.tensor([0, 1, 2, 3]), {"reduction": "bad"}, None),
        (torch.tensor([0, 1, 2, 3]), {"label_smoothing": 1.5}, None),
    ]
    for t, kw, phrase in cases:
        raises_like(lambda: F.cross_entropy(tg(x), tg(t), **kw), lambda: TF.cross_entropy(x, t, **kw), phrase)
    raises_like(lambda: F.nll_loss(tg(x), tracegrad.tensor([0, 1, 2, -1])),
                lambda: TF.nll_loss(x, torch.tensor([0, 1, 2, -1])))
    raises_like(lambda: F.nll_loss(tracegrad.randn(4, 5, 3), tracegrad.randint(0, 5, (4, 2))),
                lambda: TF.nll_loss(torch.randn(4, 5, 3), torch.randint(0, 5, (4, 2))))


@pytest.mark.parametrize("dtype", DT)
@pytest.mark.parametrize("reduction", RED)
@pytest.mark.parametrize("weighted", [False, True])
def test_binary_cross_entropy(reduction, weighted, dtype):
    p = pair((4, 3), dtype, 32, low=0.02, high=0.98)
    t = pair((4, 3), dtype, 33, low=0.0, high=1.0)
    w = torch.rand(4, 3, dtype=getattr(torch, dtype)) + 0.5
    kw_o = {"weight": tg(w)} if weighted else {}
    kw_t = {"weight": w} if weighted else {}
    run_both(lambda a, b: F.binary_cross_entropy(a, b, reduction=reduction, **kw_o),
             lambda a, b: TF.binary_cross_entropy(a, b, reduction=reduction, **kw_t), [p, t], dtype)


def test_binary_cross_entropy_edges_and_errors():
    p = torch.tensor([0.0, 1.0, 0.5, 1e-30], dtype=torch.float64)
    t = torch.tensor([1.0, 0.0, 1.0, 0.0], dtype=torch.float64)
    close(F.binary_cross_entropy(tg(p), tg(t), reduction="none"), TF.binary_cross_entropy(p, t, reduction="none"))
    raises_like(lambda: F.binary_cross_entropy(tracegrad.rand(3) * 2 + 1, tracegrad.rand(3)),
                lambda: TF.binary_cross_entropy(torch.rand(3) * 2 + 1, torch.rand(3)))
    raises_like(lambda: F.binary_cross_entropy(tracegrad.rand(3), tracegrad.rand(3, 1)),
                lambda: TF.binary_cross_entropy(torch.rand(3), torch.rand(3, 1)))


@pytest.mark.parametrize("dtype", DT)
@pytest.mark.parametrize("reduction", RED)
@pytest.mark.parametrize("opts", ["plain", "weight", "pos_weight", "both"])
def test_bce_with_logits(reduction, opts, dtype):
    x = pair((5, 3), dtype, 34)
    t = pair((5, 3), dtype, 35, low=0.0, high=1.0)
    d = getattr(torch, dtype)
    w, pw = torch.rand(5, 3, dtype=d) + 0.5, torch.rand(3, dtype=d) * 3
    kw_t = {}
    if opts in ("weight", "both"):
        kw_t["weight"] = w
    if opts in ("pos_weight", "both"):
        kw_t["pos_weight"] = pw
    kw_o = {k: tg(v) for k, v in kw_t.items()}
    run_both(lambda a, b: F.binary_cross_entropy_with_logits(a * 4, b, reduction=reduction, **kw_o),
             lambda a, b: TF.binary_cross_entropy_with_logits(a * 4, b, reduction=reduction, **kw_t), [x, t], dtype)


def test_bce_with_logits_is_stable():
    x = torch.tensor([-200.0, -50.0, 0.0, 50.0, 200.0], requires_grad=True)
    t = torch.tensor([1.0, 0.0, 0.5, 1.0, 0.0])
    run_both(lambda a: F.binary_cross_entropy_with_logits(a, tg(t), reduction="none"),
             lambda a: TF.binary_cross_entropy_with_logits(a, t, reduction="none"), [(tg(x, True), x)])


# ---- double backward ------------------------------------------------------------------------------------------
DOUBLE = [
    ("linear", lambda L, x: L.nn.functional.linear(x, x[:2] * 2, x[0, :2])),
    ("leaky_relu", lambda L, x: L.nn.functional.leaky_relu(x ** 3, 0.3)),
    ("softmax", lambda L, x: L.nn.functional.softmax(x, 1)),
    ("log_softmax", lambda L, x: L.nn.functional.log_softmax(x, 1)),
    ("gelu", lambda L, x: L.nn.functional.gelu(x)),
    ("silu", lambda L, x: L.nn.functional.silu(x)),
    ("layer_norm", lambda L, x: L.nn.functional.layer_norm(x, (4,))),
    ("layer_norm_affine", lambda L, x: L.nn.functional.layer_norm(x, (4,), x[0] * 2, x[1])),
    ("batch_norm", lambda L, x: L.nn.functional.batch_norm(x, None, None, x[0, :4] + 1, None, training=True)),
    ("mse", lambda L, x: L.nn.functional.mse_loss(x, x.detach() * 0.5 + 1)),
    ("cross_entropy", lambda L, x: L.nn.functional.cross_entropy(x, L.tensor([0, 3, 1]))),
    ("bce_logits", lambda L, x: L.nn.functional.binary_cross_entropy_with_logits(x, x.detach().sigmoid())),
    ("conv2d", lambda L, x: L.nn.functional.conv2d(x.reshape(1, 1, 3, 4), x.reshape(3, 1, 2, 2)[:, :, :2, :2])),
    ("max_pool", lambda L, x: L.nn.functional.max_pool2d(x.reshape(1, 1, 3, 4) ** 2, 2, 1)),
    ("avg_pool", lambda L, x: L.nn.functional.avg_pool2d(x.reshape(1, 1, 3, 4) ** 2, 2, 1, padding=1)),
    ("adaptive", lambda L, x: L.nn.functional.adaptive_avg_pool2d(x.reshape(1, 3, 4) ** 2, (2, 3))),
    ("embedding", lambda L, x: L.nn.functional.embedding(L.tensor([0, 2, 2]), x) ** 2),
    ("pad", lambda L, x: L.nn.functional.pad(x ** 2, (1, -1, 2, 0))),
]


@pytest.mark.parametrize("name,fn", DOUBLE, ids=[d[0] for d in DOUBLE])
def test_double_backward(name, fn):
    xo, xt = pair((3, 4), "float64", 36)
    go = tracegrad.autograd.grad(upstream_loss(fn(tracegrad, xo)), xo, create_graph=True)[0]
    gt = torch.autograd.grad(upstream_loss(fn(torch, xt)), xt, create_graph=True)[0]
    close(go, gt, "float64", "first derivative")
    (go * go).sum().backward()
    (gt * gt).sum().backward()
    close(xo.grad, xt.grad, "float64", "second derivative")


# ---- decompositions (what a tracer sees) -----------------------------------------------------------------------
def test_decompositions_match_torch():
    xo, xt = pair((4, 6), "float64", 37)
    yo, yt = pair((4, 6), "float64", 38)
    wo, wt = pair((6,), "float64", 39)
    bo, bt = pair((6,), "float64", 40)
    D = nn_ops.DECOMPOSITIONS
    close(D["softmax"](xo, 1), TF.softmax(xt, 1))
    close(D["log_softmax"](xo, 0), TF.log_softmax(xt, 0))
    close(D["mse_loss"](xo, yo, "sum"), TF.mse_loss(xt, yt, reduction="sum"))
    close(D["gelu"](xo), TF.gelu(xt))
    close(D["gelu"](xo, "tanh"), TF.gelu(xt, approximate="tanh"))
    out_o = D["layer_norm"](xo, wo, bo, 1, 1e-5)
    out_t = TF.layer_norm(xt, (6,), wt, bt)
    close(out_o, out_t)
    upstream_loss(out_o).backward()
    upstream_loss(out_t).backward()
    close(xo.grad, xt.grad)
    close(wo.grad, wt.grad)


TRACED = [
    ("softmax", lambda x: F.softmax(x, 1), {"amax", "sub", "exp", "sum", "div"}),
    ("log_softmax", lambda x: F.log_softmax(x, 0), {"amax", "sub", "exp", "sum", "log"}),
    ("gelu", lambda x: F.gelu(x), {"mul", "erf", "add"}),
    ("layer_norm", lambda x: F.layer_norm(x, (5,)), {"mean", "sub", "mul", "add", "rsqrt"}),
    ("mse_loss", lambda x: F.mse_loss(x, x * 2), {"mul", "sub", "mean"}),
]


@pytest.mark.parametrize("name,fn,prims", TRACED, ids=[t[0] for t in TRACED])
def test_traced_composites_are_primitives(name, fn, prims):
    """Under the tracer the composites decompose (what fusion wants to see); compiled = eager."""
    x = tracegrad.randn(4, 5)
    ops = {n.op.name for n in tracegrad.trace(fn, x).nodes}
    assert ops <= prims and name not in ops
    close(tracegrad.compile(fn)(x), th(fn(x)))
