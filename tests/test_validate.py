"""TRACEGRAD_VALIDATE=1: every Triton kernel run is re-run on NumPy; the first mismatch is reported.

A deliberately wrong kernel is injected by changing an op's Triton lowering for
the test; the report must name that kernel and its inputs."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

import triton  # noqa: F401
import tracegrad as tg
from tracegrad.kernels.triton.backend import TritonKernel
from tracegrad.kernels.triton.validate import KernelMismatchError
from tracegrad.ops.table import OPS


def f(L, x, y):
    return (x * 2).sigmoid() * y + 1


def _xy(rng):
    a = rng.standard_normal((4, 24)).astype(np.float32)
    b = rng.standard_normal((4, 24)).astype(np.float32)
    return a, b


def test_a_wrong_kernel_is_named_with_its_inputs(monkeypatch, rng):
    monkeypatch.setenv("TRACEGRAD_VALIDATE", "1")
    monkeypatch.setattr(OPS["sigmoid"], "lowering", "1.0 / (1.0 + tl.exp({0}))")  # the sign is wrong
    a, b = _xy(rng)
    cf = tg.compile(lambda x, y: f(tg, x, y), backend="triton")
    with pytest.raises(KernelMismatchError) as info:
        cf(tg.tensor(a), tg.tensor(b))
    err = info.value
    (entry,) = [e for es in cf.cache.values() for e in es]
    assert err.kernel in [k.name for k in entry.fwd.kernels if isinstance(k, TritonKernel)]
    assert "sigmoid" in err.kernel and err.kernel in str(err)
    assert "x: float32[4, 24]" in str(err) and "y: float32[4, 24]" in str(err)
    np.testing.assert_array_equal(err.inputs["x"], a)
    # what NumPy computed is torch's answer; the kernel's is not
    torch.testing.assert_close(torch.from_numpy(err.want), f(torch, torch.from_numpy(a), torch.from_numpy(b)))
    assert not np.allclose(err.got, err.want)
    assert isinstance(err, AssertionError)


def test_without_the_variable_the_wrong_kernel_runs_silently(monkeypatch, rng):
    monkeypatch.delenv("TRACEGRAD_VALIDATE", raising=False)
    monkeypatch.setattr(OPS["sigmoid"], "lowering", "1.0 / (1.0 + tl.exp({0}))")
    a, b = _xy(rng)
    out = tg.compile(lambda x, y: f(tg, x, y), backend="triton")(tg.tensor(a), tg.tensor(b))
    want = f(torch, torch.from_numpy(a), torch.from_numpy(b))
    assert not np.allclose(out.numpy(), want.numpy())


def test_a_wrong_backward_kernel_is_caught_at_backward(monkeypatch, rng):
    monkeypatch.setenv("TRACEGRAD_VALIDATE", "1")
    monkeypatch.setattr(OPS["tanh_backward"], "lowering", "{0} * (1.0 + {1} * {1})")  # should be 1 - y*y
    x = tg.tensor(rng.standard_normal((3, 16)).astype(np.float32)).requires_grad_()
    out = tg.compile(lambda t: (t.tanh() * 3).sum(-1), backend="triton")(x)  # the forward is right
    with pytest.raises(KernelMismatchError, match="tanh_backward"):
        out.sum().backward()


def test_correct_programs_validate_cleanly(monkeypatch, rng):
    """Validation must not cry wolf: an MLP loss, forward and backward, every kernel checked."""
    monkeypatch.setenv("TRACEGRAD_VALIDATE", "1")
    x, w1, b1, w2 = (rng.standard_normal(s).astype(np.float32) for s in [(8, 12), (12, 16), (16,), (16, 5)])
    ours = [tg.tensor(a).requires_grad_() for a in (w1, b1, w2)]
    theirs = [torch.tensor(a).requires_grad_() for a in (w1, b1, w2)]

    def loss(L, x, w1, b1, w2):
        logits = (x @ w1 + b1).relu() @ w2
        return L.nn.functional.log_softmax(logits, -1).mean() + (logits - logits.amax(-1, keepdim=True)).exp().sum()

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cf = tg.compile(lambda *a: loss(tg, *a), backend="triton")
        out = cf(tg.tensor(x), *ours)
        out.backward()
    ref = loss(torch, torch.tensor(x), *theirs)
    ref.backward()
    torch.testing.assert_close(torch.tensor(out.item()), ref.detach(), rtol=1e-5, atol=1e-5)
    for o, t in zip(ours, theirs):
        torch.testing.assert_close(torch.from_numpy(o.grad.numpy()), t.grad, rtol=1e-4, atol=1e-5)
    (entry,) = [e for es in cf.cache.values() for e in es]
    assert any(isinstance(k, TritonKernel) and k.runs for k in entry.fwd.kernels + entry.bwd.kernels)
