"""cumsum, cumprod and argsort (sort, topk) on eager CUDA tensors, against torch on the CPU.

A scan is a row kernel (kernels/triton/reduction.py) over the dim permuted last:
one associative scan when the row fits a block, block by block with a carry when
it does not; argsort is the same row kernel with one sort of value-and-column keys.
Values, dtypes and gradients are compared; nothing may run on the host.
"""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

import tracegrad
from cuda_device import cuda  # noqa: F401  (the fixture)
from test_cuda_eager_aot import assert_compiles_for_sm90, dev




def close(ours, theirs, **tol):
    assert ours.is_cuda and tuple(ours.shape) == tuple(theirs.shape)
    assert str(ours.dtype).split(".")[-1] == str(theirs.dtype).split(".")[-1], (ours.dtype, theirs.dtype)
    got = torch.from_numpy(np.array(ours.detach().cpu().float()._values())) if ours.dtype.is_floating_point \
        else torch.from_numpy(np.array(ours.detach().cpu()._values()))
    torch.testing.assert_close(got.to(theirs.dtype) if not theirs.dtype.is_floating_point else got,
                               theirs.detach().float() if theirs.dtype.is_floating_point else theirs, **tol)


@pytest.mark.parametrize("op", ["cumsum", "cumprod"])
@pytest.mark.parametrize("layout", ["contiguous", "transposed", "sliced"])
def test_scans_along_every_dim_with_gradients(cuda, rng, op, layout):
    a = rng.uniform(0.5, 1.5, (4, 6, 5)).astype(np.float32) * rng.choice([-1, 1], (4, 6, 5))
    if op == "cumprod":
        a[1, 2, 3] = 0.0  # a zero: the backward must not divide by it
    up = rng.standard_normal((4, 6, 5)).astype(np.float32)
    view = {"contiguous": lambda t: t, "transposed": lambda t: t.transpose(0, 2),
            "sliced": lambda t: t[:, ::2]}[layout]
    for dim in range(3):
        x, tx = tracegrad.tensor(a, device="cuda", requires_grad=True), torch.tensor(a, requires_grad=True)
        y, ty = getattr(view(x), op)(dim), getattr(view(tx), op)(dim)
        close(y, ty)
        (y * view(tracegrad.tensor(up, device="cuda"))).sum().backward()
        (ty * view(torch.tensor(up))).sum().backward()
        close(x.grad, tx.grad, atol=1e-5, rtol=1e-5)


def test_rows_longer_than_one_block_carry_between_blocks(cuda, rng):
    a = rng.standard_normal((3, 5000)).astype(np.float32)
    x, tx = tracegrad.tensor(a, device="cuda"), torch.tensor(a)
    close(x.cumsum(1), tx.cumsum(1), atol=1e-4, rtol=1e-5)
    close(x.t().cumsum(0), tx.t().cumsum(0), atol=1e-4, rtol=1e-5)
    b = rng.uniform(0.999, 1.001, (2, 5000)).astype(np.float32)
    close(tracegrad.tensor(b, device="cuda").cumprod(-1), torch.tensor(b).cumprod(-1), atol=1e-6, rtol=1e-5)
    c = np.arange(9000, dtype=np.int32) % 7 - 3
    close(tracegrad.tensor(c, device="cuda").cumsum(0), torch.tensor(c).cumsum(0))


@pytest.mark.parametrize("dtype", ["float64", "float16", "bfloat16", "int32", "int64", "uint8", "bool"])
def test_scan_dtypes(cuda, rng, dtype):
    a = rng.integers(0, 3, (3, 7)).astype(np.float32)
    x, tx = tracegrad.tensor(a, device="cuda").to(getattr(tracegrad, dtype)), torch.tensor(a).to(getattr(torch, dtype))
    tol = dict(atol=1e-2, rtol=1e-2) if dtype in ("float16", "bfloat16") else {}
    for op in ("cumsum", "cumprod"):
        close(getattr(x, op)(1), getattr(tx, op)(1), **tol)  # ints and bools accumulate in int64
    close(x.cumsum(0, dtype=tracegrad.float64), tx.cumsum(0, dtype=torch.float64))


def test_empty_and_zero_dim(cuda):
    e, te = tracegrad.zeros(0, 3, device="cuda"), torch.zeros(0, 3)
    close(e.cumsum(0), te.cumsum(0))
    close(e.cumprod(1), te.cumprod(1))
    s, ts = tracegrad.tensor(2.5, device="cuda"), torch.tensor(2.5)
    close(s.cumsum(0), ts.cumsum(0))
    close(s.cumprod(-1), ts.cumprod(-1))


@pytest.mark.parametrize("dtype", ["float32", "float16", "bfloat16", "int64", "int32", "int16", "uint8", "bool"])
def test_argsort_is_torchs_stable_order(cuda, rng, dtype):
    """Stable along either dim, ascending and descending (ties keep index order both ways); NaN
    above every number, -0.0 tied with 0.0, infinities in place; a transposed input's layout kept."""
    a = rng.standard_normal((5, 9)).astype(np.float32)
    a[1, 3], a[3, 5], a[3, 6], a[0, 1], a[0, 2] = np.nan, np.inf, -np.inf, -0.0, 0.0
    a[2, :4] = a[2, 4]  # a run of ties
    if not dtype.startswith("float") and dtype != "bfloat16":
        a = np.nan_to_num(np.round(a * 3), posinf=5, neginf=-5)
        a = np.abs(a) if dtype == "uint8" else a
    x, tx = tracegrad.tensor(a, device="cuda").to(getattr(tracegrad, dtype)), torch.tensor(a).to(getattr(torch, dtype))
    for dim in (0, 1):
        for desc in (False, True):
            got = tracegrad.argsort(x, dim, descending=desc)
            close(got, torch.sort(tx, stable=True, dim=dim, descending=desc).indices)
            got_t = tracegrad.sort(x.t(), dim, descending=desc).indices
            want_t = torch.sort(tx.t(), stable=True, dim=dim, descending=desc).indices
            close(got_t, want_t)
            assert got_t.stride() == want_t.stride()


def test_sort_and_topk_values_and_gradients(cuda, rng):
    a = rng.standard_normal((4, 6)).astype(np.float32)
    up = rng.standard_normal((4, 3)).astype(np.float32)
    x, tx = tracegrad.tensor(a, device="cuda", requires_grad=True), torch.tensor(a, requires_grad=True)
    v, i = tracegrad.topk(x, 3, 1)
    tv, ti = torch.topk(tx, 3, 1)
    close(v, tv)
    close(i, ti)
    s, ts = tracegrad.sort(x, 0, descending=True).values, torch.sort(tx, 0, descending=True).values
    close(s, ts)
    ((v * tracegrad.tensor(up, device="cuda")).sum() + s[0].sum()).backward()
    ((tv * torch.tensor(up)).sum() + ts[0].sum()).backward()
    close(x.grad, tx.grad)


def test_argsort_of_long_rows_and_64_bit_values_goes_to_the_host(rng, monkeypatch):
    """Rows longer than one block and 64-bit keys (int64 values past int32's range) have no device
    sort yet: the host sorts them (with the fallback's one-time warning), still torch's order."""
    from cuda_device import cuda_device
    from tracegrad.kernels.cuda import eager

    on_host, fallback = [], eager._fallback
    monkeypatch.setattr(eager, "_fallback", lambda op, *a: on_host.append(op.name) or fallback(op, *a))
    with cuda_device(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for x in (tracegrad.tensor(rng.standard_normal(5000).astype(np.float32), device="cuda"),
                  tracegrad.tensor(rng.integers(-2 ** 40, 2 ** 40, 40), device="cuda")):  # past int32
            tx = torch.tensor(x.cpu().numpy())
            close(tracegrad.argsort(x), torch.sort(tx, stable=True).indices)
    assert on_host == ["argsort", "argsort"]


def scan_workload(rng):
    x = dev(rng, 256, 1024, requires_grad=True)
    x.cumsum(1).sum().backward()
    dev(rng, 1024, 64).cumsum(0)  # a strided (column) scan
    dev(rng, 2, 20000).cumprod(1)  # looped rows
    dev(rng, 128, 512, dtype=tracegrad.float16).cumsum(-1)
    tracegrad.argsort(dev(rng, 256, 1024), 1)
    tracegrad.sort(dev(rng, 64, 4096), 1, descending=True)  # the longest row one block sorts
    tracegrad.argsort(dev(rng, 512, 100, dtype=tracegrad.bfloat16), 0)


def test_scan_kernels_compile_for_sm90_without_spills(rng):
    assert_compiles_for_sm90(scan_workload, rng, {"reduction"})
