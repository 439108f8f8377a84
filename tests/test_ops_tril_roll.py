"""tril, triu, roll, diag, repeat_interleave and meshgrid against torch: values, dtypes, gradients,
node names, errors; on the CPU, on the (simulated) device and compiled."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import tracegrad
from cuda_device import cuda  # noqa: F401  (the fixture)

CASES = {
    "tril": lambda L, x: L.tril(x),
    "tril_k": lambda L, x: x.tril(1),
    "tril_neg": lambda L, x: L.tril(x, -2),
    "triu": lambda L, x: x.triu(),
    "triu_k": lambda L, x: L.triu(x, 2),
    "roll_flat": lambda L, x: x.roll(5),
    "roll_dim": lambda L, x: L.roll(x, -1, 1),
    "roll_dims": lambda L, x: x.roll((1, 7), (0, -1)),
    "roll_zero": lambda L, x: x.roll(0, 0),
    "diag_of_matrix": lambda L, x: L.diag(x.reshape(-1, x.shape[-1])[:3]),
    "diag_k": lambda L, x: x.reshape(-1, x.shape[-1]).diag(-1),
    "diag_embed": lambda L, x: L.diag(x.reshape(-1)[:4], 1),
    "diag_embed_neg": lambda L, x: x.reshape(-1)[:3].diag(-2),
    "repeat_interleave_flat": lambda L, x: x.repeat_interleave(2),
    "repeat_interleave_dim": lambda L, x: L.repeat_interleave(x, 3, dim=-1),
    "repeat_interleave_counts": lambda L, x: L.repeat_interleave(x, L.tensor(([2, 0, 1] * 2)[:x.shape[0]]), dim=0),
    "meshgrid_ij": lambda L, x: L.meshgrid(x.reshape(-1)[:3], x.reshape(-1)[3:5], indexing="ij")[1],
    "meshgrid_xy": lambda L, x: L.meshgrid(x.reshape(-1)[:3], x.reshape(-1)[3:5], x[0, 0], indexing="xy")[0],
}


def _run(L, fn, a, device="cpu"):
    x = L.tensor(a, device=device, requires_grad=True) if L is tracegrad else L.tensor(a, requires_grad=True)
    y = fn(L, x)
    up = np.arange(np.prod(y.shape), dtype=np.float32).reshape(tuple(y.shape)) % 7 - 3
    (y * (L.tensor(up, device=device) if L is tracegrad else L.tensor(up))).sum().backward()
    return type(y.grad_fn).__name__, y.detach().cpu().numpy(), x.grad.cpu().numpy(), tuple(y.shape)


@pytest.mark.parametrize("name", CASES)
@pytest.mark.parametrize("shape", [(4, 5), (2, 3, 4), (5, 3)])
def test_matches_torch_on_the_cpu(name, shape):
    a = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    ours, theirs = _run(tracegrad, CASES[name], a), _run(torch, CASES[name], a)
    assert ours[0] == theirs[0] and ours[3] == theirs[3]
    np.testing.assert_array_equal(ours[1], theirs[1])
    np.testing.assert_array_equal(ours[2], theirs[2])


@pytest.mark.parametrize("name", ["tril_k", "triu", "roll_dims", "roll_flat", "diag_k", "diag_embed",
                                  "repeat_interleave_counts", "meshgrid_xy"])
def test_matches_torch_on_the_device(cuda, name):
    a = np.random.default_rng(1).standard_normal((3, 4, 5)).astype(np.float32)
    ours, theirs = _run(tracegrad, CASES[name], a, "cuda"), _run(torch, CASES[name], a)
    assert ours[0] == theirs[0]
    np.testing.assert_array_equal(ours[1], theirs[1])
    np.testing.assert_array_equal(ours[2], theirs[2])


def test_dtypes_empty_inputs_out_and_compile():
    for dt in ("bool", "int64", "float64"):
        a = np.arange(12).reshape(3, 4) % 3
        x, tx = tracegrad.tensor(a).to(getattr(tracegrad, dt)), torch.tensor(a).to(getattr(torch, dt))
        for f in (lambda L, t: L.tril(t), lambda L, t: t.triu(-1), lambda L, t: t.roll(2, 1)):
            got, want = f(tracegrad, x), f(torch, tx)
            assert str(got.dtype).split(".")[1] == str(want.dtype).split(".")[1]
            assert got.tolist() == want.tolist()
    assert tuple(tracegrad.ones(0, 3).roll(1, 0).shape) == (0, 3)
    assert tuple(tracegrad.ones(2, 0).tril().shape) == (2, 0)
    o, to = tracegrad.empty(3, 3), torch.empty(3, 3)
    assert tracegrad.tril(tracegrad.ones(3, 3), out=o) is o
    torch.tril(torch.ones(3, 3), out=to)
    assert o.tolist() == to.tolist()
    a = np.random.default_rng(2).standard_normal((4, 4)).astype(np.float32)
    f = tracegrad.compile(lambda x: (x.tril() + x.roll(1, 0)).exp())
    np.testing.assert_allclose(f(tracegrad.tensor(a)).numpy(), (torch.tensor(a).tril() + torch.tensor(a).roll(1, 0)).exp().numpy(),
                               rtol=1e-6)


@pytest.mark.parametrize("call", [
    lambda L: L.tril(L.ones(3)),
    lambda L: L.ones(3).triu(),
    lambda L: L.roll(L.ones(3), (1, 2), 0),
    lambda L: L.roll(L.ones(3), ()),
    lambda L: L.roll(L.ones(3), 1, 5),
    lambda L: L.diag(L.ones(2, 2, 2)),
    lambda L: L.repeat_interleave(L.ones(3), L.tensor([1, 2])),
    lambda L: L.repeat_interleave(L.ones(3), -1),
    lambda L: L.meshgrid(L.ones(2), indexing="foo"),
])
def test_errors_are_torchs(call):
    with pytest.raises(Exception) as theirs:
        call(torch)
    with pytest.raises(type(theirs.value)) as ours:
        call(tracegrad)
    assert str(ours.value) == str(theirs.value)


def test_meshgrid_without_indexing_warns_and_counts_repeat():
    with pytest.warns(UserWarning, match="it will be required to pass the indexing"):
        a, b = tracegrad.meshgrid(tracegrad.arange(3), tracegrad.arange(2))
    ta, tb = torch.meshgrid(torch.arange(3), torch.arange(2), indexing="ij")
    assert a.tolist() == ta.tolist() and b.tolist() == tb.tolist() and a.stride() == ta.stride()
    assert tracegrad.repeat_interleave(tracegrad.tensor([1, 0, 2])).tolist() == \
        torch.repeat_interleave(torch.tensor([1, 0, 2])).tolist()
