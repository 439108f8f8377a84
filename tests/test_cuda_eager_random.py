"""Random numbers drawn on the device (rand, randn, dropout, bernoulli) with Philox 4x32-10.

torch's CUDA stream of numbers cannot be reproduced bit for bit (its counters are laid
out per thread of its own launch grid), so values are checked three ways: against an
independent NumPy Philox 4x32-10 written here from the paper's constants, for
reproducibility under a seed, and for their distribution and torch's rules (dropout's
scale, the gradient of dropout). Nothing may fall back to the host.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

import tracegrad
from cuda_device import cuda  # noqa: F401  (the fixture)
from test_cuda_eager_aot import assert_compiles_for_sm90, dev

F = tracegrad.nn.functional




def philox(seed: int, c0, c1, c2, c3):
    """Philox 4x32-10 in NumPy (Salmon et al. 2011), the reference for the kernel's helper."""
    m = np.uint64(0xFFFFFFFF)
    k0, k1 = np.uint64(seed & 0xFFFFFFFF), np.uint64(seed >> 32)
    c = [np.asarray(v, np.uint64) for v in (c0, c1, c2, c3)]
    for _ in range(10):
        p0 = c[0] * np.uint64(0xD2511F53)
        p1 = c[2] * np.uint64(0xCD9E8D57)
        c = [(p1 >> np.uint64(32)) ^ c[1] ^ k0, p1 & m, (p0 >> np.uint64(32)) ^ c[3] ^ k1, p0 & m]
        k0, k1 = (k0 + np.uint64(0x9E3779B9)) & m, (k1 + np.uint64(0xBB67AE85)) & m
    return c


def test_uniforms_are_philox_of_element_and_stream(cuda):
    """Element e of the k-th draw after manual_seed(s) is the top 24 bits of Philox(s; e, k) / 2^24."""
    tracegrad.manual_seed(1234)
    tracegrad.rand(3, device="cuda")  # draw 0
    got = tracegrad.rand(1000, device="cuda").cpu().numpy()  # draw 1
    e = np.arange(1000)
    w0 = philox(1234, e, np.ones_like(e), np.zeros_like(e), np.zeros_like(e))[0]
    want = (w0 >> np.uint64(8)).astype(np.float64) / 2 ** 24
    np.testing.assert_array_equal(got, want.astype(np.float32))


def test_a_seed_gives_the_same_numbers_and_draws_differ(cuda):
    tracegrad.manual_seed(7)
    a, b = tracegrad.rand(64, device="cuda").cpu(), tracegrad.randn(8, 8, device="cuda").cpu()
    tracegrad.cuda.manual_seed(7)
    assert torch.equal(torch.tensor(tracegrad.rand(64, device="cuda").cpu().numpy()), torch.tensor(a.numpy()))
    assert np.array_equal(tracegrad.randn(8, 8, device="cuda").cpu().numpy(), b.numpy())
    assert not np.array_equal(tracegrad.rand(64, device="cuda").cpu().numpy(), a.numpy())
    assert tracegrad.cuda.initial_seed() == 7


@pytest.mark.parametrize("dtype", ["float32", "float16", "bfloat16", "float64"])
def test_distributions(cuda, dtype):
    dt = getattr(tracegrad, dtype)
    n = 20000
    tracegrad.manual_seed(0)  # (a draw once rounded 34 bfloat16 values of 20000 up to 1.0)
    u = tracegrad.rand(n, device="cuda", dtype=dt)
    z = tracegrad.randn(n, device="cuda", dtype=dt)
    assert u.is_cuda and u.dtype is dt and z.dtype is dt and tuple(z.shape) == (n,)
    u, z = u.float().cpu().numpy().astype(np.float64), z.float().cpu().numpy().astype(np.float64)
    assert 0.0 <= u.min() and u.max() < 1.0  # in [0, 1) in every dtype: never rounded up to 1
    tol = 5 / np.sqrt(n)  # five standard errors
    assert abs(u.mean() - 0.5) < tol * np.sqrt(1 / 12) and abs(u.var() - 1 / 12) < 0.01
    assert abs(z.mean()) < tol and abs(z.std() - 1) < 0.03
    assert abs((z < 0).mean() - 0.5) < tol and abs((np.abs(z) < 1).mean() - 0.6827) < 0.02


def test_dropout_on_the_device_follows_torchs_rules(cuda, rng):
    a = rng.standard_normal((64, 50)).astype(np.float32)
    for p in (0.25, 0.5):
        x = tracegrad.tensor(a, device="cuda", requires_grad=True)
        y = F.dropout(x, p)
        assert y.is_cuda and type(y.grad_fn).__name__ == "MulBackward0"
        g = rng.standard_normal(a.shape).astype(np.float32)
        (y * tracegrad.tensor(g, device="cuda")).sum().backward()
        out, grad = y.detach().cpu().numpy(), x.grad.cpu().numpy()
        kept = out != 0
        np.testing.assert_allclose(out[kept], a[kept] / (1 - p), rtol=1e-6)
        np.testing.assert_allclose(grad, np.where(kept, g / (1 - p), 0), rtol=1e-6)
        assert abs((~kept).mean() - p) < 5 * np.sqrt(p * (1 - p) / a.size)
    x = tracegrad.tensor(a, device="cuda")
    assert not F.dropout(x, 1.0).cpu().numpy().any()
    assert F.dropout(x, 0.0) is x and F.dropout(x, 0.5, training=False) is x
    h = F.dropout(x.half(), 0.5)
    assert h.dtype is tracegrad.float16 and set(np.unique(h.cpu().numpy() / x.half().cpu().numpy())) <= {0, 2}
    m = tracegrad.nn.Dropout(0.3).to("cuda")
    assert m(x).is_cuda


def test_bernoulli_and_like_factories(cuda):
    p = tracegrad.tensor([0.0, 1.0] * 500, device="cuda")
    b = tracegrad.bernoulli(p)
    assert b.is_cuda and np.array_equal(b.cpu().numpy(), p.cpu().numpy())
    x = tracegrad.zeros(3, 4, device="cuda", dtype=tracegrad.float64)
    r, n = tracegrad.rand_like(x), tracegrad.randn_like(x)
    assert r.is_cuda and n.is_cuda and r.dtype is tracegrad.float64 and tuple(n.shape) == (3, 4)
    assert tracegrad.rand(0, 3, device="cuda").shape == (0, 3)


def random_workload(rng):
    tracegrad.rand(1 << 16, device="cuda")
    tracegrad.randn(256, 256, device="cuda", dtype=tracegrad.float16)
    tracegrad.rand(4096, device="cuda", dtype=tracegrad.float64)
    tracegrad.randn(4096, device="cuda", dtype=tracegrad.float64)
    F.dropout(dev(rng, 256, 512), 0.1)


def test_random_kernels_compile_for_sm90_without_spills(rng):
    assert_compiles_for_sm90(random_workload, rng, {"pointwise"})


def test_float64_draws_have_53_random_bits(cuda):
    """A float64 uniform is 53 bits of two Philox words over 2^53 (not a float32 widened), and
    float64 normals are Box-Muller in float64."""
    tracegrad.manual_seed(99)
    got = tracegrad.rand(500, device="cuda", dtype=tracegrad.float64).cpu().numpy()
    e = np.arange(500)
    w = philox(99, e, np.zeros_like(e), np.zeros_like(e), np.zeros_like(e))
    want = ((w[0] << np.uint64(21)) | (w[1] >> np.uint64(11))).astype(np.float64) / 2 ** 53
    np.testing.assert_array_equal(got, want)
    assert np.mean(got != got.astype(np.float32)) > 0.9  # not float32 resolution
    z = tracegrad.randn(20000, device="cuda", dtype=tracegrad.float64).cpu().numpy()
    assert abs(z.mean()) < 0.04 and abs(z.std() - 1) < 0.03 and np.mean(z != z.astype(np.float32)) > 0.9


def test_device_rng_state_round_trips_and_seed_reseeds_the_device(cuda):
    tracegrad.manual_seed(5)
    tracegrad.rand(10, device="cuda")
    state = tracegrad.cuda.get_rng_state()
    assert state.dtype is tracegrad.uint8 and tuple(state.shape) == (16,) and not state.is_cuda
    a = tracegrad.randn(50, device="cuda").cpu().numpy()
    tracegrad.cuda.set_rng_state(state)
    np.testing.assert_array_equal(tracegrad.randn(50, device="cuda").cpu().numpy(), a)
    with pytest.raises(TypeError, match="RNG state must be a"):
        tracegrad.cuda.set_rng_state(tracegrad.zeros(16))
    s = tracegrad.seed()  # torch.seed() seeds every device with the host's new seed
    assert tracegrad.initial_seed() == s == tracegrad.cuda.initial_seed()
    with pytest.raises(TypeError, match="RNG state must be a"):
        tracegrad.set_rng_state(tracegrad.zeros(3))
    with pytest.raises(TypeError, match="RNG state must be a"):
        torch.set_rng_state(torch.zeros(3))
