"""tracegrad.compile(fn, backend="triton"): fusion groups become Triton kernels.

The program that runs on CPU tensors is the NumPy one; every group that lowers is
paired with its Triton kernel, which here is run under Triton's interpreter and
compiled for sm_90, and must agree with torch on the same inputs."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

import triton  # noqa: F401  (the test extra installs it: these tests must fail, not skip, without it)
import tracegrad as tg
from tracegrad.kernels.triton.backend import TritonKernel


def pointwise(L, x, y):
    return ((x * 2 + y).exp() - 1).relu()


def softmax(L, x):
    e = (x - x.amax(-1, keepdim=True)).exp()
    return e / e.sum(-1, keepdim=True)


def linear_relu(L, x, w, b):
    return (x @ w + b).relu()


FUNCS = {"pointwise": (pointwise, [(8, 16), (8, 16)]), "softmax": (softmax, [(6, 40)]),
         "linear_relu": (linear_relu, [(8, 16), (16, 12), (12,)])}


def _inputs(shapes, rng):
    arrays = [rng.standard_normal(s).astype(np.float32) for s in shapes]
    return arrays, [tg.from_numpy(a.copy()) for a in arrays], [torch.from_numpy(a.copy()) for a in arrays]


@pytest.mark.parametrize("fname", list(FUNCS))
def test_each_group_becomes_one_triton_kernel_that_matches_torch(fname, rng):
    fn, shapes = FUNCS[fname]
    arrays, ours, theirs = _inputs(shapes, rng)
    want = fn(torch, *theirs)
    rep = tg.explain(lambda *a: fn(tg, *a), *ours, backend="triton")
    assert len(rep.kernels) == 1 and isinstance(rep.kernels[0], TritonKernel)
    k = rep.kernels[0]
    assert "@triton.jit" in k.source and "def " in k.numpy_source
    # the Triton kernel itself, under the interpreter, on the graph's inputs
    names = [v.name for v in rep.forward.inputs]
    got = k.run_interpreted(dict(zip(names, arrays)))
    (out,) = got.values()
    torch.testing.assert_close(torch.from_numpy(out), want)
    # and the compiled program (NumPy on CPU) agrees too
    compiled = tg.compile(lambda *a: fn(tg, *a), backend="triton")
    torch.testing.assert_close(torch.from_numpy(compiled(*ours).numpy()), want)
    # the same kernel, compiled for an H100
    assert ".target sm_90a" in k.ir("ptx") and k.compiled().n_spills == 0
    assert k.roofline().bytes > 0


def test_groups_without_a_triton_form_fall_back_with_a_warning(rng):
    x = tg.from_numpy(rng.standard_normal((4, 8)).astype(np.float32))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        rep = tg.explain(lambda t: t.cumsum(-1) * 2, x, backend="triton")
    assert any("has no Triton form" in str(w.message) for w in caught)
    assert not all(isinstance(k, TritonKernel) for k in rep.kernels)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        got = tg.compile(lambda t: t.cumsum(-1) * 2, backend="triton")(x)
    torch.testing.assert_close(torch.from_numpy(got.numpy()), torch.from_numpy(x.numpy()).cumsum(-1) * 2)


def test_backward_kernels_are_generated_too(rng):
    x = tg.from_numpy(rng.standard_normal((5, 12)).astype(np.float32)).requires_grad_()
    rep = tg.explain(lambda t: ((t * t).sigmoid() * 3).sum(), x, backend="triton")
    kernels = [k for k in rep.kernels + rep.backward_kernels if isinstance(k, TritonKernel)]
    assert rep.backward_kernels and any(k in kernels for k in rep.backward_kernels)
    for k in kernels:
        assert k.compiled().n_spills == 0
    with pytest.raises(ValueError, match="unknown stage"):
        kernels[0].ir("sass")


# ---- whole programs: every Triton kernel under the interpreter, end to end, against torch --------------
def mlp_loss(L, x, w1, b1, w2, y):
    h = (x @ w1 + b1).relu()
    logits = h @ w2
    m = logits.amax(-1, keepdim=True)
    lse = (logits - m).exp().sum(-1, keepdim=True).log() + m
    return ((lse - logits) * y).sum(-1).mean()


def layer_norm(L, x, w, b):
    mu = x.mean(-1, keepdim=True)
    xc = x - mu
    var = (xc * xc).mean(-1, keepdim=True)
    return xc * (var + 1e-5).rsqrt() * w + b


def gelu_residual(L, x, w, r):
    return L.nn.functional.gelu(x @ w) + r.t()


PROGRAMS = {
    "mlp_loss": (mlp_loss, [(8, 20), (20, 32), (32,), (32, 10), (8, 10)]),
    "layer_norm": (layer_norm, [(6, 48), (48,), (48,)]),
    "gelu_residual": (gelu_residual, [(12, 16), (16, 24), (24, 12)]),
}


@pytest.mark.parametrize("fname", list(PROGRAMS))
def test_whole_program_under_the_interpreter_matches_torch(fname, rng):
    from tracegrad.kernels.triton.backend import run_interpreted

    fn, shapes = PROGRAMS[fname]
    arrays, ours, theirs = _inputs(shapes, rng)
    want = fn(torch, *theirs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # groups without a Triton form are expected here and there
        rep = tg.explain(lambda *a: fn(tg, *a), *ours, backend="triton")
    triton_kernels = [k for k in rep.kernels if isinstance(k, TritonKernel)]
    assert triton_kernels, "nothing lowered to Triton"
    (got,) = run_interpreted(rep.forward, rep.forward_plan, rep.kernels, arrays)
    torch.testing.assert_close(torch.from_numpy(np.asarray(got)), want, rtol=1e-5, atol=1e-5)
    for k in triton_kernels:
        assert k.compiled().n_spills == 0
