"""Convolution and pooling on eager CUDA tensors, against torch on the CPU.

Each op must run as device kernels (conv.py), never on the host: the `cuda` fixture
fails a test whose ops fell back. Values and input/weight/bias gradients are
compared; the simulated device runs each kernel under Triton's interpreter, so
shapes stay small, except in the sm_90 compile check, which only records launches.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

import tracegrad
from cuda_device import cuda  # noqa: F401  (the fixture)
from test_cuda_eager_aot import assert_compiles_for_sm90, dev
from test_cuda_eager_composite import close, leaf

F = tracegrad.nn.functional
TF = torch.nn.functional
HALF = dict(atol=2e-2, rtol=2e-2)  # half-precision products summed over a window


def check(fn, tfn, arrays, rng, dtype=None, **tol):
    """fn(*xs) matches tfn(*txs) and so do the gradients of every input, under a random upstream gradient."""
    pairs = [leaf(a, dtype) for a in arrays]
    xs, txs = [p[0] for p in pairs], [p[1] for p in pairs]
    y, ty = fn(*xs), tfn(*txs)
    close(y, ty, **tol)
    up = rng.standard_normal(tuple(ty.shape)).astype(np.float32)
    (y * tracegrad.tensor(up, device="cuda").to(y.dtype)).sum().backward()
    (ty * torch.tensor(up).to(ty.dtype)).sum().backward()
    for x, tx in zip(xs, txs):
        assert x.grad is not None and tx.grad is not None
        close(x.grad, tx.grad, **tol)


def randn(rng, *shape):
    return rng.standard_normal(shape).astype(np.float32)


# ---- conv2d -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("stride,padding,dilation,groups", [
    (1, 0, 1, 1),
    (1, 1, 1, 1),
    ((2, 1), (1, 2), 1, 1),
    (1, 1, (2, 1), 1),
    (2, 1, 1, 2),
    (1, 0, 1, 4),  # depthwise
])
def test_conv2d_values_and_gradients(cuda, rng, stride, padding, dilation, groups):
    x, w, b = randn(rng, 2, 4, 7, 6), randn(rng, 6 if groups != 4 else 4, 4 // groups, 3, 2), None
    b = randn(rng, w.shape[0])
    at = dict(stride=stride, padding=padding, dilation=dilation, groups=groups)
    check(lambda x, w, b: F.conv2d(x, w, b, **at), lambda x, w, b: TF.conv2d(x, w, b, **at), [x, w, b], rng,
          atol=1e-4, rtol=1e-4)


def test_conv2d_without_bias_unbatched_and_noncontiguous(cuda, rng):
    x, w = randn(rng, 3, 6, 5), randn(rng, 2, 3, 2, 2)
    check(lambda x, w: F.conv2d(x, w, padding=1), lambda x, w: TF.conv2d(x, w, padding=1), [x, w], rng,
          atol=1e-4, rtol=1e-4)
    # a transposed (non-contiguous) input and weight
    x, w = randn(rng, 1, 2, 5, 6), randn(rng, 3, 2, 3, 3)
    check(lambda x, w: F.conv2d(x.transpose(2, 3), w.transpose(2, 3), stride=2),
          lambda x, w: TF.conv2d(x.transpose(2, 3), w.transpose(2, 3), stride=2), [x, w], rng, atol=1e-4, rtol=1e-4)


def test_nn_conv2d_module(cuda, rng):
    conv = tracegrad.nn.Conv2d(2, 4, 3, padding=1)
    tconv = torch.nn.Conv2d(2, 4, 3, padding=1)
    with torch.no_grad():
        tconv.weight.copy_(torch.from_numpy(conv.weight.detach().numpy()))
        tconv.bias.copy_(torch.from_numpy(conv.bias.detach().numpy()))
    conv.to("cuda")
    a = randn(rng, 2, 2, 5, 5)
    y, ty = conv(tracegrad.tensor(a, device="cuda")), tconv(torch.tensor(a))
    close(y, ty, atol=1e-4, rtol=1e-4)
    y.sum().backward()
    ty.sum().backward()
    close(conv.weight.grad, tconv.weight.grad, atol=1e-4, rtol=1e-4)
    close(conv.bias.grad, tconv.bias.grad, atol=1e-4, rtol=1e-4)


def test_conv2d_half_precision(cuda, rng):
    x, w, b = randn(rng, 2, 2, 5, 5), randn(rng, 4, 2, 3, 3), randn(rng, 4)
    check(lambda x, w, b: F.conv2d(x, w, b, padding=1), lambda x, w, b: TF.conv2d(x, w, b, padding=1),
          [x, w, b], rng, dtype="float16", **HALF)


def test_conv2d_double_backward(cuda, rng):
    """create_graph runs the separate input/weight-grad ops, whose own gradients are convolutions."""
    (x, tx), (w, tw) = leaf(randn(rng, 1, 2, 5, 5)), leaf(randn(rng, 3, 2, 3, 3))
    y, ty = F.conv2d(x, w, padding=1), TF.conv2d(tx, tw, padding=1)
    gx, gw = tracegrad.autograd.grad((y * y).sum(), [x, w], create_graph=True)
    tgx, tgw = torch.autograd.grad((ty * ty).sum(), [tx, tw], create_graph=True)
    close(gx, tgx, atol=1e-3, rtol=1e-3)
    close(gw, tgw, atol=1e-3, rtol=1e-3)
    (gx.sum() + gw.sum()).backward()
    (tgx.sum() + tgw.sum()).backward()
    close(x.grad, tx.grad, atol=1e-3, rtol=1e-3)
    close(w.grad, tw.grad, atol=1e-3, rtol=1e-3)


# ---- max pooling --------------------------------------------------------------------------------------
@pytest.mark.parametrize("kernel,stride,padding,dilation,ceil_mode", [
    (2, None, 0, 1, False),
    (3, 2, 1, 1, False),
    (3, 2, 1, 1, True),
    ((2, 3), (1, 2), (1, 1), (2, 1), False),
])
def test_max_pool2d_values_indices_and_gradient(cuda, rng, kernel, stride, padding, dilation, ceil_mode):
    a = randn(rng, 2, 3, 7, 6)
    at = dict(kernel_size=kernel, stride=stride, padding=padding, dilation=dilation, ceil_mode=ceil_mode)
    check(lambda x: F.max_pool2d(x, **at), lambda x: TF.max_pool2d(x, **at), [a], rng)
    _, i = F.max_pool2d(tracegrad.tensor(a, device="cuda"), return_indices=True, **at)
    _, ti = TF.max_pool2d(torch.tensor(a), return_indices=True, **at)
    assert i.is_cuda and np.array_equal(i.cpu().numpy(), ti.numpy())


def test_max_pool2d_ties_and_overlaps_give_the_first_max_the_gradient(cuda, rng):
    """Equal values in a window: the first one gets the window's gradient, as in torch; overlapping
    windows that share their max add their gradients there."""
    a = np.zeros((1, 1, 5, 5), np.float32)
    a[0, 0, 2, 2] = 1.0
    b = np.round(randn(rng, 2, 2, 6, 6))  # many ties
    for arr in (a, b):
        check(lambda x: F.max_pool2d(x, 3, 1, 1), lambda x: TF.max_pool2d(x, 3, 1, 1), [arr], rng)
        check(lambda x: F.max_pool2d(x, 2), lambda x: TF.max_pool2d(x, 2), [arr], rng)


def test_max_pool2d_nan_and_all_negative_infinity_windows_match_the_host(cuda, rng):
    a = randn(rng, 1, 2, 4, 4)
    a[0, 0, 0, 1] = np.nan
    a[0, 1, :2, :2] = -np.inf
    x = tracegrad.tensor(a, device="cuda")
    v, i = F.max_pool2d(x, 2, return_indices=True)
    hv, hi = F.max_pool2d(tracegrad.tensor(a), 2, return_indices=True)
    np.testing.assert_array_equal(v.cpu().numpy(), hv.numpy())
    np.testing.assert_array_equal(i.cpu().numpy(), hi.numpy())
    tv, ti = TF.max_pool2d(torch.tensor(a), 2, return_indices=True)
    np.testing.assert_array_equal(v.cpu().numpy(), tv.numpy())


def test_max_pool2d_unbatched_and_half(cuda, rng):
    check(lambda x: F.max_pool2d(x, 2), lambda x: TF.max_pool2d(x, 2), [randn(rng, 3, 4, 6)], rng)
    for half in ("float16", "bfloat16"):  # bfloat16 adds in a float32 scratch copy (no bf16 atomics)
        check(lambda x: F.max_pool2d(x, 3, 2, 1), lambda x: TF.max_pool2d(x, 3, 2, 1), [randn(rng, 1, 2, 5, 5)],
              rng, dtype=half, **HALF)


def test_max_pool2d_backward_of_a_strided_gradient(cuda, rng):
    """The gradient reaching the pool is a transposed view: the backward reads it through its strides."""
    check(lambda x: F.max_pool2d(x, 3, 1, 1).transpose(2, 3).exp(),
          lambda x: TF.max_pool2d(x, 3, 1, 1).transpose(2, 3).exp(), [randn(rng, 2, 2, 5, 4)], rng)


# ---- average pooling -----------------------------------------------------------------------------------
@pytest.mark.parametrize("kernel,stride,padding,ceil_mode,count_include_pad,divisor_override", [
    (2, None, 0, False, True, None),
    (3, 2, 1, False, True, None),
    (3, 2, 1, True, False, None),
    (3, 2, 1, True, True, None),
    ((2, 3), (1, 2), (1, 1), False, False, None),
    (2, 1, 1, False, True, 3),
])
def test_avg_pool2d_values_and_gradient(cuda, rng, kernel, stride, padding, ceil_mode, count_include_pad,
                                        divisor_override):
    at = dict(kernel_size=kernel, stride=stride, padding=padding, ceil_mode=ceil_mode,
              count_include_pad=count_include_pad, divisor_override=divisor_override)
    check(lambda x: F.avg_pool2d(x, **at), lambda x: TF.avg_pool2d(x, **at), [randn(rng, 2, 3, 7, 6)], rng,
          atol=1e-5, rtol=1e-5)


def test_avg_pool2d_unbatched_and_half(cuda, rng):
    check(lambda x: F.avg_pool2d(x, 2), lambda x: TF.avg_pool2d(x, 2), [randn(rng, 3, 4, 6)], rng,
          atol=1e-5, rtol=1e-5)
    check(lambda x: F.avg_pool2d(x, 3, 2, 1), lambda x: TF.avg_pool2d(x, 3, 2, 1), [randn(rng, 1, 2, 5, 5)], rng,
          dtype="float16", **HALF)


@pytest.mark.parametrize("shape,size", [((2, 3, 7, 6), (3, 4)), ((3, 5, 5), (2, 2)), ((1, 2, 6, 6), (6, 3))])
def test_adaptive_avg_pool2d_values_and_gradient(cuda, rng, shape, size):
    check(lambda x: F.adaptive_avg_pool2d(x, size), lambda x: TF.adaptive_avg_pool2d(x, size), [randn(rng, *shape)],
          rng, atol=1e-5, rtol=1e-5)


def test_bad_input_keeps_torchs_errors(cuda, rng):
    x = tracegrad.tensor(randn(rng, 1, 3, 5, 5), device="cuda")
    w = tracegrad.tensor(randn(rng, 2, 2, 3, 3), device="cuda")
    with pytest.raises(RuntimeError, match="expected input.*to have 2 channels, but got 3 channels"):
        F.conv2d(x, w)
    with pytest.raises(RuntimeError, match="pad should be at most half of effective kernel size"):
        F.max_pool2d(x, 2, padding=2)


# ---- the digits CNN: a few training steps on the device against torch --------------------------------------
def _digits_cnn(nn, F):
    """examples/digits_cnn.py's architecture with fewer channels: two conv -> relu -> max-pool stages
    turn a 1x8x8 image into 8x2x2 features, and two linear layers classify them."""
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.c1, self.c2 = nn.Conv2d(1, 4, 3, padding=1), nn.Conv2d(4, 8, 3, padding=1)
            self.f1, self.f2 = nn.Linear(8 * 2 * 2, 16), nn.Linear(16, 10)

        def forward(self, x):
            h = F.max_pool2d(F.relu(self.c1(x)), 2)
            h = F.max_pool2d(F.relu(self.c2(h)), 2)
            return self.f2(F.relu(self.f1(h.reshape(h.shape[0], -1))))

    return Net()


def test_digits_cnn_trains_on_the_device_as_torch_does(cuda, rng):
    tracegrad.manual_seed(0)
    net, tnet = _digits_cnn(tracegrad.nn, F), _digits_cnn(torch.nn, TF)
    with torch.no_grad():
        for (name, p), (tname, tp) in zip(net.named_parameters(), tnet.named_parameters()):
            assert name == tname
            tp.copy_(torch.from_numpy(p.detach().numpy()))
    net.to("cuda")
    opt = tracegrad.optim.Adam(net.parameters(), lr=1e-2)
    topt = torch.optim.Adam(tnet.parameters(), lr=1e-2)
    x = rng.standard_normal((8, 1, 8, 8)).astype(np.float32)
    t = rng.integers(0, 10, 8)
    losses, tlosses = [], []
    for _ in range(3):
        opt.zero_grad()
        topt.zero_grad()
        loss = F.cross_entropy(net(tracegrad.tensor(x, device="cuda")), tracegrad.tensor(t, device="cuda"))
        tloss = TF.cross_entropy(tnet(torch.tensor(x)), torch.tensor(t))
        loss.backward()
        tloss.backward()
        opt.step()
        topt.step()
        assert loss.is_cuda
        losses.append(loss.item())
        tlosses.append(tloss.item())
    np.testing.assert_allclose(losses, tlosses, rtol=1e-4, atol=1e-5)
    assert losses[-1] < losses[0]
    for (_, p), (_, tp) in zip(net.named_parameters(), tnet.named_parameters()):
        assert p.is_cuda
        close(p, tp, atol=1e-4, rtol=1e-4)


# ---- every kernel compiles for sm_90 at the digits CNN's sizes ----------------------------------------------
def conv_and_pooling(rng):
    x = dev(rng, 64, 1, 8, 8, requires_grad=True)
    w, b = dev(rng, 16, 1, 3, 3, requires_grad=True), dev(rng, 16, requires_grad=True)
    h = F.relu(F.conv2d(x, w, b, padding=1))  # (64, 16, 8, 8)
    w2 = dev(rng, 16, 8, 3, 3, requires_grad=True)
    h2 = F.conv2d(h, w2, stride=2, padding=1, groups=2)  # grouped, strided: (64, 16, 4, 4)
    p = F.max_pool2d(h, 2)
    q = F.avg_pool2d(h, 3, 2, 1, ceil_mode=True, count_include_pad=False)
    r = F.adaptive_avg_pool2d(h2, (3, 3))
    # (r * r: the matmuls of r's backward get a dense gradient; a plain sum's expanded ones would
    # give them a b operand with every stride 0, which the matmul renderer does not compile yet)
    (p.sum() + q.sum() + (r * r).sum() + h2.sum()).backward()
    hh = h.detach().half()
    F.max_pool2d(hh, 3, 2, 1)
    F.conv2d(hh, w2.detach().half(), padding=1, groups=2)


def test_conv_and_pooling_kernels_compile_for_sm90_without_spills(rng):
    assert_compiles_for_sm90(conv_and_pooling, rng, {"pointwise", "reduction", "matmul"})


def expanded_gradient_workload(rng):
    """The gradient of a plain sum is an expanded scalar (every stride 0): adaptive pooling's
    backward multiplies it by its averaging matrices, which must still compile."""
    x = dev(rng, 8, 16, 12, 12, requires_grad=True)
    F.adaptive_avg_pool2d(x, (5, 5)).sum().backward()


def test_matmul_of_an_expanded_gradient_compiles_for_sm90(rng):
    assert_compiles_for_sm90(expanded_gradient_workload, rng, {"matmul"})
