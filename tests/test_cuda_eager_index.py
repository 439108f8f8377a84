"""Indexing on eager CUDA tensors (gather, scatter, x[idx], index_put, embedding...), against torch on the CPU.

Each op must run as device kernels (kernels/cuda/gather.py): the `cuda` fixture
fails a test whose ops fell back to the host. Values, layouts where torch
guarantees them, gradients and torch's errors for out-of-range indices are
compared. The simulated device runs each kernel under Triton's interpreter.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

import tracegrad
from cuda_device import cuda  # noqa: F401  (the fixture)
from test_cuda_eager_aot import assert_compiles_for_sm90, dev

F = tracegrad.nn.functional
TF = torch.nn.functional




def pair(a, dtype=None, grad=True):
    """The same values as a CUDA tensor and a torch CPU tensor (leaves requiring grad for floats)."""
    x, tx = tracegrad.tensor(a, device="cuda"), torch.tensor(a)
    if dtype is not None:
        x, tx = x.to(getattr(tracegrad, dtype)), tx.to(getattr(torch, dtype))
    if grad and tx.dtype.is_floating_point:
        x.requires_grad_()
        tx.requires_grad_()
    return x, tx


def close(ours, theirs, **tol) -> None:
    assert ours.is_cuda, "the result left the device"
    assert tuple(ours.shape) == tuple(theirs.shape), (tuple(ours.shape), tuple(theirs.shape))
    assert str(ours.dtype).split(".")[-1] == str(theirs.dtype).split(".")[-1]
    got = torch.from_numpy(np.array(ours.detach().cpu()._values()))
    if theirs.dtype is torch.bfloat16:
        got = got.view(torch.bfloat16) if got.dtype is torch.int16 else got
    torch.testing.assert_close(got.to(theirs.dtype), theirs.detach(), **tol)


def check(fn, tfn, xs, txs, rng=None, **tol):
    """fn(*xs) matches tfn(*txs) on the device, and so do the gradients of a weighted sum of the output."""
    y, ty = fn(*xs), tfn(*txs)
    close(y, ty, **tol)
    if not ty.requires_grad:
        return
    w = (np.random.default_rng(0) if rng is None else rng).standard_normal(tuple(ty.shape)).astype(np.float32)
    (y * tracegrad.tensor(w, device="cuda").to(y.dtype)).sum().backward()
    (ty * torch.tensor(w).to(ty.dtype)).sum().backward()
    for x, tx in zip(xs, txs):
        if getattr(tx, "grad", None) is not None:
            close(x.grad, tx.grad, **tol)


def ints(a):
    return tracegrad.tensor(np.asarray(a), device="cuda"), torch.tensor(np.asarray(a))


# ---- reads: x[idx], index_select, take, gather, masked_select, embedding ------------------------------
READS = {
    "one_array": lambda L, x, i: x[i],
    "array_on_dim_1": lambda L, x, i: x[:, i],
    "two_arrays_broadcast": lambda L, x, i: x[i.reshape(-1, 1), i[:2]],
    "separated_arrays_go_first": lambda L, x, i: x.reshape(x.shape[0], 2, -1)[i, :, i[:1]],
    "slice_then_array": lambda L, x, i: x[1:, i[i < 3]],
    "transposed_input": lambda L, x, i: x.t()[i[i < 3]],
    "mask": lambda L, x, i: x[x > 0.2],
    "row_mask": lambda L, x, i: x[x.sum(1) > 0],
    "index_select_0": lambda L, x, i: L.index_select(x, 0, i.abs()),
    "index_select_1": lambda L, x, i: x.index_select(1, i.abs()),
    "take": lambda L, x, i: L.take(x.t(), i * 2),
    "gather_1": lambda L, x, i: x.gather(1, i.abs().reshape(1, -1).expand(3, -1)),
    "gather_0_strided": lambda L, x, i: x[:, ::2].gather(0, (i.abs() % 3).reshape(-1, 1)),
    "masked_select": lambda L, x, i: L.masked_select(x, x < 0),
    "masked_select_broadcast": lambda L, x, i: x.masked_select(L.tensor([True, False, True, True, False, True],
                                                                          device=x.device)),
}


@pytest.mark.parametrize("name", READS)
def test_reads_match_torch(cuda, rng, name):
    a = rng.standard_normal((4, 6)).astype(np.float32)
    idx = np.array([2, 0, -1, 2, 1])
    x, tx = pair(a)
    i, ti = ints(idx)
    fn = READS[name]
    check(lambda x: fn(tracegrad, x, i), lambda x: fn(torch, x, ti), [x], [tx], rng)


def test_index_keeps_torchs_layout(cuda, rng):
    """A transposed input gives a transposed result (torch restrides the input to the result)."""
    a = rng.standard_normal((5, 4)).astype(np.float32)
    x, tx = pair(a, grad=False)
    i, ti = ints([3, 0, 1])
    y, ty = x.t()[:, i], tx.t()[:, ti]
    close(y, ty)
    assert y.stride() == ty.stride()
    y, ty = x.index_select(0, i), tx.index_select(0, ti)
    assert y.stride() == ty.stride() and y.is_contiguous()


@pytest.mark.parametrize("dtype", ["float64", "float16", "bfloat16", "int64", "int32", "uint8"])
def test_reads_in_every_dtype(cuda, rng, dtype):
    a = (rng.standard_normal((3, 5)) * 4).astype(np.float32)
    x, tx = pair(a, dtype, grad=False)
    i, ti = ints([[4, 0], [1, 1], [2, 3]])
    close(x.gather(1, i), tx.gather(1, ti))
    close(x[i[1]], tx[ti[1]])
    close(x[:, i[0]], tx[:, ti[0]])


def test_embedding_forward_and_backward(cuda, rng):
    w = rng.standard_normal((7, 5)).astype(np.float32)
    idx = np.array([[1, 3, 3, 0], [6, 1, 1, 2]])  # repeated rows: their gradients add
    for padding_idx in (None, 1):
        for freq in (False, True):  # scale_grad_by_freq: each row's gradient over its index's count
            x, tx = pair(w)
            i, ti = ints(idx)
            check(lambda w: F.embedding(i, w, padding_idx=padding_idx, scale_grad_by_freq=freq),
                  lambda w: TF.embedding(ti, w, padding_idx=padding_idx, scale_grad_by_freq=freq), [x], [tx], rng)


def test_embedding_module_trains_on_the_device(cuda, rng):
    """nn.Embedding -> mean -> linear, two SGD steps, against torch with the same weights."""
    tracegrad.manual_seed(0)
    emb, lin = tracegrad.nn.Embedding(9, 4), tracegrad.nn.Linear(4, 2)
    temb, tlin = torch.nn.Embedding(9, 4), torch.nn.Linear(4, 2)
    with torch.no_grad():
        for ours, theirs in ((emb.weight, temb.weight), (lin.weight, tlin.weight), (lin.bias, tlin.bias)):
            theirs.copy_(torch.tensor(ours.detach().numpy()))
    emb.to("cuda")
    lin.to("cuda")
    params = list(emb.parameters()) + list(lin.parameters())
    tparams = list(temb.parameters()) + list(tlin.parameters())
    opt, topt = tracegrad.optim.SGD(params, lr=0.5), torch.optim.SGD(tparams, lr=0.5)
    idx = rng.integers(0, 9, (6, 3))
    t = rng.integers(0, 2, 6)
    for _ in range(2):
        for o in (opt, topt):
            o.zero_grad()
        F.cross_entropy(lin(emb(tracegrad.tensor(idx, device="cuda")).mean(1)),
                        tracegrad.tensor(t, device="cuda")).backward()
        TF.cross_entropy(tlin(temb(torch.tensor(idx)).mean(1)), torch.tensor(t)).backward()
        opt.step()
        topt.step()
    for p, tp in zip(params, tparams):
        close(p, tp, atol=1e-5, rtol=1e-5)


# ---- writes: scatter, scatter_add, index_put, index_fill, index_add, setitem ---------------------------
def test_scatter_and_scatter_add(cuda, rng):
    a = rng.standard_normal((3, 5)).astype(np.float32)
    uniq = np.array([[4, 0], [1, 3], [2, 0]])  # scatter: no index twice in a row (torch's CUDA order is free)
    dup = np.array([[4, 4, 0], [1, 1, 1], [0, 2, 0]])
    # (src has the index's shape: torch's own backward refuses a larger src)
    for fn, idx in ((lambda L, x, i, s: x.scatter(1, i, s), uniq), (lambda L, x, i, s: x.scatter(1, i, 2.5), uniq),
                    (lambda L, x, i, s: x.scatter(0, i, s), uniq[:1] % 3),
                    (lambda L, x, i, s: x.scatter_add(1, i, s), dup), (lambda L, x, i, s: x.scatter_add(0, i, s), dup % 3)):
        (x, tx), (src, tsrc) = pair(a), pair(rng.standard_normal(idx.shape).astype(np.float32))
        i, ti = ints(idx)
        check(lambda x, s: fn(tracegrad, x, i, s), lambda x, s: fn(torch, x, ti, s), [x, src], [tx, tsrc], rng)


@pytest.mark.parametrize("dtype", ["float16", "bfloat16", "float64", "int64", "int32", "int8"])
def test_accumulating_writes_in_every_dtype(cuda, dtype):
    """Atomic adds where the dtype has them, a wider scratch copy where it does not (bfloat16, int8)."""
    a = np.arange(15, dtype=np.float32).reshape(3, 5) - 7
    s = np.full((3, 3), 3, np.float32)
    x, tx = pair(a, dtype, grad=False)
    src, tsrc = pair(s, dtype, grad=False)
    i, ti = ints([[4, 4, 0], [1, 1, 1], [0, 2, 0]])
    close(x.scatter_add(1, i, src), tx.scatter_add(1, ti, tsrc))
    j, tj = ints([0, 2, 0, 0])
    close(x.index_put((j,), src[0, 0], accumulate=True), tx.index_put((tj,), tsrc[0, 0], accumulate=True))


def test_index_put_and_setitem(cuda, rng):
    a = rng.standard_normal((4, 5)).astype(np.float32)
    v = rng.standard_normal((3, 5)).astype(np.float32)
    i, ti = ints([3, 0, 3])
    for accumulate in (True, False):
        (x, tx), (val, tval) = pair(a), pair(v)
        j, tj = ints([3, 0, 1])  # unique rows when overwriting
        k, tk = (i, ti) if accumulate else (j, tj)
        check(lambda x, v: x.index_put((k,), v, accumulate=accumulate),
              lambda x, v: x.index_put((tk,), v, accumulate=accumulate), [x, val], [tx, tval], rng)

    def setitems(L, x, v, i, m):
        y = x * 1
        y[i] = v  # index_put_ of rows
        y[:, i[:2]] = 0.5  # a number through an index
        y[m] = -1.0  # a mask with one value: masked_fill_
        y[i[:1], 1:3] += 1
        return y
    (x, tx), (val, tval) = pair(a), pair(v)
    m = a > 1
    check(lambda x, v: setitems(tracegrad, x, v, ints([2, 0, 1])[0], tracegrad.tensor(m, device="cuda")),
          lambda x, v: setitems(torch, x, v, torch.tensor([2, 0, 1]), torch.tensor(m)), [x, val], [tx, tval], rng)


def test_index_fill_and_index_add(cuda, rng):
    a = rng.standard_normal((4, 5)).astype(np.float32)
    s = rng.standard_normal((4, 3)).astype(np.float32)
    i, ti = ints([4, 0, 4])
    (x, tx), (src, tsrc) = pair(a), pair(s)
    check(lambda x, s: x.index_add(1, i, s, alpha=-2.0), lambda x, s: x.index_add(1, ti, s, alpha=-2.0),
          [x, src], [tx, tsrc], rng)
    x, tx = pair(a)
    check(lambda x: x.t().index_fill(0, i[:2], 3.0), lambda x: x.t().index_fill(0, ti[:2], 3.0), [x], [tx], rng)


def test_view_backwards_stay_on_the_device(cuda, rng):
    """Slicing, select, narrow and diagonal send their gradient into zeros through the same view."""
    a = rng.standard_normal((4, 6)).astype(np.float32)
    x, tx = pair(a)
    check(lambda x: x[1:3, ::2] * 2 + x[0].sum() + x.narrow(1, 2, 3).sum() + x.diagonal().sum(),
          lambda x: x[1:3, ::2] * 2 + x[0].sum() + x.narrow(1, 2, 3).sum() + x.diagonal().sum(), [x], [tx], rng)


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_backward_of_overlapping_views_adds_on_the_device(cuda, rng, dtype):
    """unfold's windows share elements: their gradients add there (an atomic store; bfloat16
    through a float32 scratch copy)."""
    a = rng.standard_normal((5, 7)).astype(np.float32)
    x, tx = pair(a, dtype)
    tol = dict(atol=2e-2, rtol=2e-2) if dtype == "bfloat16" else {}
    views = (lambda t: t.unfold(1, 3, 2), lambda t: t.t().unfold(0, 3, 1),
             lambda t: t.unfold(0, 2, 1).unfold(1, 3, 1))
    for f in views:
        x.grad, tx.grad = None, None
        check(f, f, [x], [tx], rng, **tol)


def test_as_strided_backward_reads_the_inputs_own_layout(rng):
    """as_strided is defined on the input's storage (its strides and offset), so its backward stays
    on the host, which places the gradient by that layout, as torch does."""
    import warnings

    from cuda_device import cuda_device

    a = np.arange(12.0, dtype=np.float32).reshape(4, 3)
    with cuda_device(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for f in (lambda t: t.t().as_strided((3, 3), (1, 1)), lambda t: t.reshape(-1)[2:].as_strided((2,), (1,), 0),
                  lambda t: t.as_strided((4, 4), (1, 2), 1)):
            x, tx = pair(a)
            check(f, f, [x], [tx], rng)


# ---- torch's errors, checked before any kernel reads through an index -----------------------------------
def test_out_of_range_indices_raise_torchs_errors(cuda):
    x = tracegrad.zeros(3, 4, device="cuda")
    with pytest.raises(RuntimeError, match="out of bounds for dimension 1 with size 4"):
        x.gather(1, tracegrad.tensor([[0, 4]], device="cuda"))
    with pytest.raises(RuntimeError, match="out of bounds for dimension 1 with size 4"):
        x.scatter_add(1, tracegrad.tensor([[-1]], device="cuda"), tracegrad.ones(1, 1, device="cuda"))
    with pytest.raises(IndexError, match="index 3 is out of bounds for dimension 0 with size 3"):
        x[tracegrad.tensor([0, 3], device="cuda")]
    with pytest.raises(IndexError, match="index out of range in self"):
        F.embedding(tracegrad.tensor([5], device="cuda"), tracegrad.zeros(5, 2, device="cuda"))
    with pytest.raises(IndexError, match="out of range: tried to access index 12 on a tensor of 12 elements"):
        tracegrad.take(x, tracegrad.tensor([12], device="cuda"))
    with pytest.raises(RuntimeError, match="shape mismatch: value tensor of shape"):
        x.index_put((tracegrad.tensor([0, 1], device="cuda"),), tracegrad.ones(3, 4, device="cuda"))


# ---- the kernels compile for an H100 -------------------------------------------------------------------
def indexing_workload(rng):
    x = dev(rng, 256, 96, requires_grad=True)
    i = tracegrad.tensor(rng.integers(0, 256, 512), device="cuda")
    (x[i] * 2).sum().backward()  # a gather of rows and an accumulating index_put
    x.gather(1, tracegrad.tensor(rng.integers(0, 96, (256, 32)), device="cuda"))
    x.detach().scatter_add(1, tracegrad.tensor(rng.integers(0, 96, (256, 32)), device="cuda"), dev(rng, 256, 32))
    w = dev(rng, 1000, 128, requires_grad=True)
    F.embedding(tracegrad.tensor(rng.integers(0, 1000, (16, 64)), device="cuda"), w).sum().backward()
    wh = dev(rng, 1000, 128, dtype=tracegrad.float16, requires_grad=True)
    F.embedding(tracegrad.tensor(rng.integers(0, 1000, (16, 64)), device="cuda"), wh).float().sum().backward()
    x.detach()[x.detach() > 0]
    tracegrad.take(x.detach(), i)
    (x.unfold(1, 8, 4) * 2).sum().backward()  # overlapping windows: an atomic store


def test_indexing_kernels_compile_for_sm90_without_spills(rng):
    assert_compiles_for_sm90(indexing_workload, rng, {"pointwise", "reduction"})


def test_a_mask_of_several_dims_after_a_slice(cuda, rng):
    """x[:, mask2d]: the mask's dims stay where the mask stood (reading and writing)."""
    a = rng.standard_normal((3, 4, 5)).astype(np.float32)
    m = rng.random((4, 5)) > 0.5
    x, tx = pair(a)
    mk, tmk = tracegrad.tensor(m, device="cuda"), torch.tensor(m)
    check(lambda x: x[:, mk], lambda x: x[:, tmk], [x], [tx], rng)
    y, ty = pair(a, grad=False)
    y[:, mk] = tracegrad.arange(int(m.sum()), device="cuda").float()
    ty[:, tmk] = torch.arange(int(m.sum())).float()
    close(y, ty)


def test_one_element_and_zero_dim_indices(cuda):
    """A one-element kernel reads through a scalar index; 0-d tensors gather and scatter like vectors."""
    v, tv = pair(np.arange(4, dtype=np.float32), grad=False)
    one, tone = ints([3])
    close(v.gather(0, one), tv.gather(0, tone))
    close(v.take(ints(-1)[0]), tv.take(torch.tensor(-1)))
    close(v[ints([2])[0]], tv[torch.tensor([2])])
    close(v.clone().index_put_((ints(1)[0],), tracegrad.tensor(5., device="cuda"), accumulate=True),
          tv.clone().index_put_((torch.tensor(1),), torch.tensor(5.), accumulate=True))
    close(v.take(ints([[-1, 0], [2, 3]])[0]), tv.take(torch.tensor([[-1, 0], [2, 3]])))
    t, tt = pair(np.float32(3.0))
    s, ts = pair(np.float32(2.0))
    i, ti = ints(0)
    check(lambda t, s: t.scatter_add(0, i, s) + t.gather(0, i) + t.scatter(0, i, 7.0),
          lambda t, s: t.scatter_add(0, ti, s) + t.gather(0, ti) + t.scatter(0, ti, 7.0), [t, s], [tt, ts])
