"""Composite ops on eager CUDA tensors (softmax, losses, layer_norm, cat/stack), against torch on the CPU.

Each op must run as device kernels (composite.py), never on the host: the `cuda`
fixture fails a test whose ops fell back. Values and gradients are compared; the
simulated device runs each kernel under Triton's interpreter, so shapes stay small.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

import tracegrad
from cuda_device import cuda  # noqa: F401  (the fixture)

F = tracegrad.nn.functional
TF = torch.nn.functional




def leaf(a, dtype=None):
    """A CUDA leaf and a torch CPU leaf holding the same values (cast to dtype), both requiring grad."""
    x = tracegrad.tensor(a, device="cuda")
    tx = torch.tensor(a)
    if dtype is not None:
        x, tx = x.to(getattr(tracegrad, dtype)), tx.to(getattr(torch, dtype))
    return x.requires_grad_(), tx.requires_grad_()


def close(ours, theirs, **tol) -> None:
    assert ours.is_cuda, "the result left the device"
    assert tuple(ours.shape) == tuple(theirs.shape)
    got = torch.from_numpy(np.array(ours.detach().cpu().float()._values()))
    torch.testing.assert_close(got, theirs.detach().float(), **tol)


def check(fn, tfn, xs, txs, upstream=None, **tol):
    """fn(*xs) matches tfn(*txs), and so do the gradients of (out * upstream).sum()."""
    y, ty = fn(*xs), tfn(*txs)
    close(y, ty, **tol)
    w = np.ones(ty.shape, np.float32) if upstream is None else upstream
    (y * tracegrad.tensor(w, device="cuda").to(y.dtype)).sum().backward()
    (ty * torch.tensor(w).to(ty.dtype)).sum().backward()
    for x, tx in zip(xs, txs):
        if tx.grad is not None:
            close(x.grad, tx.grad, **tol)


HALF = dict(atol=1e-2, rtol=1e-2)  # a half-precision ulp, amplified by the backward formulas


def test_softmax_and_log_softmax_along_any_dim(cuda, rng):
    a = rng.standard_normal((3, 5, 7)).astype(np.float32)
    up = rng.standard_normal((3, 5, 7)).astype(np.float32)  # a gradient that is not a stride-0 expand
    for dim in (-1, 1, 0):
        check(lambda x: F.softmax(x, dim), lambda x: torch.softmax(x, dim), *map(lambda v: [v], leaf(a)), up)
        check(lambda x: F.log_softmax(x, dim), lambda x: torch.log_softmax(x, dim), *map(lambda v: [v], leaf(a)),
              up)
    # a transposed input, and the gradient of a plain sum (an expanded ones tensor)
    x, tx = leaf(a[0])
    check(lambda x: F.softmax(x.t(), -1), lambda x: torch.softmax(x.t(), -1), [x], [tx])


def test_softmax_half_precision(cuda, rng):
    a = rng.standard_normal((6, 33)).astype(np.float32)
    for dt in ("float16", "bfloat16"):
        tol = HALF if dt == "float16" else dict(atol=2e-2, rtol=2e-2)
        x, tx = leaf(a, dt)
        check(lambda x: F.softmax(x, -1), lambda x: torch.softmax(x, -1), [x], [tx], **tol)
        x, tx = leaf(a, dt)
        check(lambda x: F.log_softmax(x, -1), lambda x: torch.log_softmax(x, -1), [x], [tx], **tol)


def test_softmax_over_a_row_longer_than_one_block(cuda, rng):
    """Past 4096 elements a row is walked in blocks: the max, the sum and the stores each take a pass."""
    a = (rng.standard_normal((2, 5000)) * 4).astype(np.float32)
    up = rng.standard_normal((2, 5000)).astype(np.float32)
    check(lambda x: F.log_softmax(x, -1), lambda x: torch.log_softmax(x, -1), *map(lambda v: [v], leaf(a)), up)


def test_softmax_of_infinities_is_torchs(cuda):
    a = np.array([[0.0, -np.inf, 1.0], [-np.inf, -np.inf, -np.inf], [np.inf, 0.0, 1.0]], np.float32)
    x, tx = tracegrad.tensor(a, device="cuda"), torch.tensor(a)
    close(F.softmax(x, -1), torch.softmax(tx, -1), equal_nan=True)
    close(F.log_softmax(x, -1), torch.log_softmax(tx, -1), equal_nan=True)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_cross_entropy_with_class_targets(cuda, rng, reduction):
    a = rng.standard_normal((6, 5)).astype(np.float32)
    t = np.array([0, 4, 2, -100, 1, 4])  # one ignored row
    up = rng.standard_normal(6).astype(np.float32) if reduction == "none" else None
    for dt in (None, "float64", "float16"):  # float16 goes through log_softmax and nll_loss
        x, tx = leaf(a, dt)
        tt = tracegrad.tensor(t, device="cuda")
        check(lambda x: F.cross_entropy(x, tt, reduction=reduction),
              lambda x: TF.cross_entropy(x, torch.tensor(t), reduction=reduction), [x], [tx], up,
              **(HALF if dt == "float16" else {}))


def test_cross_entropy_with_every_target_ignored(cuda, rng):
    a = rng.standard_normal((3, 4)).astype(np.float32)
    t = np.full(3, -100)
    x, tx = leaf(a)
    check(lambda x: F.cross_entropy(x, tracegrad.tensor(t, device="cuda")),
          lambda x: TF.cross_entropy(x, torch.tensor(t)), [x], [tx], equal_nan=True)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_nll_loss_with_weights_and_images(cuda, rng, reduction):
    w = rng.uniform(0.5, 2.0, 5).astype(np.float32)
    t = np.array([0, 4, 2, 3, 1, 4])
    a = rng.standard_normal((6, 5)).astype(np.float32)
    for weight in (None, w):
        x, tx = leaf(a)
        tw = None if weight is None else torch.tensor(weight)
        dw = None if weight is None else tracegrad.tensor(weight, device="cuda")
        check(lambda x: F.nll_loss(x, tracegrad.tensor(t, device="cuda"), dw, ignore_index=2, reduction=reduction),
              lambda x: TF.nll_loss(x, torch.tensor(t), tw, ignore_index=2, reduction=reduction), [x], [tx])
    # (N, C, H, W) scores with (N, H, W) targets: the class dim is dim 1
    img = rng.standard_normal((2, 5, 3, 4)).astype(np.float32)
    ti = rng.integers(0, 5, (2, 3, 4))
    x, tx = leaf(img)
    check(lambda x: F.nll_loss(x, tracegrad.tensor(ti, device="cuda"), reduction=reduction),
          lambda x: TF.nll_loss(x, torch.tensor(ti), reduction=reduction), [x], [tx])
    # one unbatched row: (C,) scores and a 0-d target
    x, tx = leaf(a[0])
    check(lambda x: F.nll_loss(x, tracegrad.tensor(3, device="cuda"), reduction=reduction),
          lambda x: TF.nll_loss(x, torch.tensor(3), reduction=reduction), [x], [tx])


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_mse_loss(cuda, rng, reduction):
    a, b = (rng.standard_normal((4, 6)).astype(np.float32) for _ in range(2))
    for dt in (None, "float16"):
        (x, tx), (y, ty) = leaf(a, dt), leaf(b, dt)
        check(lambda x, y: F.mse_loss(x, y, reduction=reduction),
              lambda x, y: TF.mse_loss(x, y, reduction=reduction), [x, y], [tx, ty],
              **(HALF if dt else {}))


def test_layer_norm(cuda, rng):
    a = rng.standard_normal((3, 4, 8)).astype(np.float32)
    up = rng.standard_normal((3, 4, 8)).astype(np.float32)
    w, b = rng.standard_normal(8).astype(np.float32), rng.standard_normal(8).astype(np.float32)
    (x, tx), (dw, tw), (db, tb) = leaf(a), leaf(w), leaf(b)
    check(lambda x, w, b: F.layer_norm(x, (8,), w, b), lambda x, w, b: TF.layer_norm(x, (8,), w, b),
          [x, dw, db], [tx, tw, tb], up, atol=1e-5, rtol=1e-4)
    x, tx = leaf(a)  # over the last two dims, no affine parameters
    check(lambda x: F.layer_norm(x, (4, 8)), lambda x: TF.layer_norm(x, (4, 8)), [x], [tx], up,
          atol=1e-5, rtol=1e-4)
    x, tx = leaf(a, "float16")
    check(lambda x: F.layer_norm(x, (8,)), lambda x: TF.layer_norm(x, (8,)), [x], [tx], **HALF)


def test_cat_and_stack(cuda, rng):
    a, b = rng.standard_normal((2, 3)).astype(np.float32), rng.standard_normal((2, 5)).astype(np.float32)
    up = rng.standard_normal((2, 8)).astype(np.float32)
    (x, tx), (y, ty) = leaf(a), leaf(b)
    check(lambda x, y: tracegrad.cat([x, y], 1), lambda x, y: torch.cat([x, y], 1), [x, y], [tx, ty], up)
    (x, tx), (y, ty) = leaf(a), leaf(b[:, :3])
    check(lambda x, y: tracegrad.cat([x.t(), y.t()], 0), lambda x, y: torch.cat([x.t(), y.t()], 0),
          [x, y], [tx, ty])  # strided inputs
    for dim in (0, 1, 2):
        (x, tx), (y, ty) = leaf(a), leaf(b[:, :3])
        check(lambda x, y: tracegrad.stack([x, y], dim), lambda x, y: torch.stack([x, y], dim), [x, y], [tx, ty])
    i = tracegrad.arange(3, device="cuda")  # mixed dtypes promote
    close(tracegrad.cat([i, tracegrad.ones(2, device="cuda")]), torch.cat([torch.arange(3), torch.ones(2)]))


def test_logsumexp_var_and_std(cuda, rng):
    a = rng.standard_normal((3, 4, 5)).astype(np.float32)
    up = rng.standard_normal((3, 5)).astype(np.float32)
    for dims, keep in ((-1, False), (1, False), ((0, 2), True)):
        x, tx = leaf(a)
        check(lambda x: x.logsumexp(dims, keep), lambda x: x.logsumexp(dims, keep), [x], [tx])
        x, tx = leaf(a)
        check(lambda x: x.var(dims, keepdim=keep), lambda x: x.var(dims, keepdim=keep), [x], [tx])
    x, tx = leaf(a)
    check(lambda x: x.std(1), lambda x: x.std(1), [x], [tx], up)
    x, tx = leaf(a)
    close(x.var(1, correction=0), tx.var(1, correction=0))
    close(x.var(), tx.var())
    inf = np.array([[-np.inf, -np.inf], [np.inf, 1.0]], np.float32)  # rows whose max is not finite
    close(tracegrad.tensor(inf, device="cuda").logsumexp(1), torch.tensor(inf).logsumexp(1))
    close(tracegrad.tensor(a[0, 0], device="cuda").var(), torch.tensor(a[0, 0]).var())
    with pytest.warns(UserWarning, match="degrees of freedom"):  # one element, correction 1: 0 / 0
        close(tracegrad.tensor(a[:1, 0], device="cuda").var(0), torch.tensor(a[:1, 0]).var(0), equal_nan=True)
    h, th = leaf(a, "float16")
    close(h.logsumexp(-1), th.logsumexp(-1), **HALF)


def test_max_and_argmax_over_a_dim(cuda, rng):
    a = rng.integers(0, 4, (4, 6, 5)).astype(np.float32)  # many ties: the first index wins
    a[1, 2, 3] = np.nan  # NaN is the max and the min, at its own index
    x, tx = tracegrad.tensor(a, device="cuda"), torch.tensor(a)
    for dim in (0, 1, -1):
        for keep in (False, True):
            for f in ("max", "min"):
                v, i = getattr(x, f)(dim, keep)
                tv, ti = getattr(tx, f)(dim, keep)
                close(v, tv, equal_nan=True)
                close(i, ti)
            close(x.argmax(dim, keep), tx.argmax(dim, keep))
            close(x.argmin(dim, keep), tx.argmin(dim, keep))
    b = a[0]
    xb, tb = tracegrad.tensor(b, device="cuda"), torch.tensor(b)
    close(xb.argmax(), tb.argmax())  # into the flattened tensor
    close(xb.t().argmin(keepdim=True), tb.t().argmin(keepdim=True))
    i, ti = tracegrad.tensor(a[0].astype(np.int64), device="cuda"), torch.tensor(a[0].astype(np.int64))
    close(i.argmax(1), ti.argmax(1))


def test_out_of_range_class_targets_raise_torchs_error(cuda, rng):
    """A target outside [0, C) that is not ignore_index: torch's IndexError, not a silent wrong loss."""
    x = tracegrad.tensor(rng.standard_normal((4, 3)).astype(np.float32), device="cuda")
    ok = tracegrad.tensor([0, 2, -100, 1], device="cuda")
    close(F.cross_entropy(x, ok), TF.cross_entropy(torch.tensor(x.cpu().numpy()), torch.tensor([0, 2, -100, 1])))
    for bad, worst in (([0, 3, 1, 1], 3), ([0, -1, 1, 1], -1), ([5, -7, 1, 1], 5)):
        t = tracegrad.tensor(bad, device="cuda")
        with pytest.raises(IndexError, match=f"Target {worst} is out of bounds."):
            F.cross_entropy(x, t)
        with pytest.raises(IndexError, match=f"Target {worst} is out of bounds."):
            F.nll_loss(F.log_softmax(x, 1), t)
    with pytest.raises(IndexError, match="Target 3 is out of bounds."):
        F.cross_entropy(x, tracegrad.tensor([0, 3, 1, 1], device="cuda"), ignore_index=1)
