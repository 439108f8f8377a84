"""More ops on eager CUDA tensors, against torch on the CPU: flip, repeat, constant padding (movement.py);
nansum, norm, any/all, smooth_l1/huber, binary cross entropy (on probabilities and logits),
batch_norm and leaky_relu's backward (composite.py and the op table's lowering).

Each must run as device kernels forward and backward: the `cuda` fixture fails a test
in which any op fell back to the host. The last test compiles the kernels a realistic
workload launches for sm_90.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

import tracegrad
from test_cuda_eager_aot import assert_compiles_for_sm90, dev
from test_cuda_eager_composite import HALF, check, close, cuda, leaf  # noqa: F401  (cuda: the fixture)

F = tracegrad.nn.functional
TF = torch.nn.functional


def strided(a, dtype=None):
    """leaf() of a non-contiguous tensor: every other column of a wider array, as a leaf of its own."""
    wide = np.repeat(a, 2, axis=-1)
    x = tracegrad.tensor(wide, device="cuda")[..., ::2].detach()
    tx = torch.tensor(wide)[..., ::2].detach()
    if dtype is not None:
        x, tx = x.to(getattr(tracegrad, dtype)), tx.to(getattr(torch, dtype))
    assert not x.is_contiguous()
    return x.requires_grad_(), tx.requires_grad_()


def both(name):
    """fn(x) that calls tracegrad's or torch's functional `name`, whichever x belongs to."""
    return lambda x, *a, **k: getattr(F if isinstance(x, tracegrad.Tensor) else TF, name)(x, *a, **k)


# ---- movement ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("make", [leaf, strided], ids=["contiguous", "strided"])
def test_flip_repeat_and_pad(cuda, rng, make):
    a = rng.standard_normal((3, 4, 5)).astype(np.float32)
    pad = both("pad")
    cases = [lambda x: x.flip(0, 2), lambda x: x.flip(-1), lambda x: x.transpose(0, 2).flip(1),
             lambda x: x.repeat(2, 1, 3), lambda x: x.repeat(2, 1, 1, 2), lambda x: x.permute(2, 0, 1).repeat(1, 2, 1),
             lambda x: pad(x, (1, 2, 0, 3), value=2.5), lambda x: pad(x, (1, -2, -1, 1, 2, 0)),
             lambda x: pad(x.transpose(1, 2), (-1, -2))]
    for fn in cases:
        up = rng.standard_normal(tuple(fn(torch.tensor(a)).shape)).astype(np.float32)
        check(fn, fn, *map(lambda v: [v], make(a)), up)


def test_flip_repeat_and_pad_half_bool_and_int(cuda, rng):
    a = rng.standard_normal((6, 7)).astype(np.float32)
    check(lambda x: x.flip(1).repeat(2, 1), lambda x: x.flip(1).repeat(2, 1), *map(lambda v: [v], leaf(a, "float16")),
          **HALF)
    pad = both("pad")
    check(lambda x: pad(x, (2, 1), value=-1.0), lambda x: pad(x, (2, 1), value=-1.0),
          *map(lambda v: [v], leaf(a, "float16")), **HALF)
    b = a > 0
    close(tracegrad.tensor(b, device="cuda").flip(0).repeat(1, 2), torch.tensor(b).flip(0).repeat(1, 2))
    n = rng.integers(-5, 5, (4, 3))
    close(F.pad(tracegrad.tensor(n, device="cuda"), (1, 1, 2, 0), value=7),
          TF.pad(torch.tensor(n), (1, 1, 2, 0), value=7))
    close(tracegrad.tensor(n, device="cuda").flip(0, 1), torch.tensor(n).flip(0, 1))


def test_movement_edge_shapes(cuda, rng):
    a = rng.standard_normal((3, 4)).astype(np.float32)
    x, tx = tracegrad.tensor(a, device="cuda"), torch.tensor(a)
    close(x.repeat(0, 2), tx.repeat(0, 2))  # no tiles: an empty output
    close(F.pad(x, (-2, -2)), TF.pad(tx, (-2, -2)))  # cropped to nothing
    close(F.pad(x[:0], (1, 1), value=3.0), TF.pad(tx[:0], (1, 1), value=3.0))
    close(F.pad(x, (0, 0, 2, 0), value=float("-inf")), TF.pad(tx, (0, 0, 2, 0), value=float("-inf")))
    s = tracegrad.tensor(2.0, device="cuda")
    close(s.flip(()), torch.tensor(2.0).flip(()))
    close(s.repeat(2, 3), torch.tensor(2.0).repeat(2, 3))


# ---- reductions ---------------------------------------------------------------------------------------
def test_nansum(cuda, rng):
    a = rng.standard_normal((4, 5, 6)).astype(np.float32)
    a[rng.random(a.shape) < 0.2] = np.nan
    up = rng.standard_normal((4, 6)).astype(np.float32)
    check(lambda x: x.nansum(1), lambda x: x.nansum(1), *map(lambda v: [v], leaf(a)), up)
    check(lambda x: x.nansum((0, 2), keepdim=True), lambda x: x.nansum((0, 2), keepdim=True),
          *map(lambda v: [v], strided(a)))
    check(lambda x: x.nansum(), lambda x: x.nansum(), *map(lambda v: [v], leaf(a, "float16")), **HALF)
    n = rng.integers(-9, 9, (5, 7))
    close(tracegrad.tensor(n, device="cuda").nansum(0), torch.tensor(n).nansum(0))
    close(tracegrad.tensor(a[:0], device="cuda").nansum(), torch.tensor(a[:0]).nansum())  # empty: 0
    close(tracegrad.tensor(np.float32("nan"), device="cuda").nansum(), torch.tensor(float("nan")).nansum())


@pytest.mark.parametrize("p", [2, 1, float("inf"), -float("inf"), 0, 3, 0.5])
def test_norm(cuda, rng, p):
    a = rng.standard_normal((5, 6, 7)).astype(np.float32)
    a[0, 0, :3] = 0.0  # zeros: p = 0 counts them out, and p < 1's gradient must stay finite on the rest
    for make, dim, keep in ((leaf, None, False), (strided, -1, False), (leaf, (0, 2), True)):
        x, tx = make(a)
        y, ty = x.norm(p, dim, keep), tx.norm(p, dim, keep)
        close(y, ty, atol=1e-5, rtol=1e-5)
        if p in (2, 1, 3, float("inf")):
            up = rng.standard_normal(tuple(ty.shape)).astype(np.float32)
            (y * tracegrad.tensor(up, device="cuda")).sum().backward()
            (ty * torch.tensor(up)).sum().backward()
            close(x.grad, tx.grad, atol=1e-5, rtol=1e-5)


def test_norm_half_and_zero_dims(cuda, rng):
    a = rng.standard_normal((8, 300)).astype(np.float32)
    check(lambda x: x.norm(dim=1), lambda x: x.norm(dim=1), *map(lambda v: [v], leaf(a, "float16")), **HALF)
    close(tracegrad.tensor(-3.0, device="cuda").norm(), torch.tensor(-3.0).norm())  # a 0-d input: |x|
    close(tracegrad.tensor(a[:, :0], device="cuda").norm(dim=1), torch.tensor(a[:, :0]).norm(dim=1))


def test_any_and_all(cuda, rng):
    a = rng.standard_normal((4, 5, 6)).astype(np.float32)
    a[a > 0.5] = 0.0
    a[0, 0, 0] = np.nan  # NaN is true
    a[1] = 0.0
    a[2] = 1.0
    for vals in (a, np.nan_to_num(a).astype(np.int64), a > 0, (a != 0).astype(np.uint8)):
        x, tx = tracegrad.tensor(vals, device="cuda"), torch.tensor(vals)
        for name in ("any", "all"):
            for args in ((), (1,), (-1, True), ((0, 2),)):
                y, ty = getattr(x, name)(*args), getattr(tx, name)(*args)
                assert str(y.dtype).replace("tracegrad", "torch") == str(ty.dtype)  # bool; uint8 for uint8
                close(y.to(tracegrad.int64), ty.to(torch.int64))
    xt, txt = tracegrad.tensor(a[:, :, 0], device="cuda").t(), torch.tensor(a[:, :, 0]).t()  # a transposed input
    close(xt.any(0).long(), txt.any(0).long())
    close(xt.all(1).long(), txt.all(1).long())
    e, te = tracegrad.tensor(a[:0], device="cuda"), torch.tensor(a[:0])
    close(e.any().long(), te.any().long())  # empty: False
    close(e.all().long(), te.all().long())  # empty: True
    close(e.all(1).long(), te.all(1).long())
    close(tracegrad.any(tracegrad.tensor(a, device="cuda"), ()).long(), torch.any(torch.tensor(a), ()).long())


# ---- losses ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_smooth_l1_and_huber(cuda, rng, reduction):
    a = (rng.standard_normal((6, 7)) * 2).astype(np.float32)
    b = rng.standard_normal((6, 7)).astype(np.float32)
    for beta in (1.0, 0.5, 0.0):
        check(lambda x, t: F.smooth_l1_loss(x, t, reduction=reduction, beta=beta),
              lambda x, t: TF.smooth_l1_loss(x, t, reduction=reduction, beta=beta), *zip(strided(a), leaf(b)))
    check(lambda x, t: F.huber_loss(x, t, reduction=reduction, delta=0.7),
          lambda x, t: TF.huber_loss(x, t, reduction=reduction, delta=0.7), *zip(leaf(a), strided(b)))
    check(lambda x, t: F.smooth_l1_loss(x, t, reduction=reduction),
          lambda x, t: TF.smooth_l1_loss(x, t, reduction=reduction), *zip(leaf(a, "float16"), leaf(b, "float16")),
          **HALF)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_binary_cross_entropy(cuda, rng, reduction):
    p = rng.uniform(0.01, 0.99, (8, 5)).astype(np.float32)
    p[0, :2] = (0.0, 1.0)  # torch clamps the logs at -100 here
    t = rng.uniform(0, 1, (8, 5)).astype(np.float32)
    w = rng.uniform(0.5, 2, (5,)).astype(np.float32)
    # (not at p = 0 or 1 for the gradients: torch's and ours divide by max(p (1 - p), 1e-12) there alike,
    # but a float32 ulp of p makes that 1e12 a different number)
    q = p.copy()
    q[0, :2] = (0.3, 0.6)
    close(F.binary_cross_entropy(tracegrad.tensor(p, device="cuda"), tracegrad.tensor(t, device="cuda"),
                                 reduction=reduction),
          TF.binary_cross_entropy(torch.tensor(p), torch.tensor(t), reduction=reduction))
    check(lambda p, t: F.binary_cross_entropy(p, t, reduction=reduction),
          lambda p, t: TF.binary_cross_entropy(p, t, reduction=reduction), *zip(strided(q), leaf(t)))
    wd, tw = tracegrad.tensor(w, device="cuda"), torch.tensor(w)
    check(lambda p, t: F.binary_cross_entropy(p, t, wd, reduction=reduction),
          lambda p, t: TF.binary_cross_entropy(p, t, tw, reduction=reduction), *zip(leaf(q), leaf(t)))
    check(lambda p, t: F.binary_cross_entropy(p, t, reduction=reduction),
          lambda p, t: TF.binary_cross_entropy(p, t, reduction=reduction), *zip(leaf(q, "float16"), leaf(t, "float16")),
          **HALF)


@pytest.mark.parametrize("bad", [1.5, -0.1, float("nan")])
@pytest.mark.parametrize("reduction", ["mean", "none"])
def test_binary_cross_entropy_refuses_probabilities_outside_0_1(cuda, bad, reduction):
    p = np.full((3, 4), 0.5, np.float32)
    p[1, 2] = bad
    t = np.zeros((3, 4), np.float32)
    with pytest.raises(RuntimeError, match="all elements of input should be between 0 and 1"):
        TF.binary_cross_entropy(torch.tensor(p), torch.tensor(t), reduction=reduction)
    with pytest.raises(RuntimeError, match="all elements of input should be between 0 and 1"):
        F.binary_cross_entropy(tracegrad.tensor(p, device="cuda"), tracegrad.tensor(t, device="cuda"),
                               reduction=reduction)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_binary_cross_entropy_with_logits(cuda, rng, reduction):
    x = (rng.standard_normal((8, 5)) * 4).astype(np.float32)
    x[0, :2] = (60.0, -60.0)  # exp would overflow without the stable form
    t = rng.uniform(0, 1, (8, 5)).astype(np.float32)
    w = rng.uniform(0.5, 2, (8, 1)).astype(np.float32)
    pw = rng.uniform(0.5, 3, (5,)).astype(np.float32)
    check(lambda x, t: F.binary_cross_entropy_with_logits(x, t, reduction=reduction),
          lambda x, t: TF.binary_cross_entropy_with_logits(x, t, reduction=reduction), *zip(strided(x), leaf(t)))
    wd, pwd = tracegrad.tensor(w, device="cuda"), tracegrad.tensor(pw, device="cuda")
    check(lambda x, t: F.binary_cross_entropy_with_logits(x, t, wd, pos_weight=pwd, reduction=reduction),
          lambda x, t: TF.binary_cross_entropy_with_logits(x, t, torch.tensor(w), pos_weight=torch.tensor(pw),
                                                           reduction=reduction), *zip(leaf(x), strided(t)))
    check(lambda x, t: F.binary_cross_entropy_with_logits(x, t, reduction=reduction),
          lambda x, t: TF.binary_cross_entropy_with_logits(x, t, reduction=reduction),
          *zip(leaf(x, "float16"), leaf(t, "float16")), **HALF)


def test_losses_of_empty_and_0d_inputs(cuda):
    e = np.zeros((0, 3), np.float32)
    for red in ("mean", "sum"):
        close(F.smooth_l1_loss(tracegrad.tensor(e, device="cuda"), tracegrad.tensor(e, device="cuda"), reduction=red),
              TF.smooth_l1_loss(torch.tensor(e), torch.tensor(e), reduction=red), equal_nan=True)  # mean: 0 / 0
    x, t = np.float32(0.3), np.float32(1.0)
    close(F.binary_cross_entropy_with_logits(tracegrad.tensor(x, device="cuda"), tracegrad.tensor(t, device="cuda")),
          TF.binary_cross_entropy_with_logits(torch.tensor(x), torch.tensor(t)))
    close(F.binary_cross_entropy(tracegrad.tensor(x, device="cuda"), tracegrad.tensor(t, device="cuda")),
          TF.binary_cross_entropy(torch.tensor(x), torch.tensor(t)))


# ---- batch_norm -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("shape", [(8, 5), (4, 3, 6, 5)], ids=["2d", "4d"])
def test_batch_norm_training_and_eval(cuda, rng, shape):
    a = (rng.standard_normal(shape) * 3 + 1).astype(np.float32)
    c = shape[1]
    w, b = rng.standard_normal(c).astype(np.float32), rng.standard_normal(c).astype(np.float32)
    rm0, rv0 = rng.standard_normal(c).astype(np.float32), rng.uniform(0.5, 2, c).astype(np.float32)
    rm, rv = tracegrad.tensor(rm0, device="cuda"), tracegrad.tensor(rv0, device="cuda")
    trm, trv = torch.tensor(rm0), torch.tensor(rv0)
    up = rng.standard_normal(shape).astype(np.float32)
    for make in (leaf, strided):
        for training in (True, False):
            (x, wd, bd), (tx, tw, tb) = zip(make(a), leaf(w), leaf(b))
            check(lambda x, w, b: F.batch_norm(x, rm, rv, w, b, training=training, momentum=0.2),
                  lambda x, w, b: TF.batch_norm(x, trm, trv, w, b, training=training, momentum=0.2),
                  [x, wd, bd], [tx, tw, tb], up, atol=1e-4, rtol=1e-4)
            close(rm, trm, atol=1e-5, rtol=1e-5)  # training moved the running stats, evaluation left them
            close(rv, trv, atol=1e-5, rtol=1e-5)
    # no affine parameters, no running stats; and in half precision
    check(lambda x: F.batch_norm(x, None, None, training=True), lambda x: TF.batch_norm(x, None, None, training=True),
          *map(lambda v: [v], leaf(a)), up, atol=1e-4, rtol=1e-4)
    check(lambda x: F.batch_norm(x, rm, rv, training=True), lambda x: TF.batch_norm(x, trm, trv, training=True),
          *map(lambda v: [v], leaf(a, "float16")), up, **HALF)


def test_batch_norm_module_in_channels_last_layout(cuda, rng):
    a = rng.standard_normal((4, 6, 5, 3)).astype(np.float32)
    bn, tbn = tracegrad.nn.BatchNorm2d(3).to("cuda"), torch.nn.BatchNorm2d(3)
    x, tx = leaf(a)
    check(lambda x: bn(x.permute(0, 3, 1, 2)), lambda x: tbn(x.permute(0, 3, 1, 2)), [x], [tx], atol=1e-4, rtol=1e-4)
    close(bn.running_mean, tbn.running_mean, atol=1e-5, rtol=1e-5)
    close(bn.running_var, tbn.running_var, atol=1e-5, rtol=1e-5)
    close(bn.weight.grad, tbn.weight.grad, atol=1e-4, rtol=1e-4)
    bn.eval(), tbn.eval()
    close(bn(x.permute(0, 3, 1, 2)), tbn(tx.permute(0, 3, 1, 2)), atol=1e-5, rtol=1e-5)


# ---- pointwise -----------------------------------------------------------------------------------------------
def test_leaky_relu_backward_masked_fill_and_where(cuda, rng):
    a = rng.standard_normal((6, 7)).astype(np.float32)
    a[0, 0] = 0.0  # the kink: torch's gradient there is the slope's
    for slope in (0.01, 0.2, -1.5):
        check(lambda x: F.leaky_relu(x, slope), lambda x: TF.leaky_relu(x, slope), *map(lambda v: [v], strided(a)))
    check(lambda x: F.leaky_relu(x, 0.1), lambda x: TF.leaky_relu(x, 0.1), *map(lambda v: [v], leaf(a, "float16")),
          **HALF)
    m = a > 0.3
    check(lambda x: x.masked_fill(tracegrad.tensor(m, device="cuda"), -2.0),
          lambda x: x.masked_fill(torch.tensor(m), -2.0), *map(lambda v: [v], leaf(a)))
    check(lambda x: x.t().masked_fill(tracegrad.tensor(m.T.copy(), device="cuda"), 5.0),  # a transposed input
          lambda x: x.t().masked_fill(torch.tensor(m.T.copy()), 5.0), *map(lambda v: [v], strided(a)))
    assert tracegrad.tensor(a, device="cuda").t().masked_fill(tracegrad.tensor(m.T.copy(), device="cuda"),
                                                              5.0).is_contiguous()  # row-major, as torch's is
    check(lambda x: tracegrad.where(tracegrad.tensor(m, device="cuda"), x, x * 3),
          lambda x: torch.where(torch.tensor(m), x, x * 3), *map(lambda v: [v], strided(a)))


# ---- sm_90 -----------------------------------------------------------------------------------------------------
def more_ops(rng):
    """Every kernel above at the sizes where register pressure shows: 64x96 tiles, 4096-wide and looped rows."""
    x = dev(rng, 64, 96, requires_grad=True)
    g = dev(rng, 64, 96)
    (x.flip(0, 1) * g).sum().backward()
    (x.t().flip(1) * g.t()).sum().backward()
    x.repeat(2, 3).sum().backward()
    (F.pad(x, (3, 5, -2, 4), value=1.5)).sum().backward()
    dev(rng, 64, 96, dtype=tracegrad.float16).flip(1).repeat(1, 2)
    for shape in ((8, 4096), (4, 5000)):  # a whole-block row and a looped row
        r = dev(rng, *shape, requires_grad=True)
        r.nansum(-1).sum().backward()
        for p in (2, 1, float("inf"), 0, 3):
            r.norm(p, -1)
        r.norm(dim=-1).sum().backward()
        (r > 0).any(-1), (r > -5).all(-1), r.any(), r.all(0)
    dev(rng, 64, 96, dtype=tracegrad.float16).norm(dim=1)
    e = dev(rng, 0, 96)  # empty reductions: fill kernels of each identity's dtype
    e.nansum(), e.norm(), e.any(), e.all(1), e.long().nansum()
    F.pad(tracegrad.tensor(rng.integers(0, 9, (64, 96)), device="cuda"), (1, 1, 1, 1), value=-1)
    y, t = dev(rng, 64, 96, requires_grad=True), dev(rng, 64, 96)
    for reduction in ("mean", "sum", "none"):
        F.smooth_l1_loss(y, t, reduction=reduction).sum().backward()
        F.huber_loss(y, t, reduction=reduction).sum().backward()
        F.binary_cross_entropy(y.sigmoid(), t.sigmoid(), reduction=reduction).sum().backward()
        F.binary_cross_entropy_with_logits(y, t.sigmoid(), dev(rng, 96).abs(), pos_weight=dev(rng, 96).abs(),
                                           reduction=reduction).sum().backward()
    F.leaky_relu(y, 0.2).sum().backward()
    for shape in ((256, 96), (32, 64, 16, 16)):  # BatchNorm1d rows and a conv-net activation
        bn = tracegrad.nn.BatchNorm1d(shape[1]) if len(shape) == 2 else tracegrad.nn.BatchNorm2d(shape[1])
        bn = bn.to("cuda")
        xb = dev(rng, *shape, requires_grad=True)
        (bn(xb) * dev(rng, *shape)).sum().backward()
        bn.eval()
        bn(xb)
    F.batch_norm(dev(rng, 32, 64, 16, 16, dtype=tracegrad.float16), None, None, training=True)


def test_more_kernels_compile_for_sm90_without_spills(rng):
    assert_compiles_for_sm90(more_ops, rng, {"pointwise", "reduction"})
