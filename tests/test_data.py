"""tracegrad.utils.data against torch.utils.data: datasets, samplers, batching, collation."""
from __future__ import annotations

from collections import namedtuple

import numpy as np
import pytest
import torch
import torch.utils.data as TD

import tracegrad
import tracegrad.utils.data as D
from nn_helpers import tg


def _as_np(x):
    if isinstance(x, tracegrad.Tensor):
        return ("T", x.dtype.name, x.numpy().tolist())
    if isinstance(x, torch.Tensor):
        return ("T", str(x.dtype).split(".")[-1], x.numpy().tolist())
    if isinstance(x, dict):
        return {k: _as_np(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return (type(x).__name__, [_as_np(v) for v in x])
    return x


def _same_batches(ours, theirs):
    bo, bt = [_as_np(b) for b in ours], [_as_np(b) for b in theirs]
    assert bo == bt


def _tensors(n=10):
    x = torch.arange(n * 3, dtype=torch.float32).reshape(n, 3)
    y = torch.arange(n) % 3
    return x, y


@pytest.mark.parametrize("batch_size,drop_last", [(1, False), (3, False), (3, True), (10, False), (4, True)])
def test_sequential_batches_match_torch(batch_size, drop_last):
    x, y = _tensors()
    lo = D.DataLoader(D.TensorDataset(tg(x), tg(y)), batch_size=batch_size, drop_last=drop_last)
    lt = TD.DataLoader(TD.TensorDataset(x, y), batch_size=batch_size, drop_last=drop_last)
    assert len(lo) == len(lt)
    _same_batches(lo, lt)


def test_shuffle_is_a_permutation_and_reproducible():
    x, y = _tensors(20)
    ds = D.TensorDataset(tg(x), tg(y))
    g1 = tracegrad.Generator().manual_seed(7)
    g2 = tracegrad.Generator().manual_seed(7)
    order1 = [int(v) for xb, _ in D.DataLoader(ds, batch_size=6, shuffle=True, generator=g1) for v in xb[:, 0] / 3]
    order2 = [int(v) for xb, _ in D.DataLoader(ds, batch_size=6, shuffle=True, generator=g2) for v in xb[:, 0] / 3]
    assert sorted(order1) == list(range(20)) and order1 == order2 and order1 != list(range(20))
    loader = D.DataLoader(ds, batch_size=20, shuffle=True, generator=g1)
    e1, e2 = [b[1].tolist() for b in loader], [b[1].tolist() for b in loader]
    assert e1 != e2  # a new order each epoch
    tracegrad.manual_seed(3)
    a = [b[0].tolist() for b in D.DataLoader(ds, batch_size=5, shuffle=True)]
    tracegrad.manual_seed(3)
    b = [b[0].tolist() for b in D.DataLoader(ds, batch_size=5, shuffle=True)]
    assert a == b
    for xb, yb in D.DataLoader(ds, batch_size=4, shuffle=True):
        np.testing.assert_array_equal((xb[:, 0] / 3).long().numpy() % 3, yb.numpy())  # rows stay paired


class _Dicts(torch.utils.data.Dataset):
    Pair = namedtuple("Pair", "a b")

    def __init__(self, lib):
        self.lib = lib

    def __len__(self):
        return 5

    def __getitem__(self, i):
        L = self.lib
        return {"x": L.tensor([i, i + 1.0]), "n": i, "f": i / 2, "s": f"s{i}", "arr": np.full(2, i, np.int32),
                "pair": _Dicts.Pair(L.tensor(i), [i, i * 2]), "flag": i % 2 == 0, "np": np.float32(i)}


def test_default_collate_structures_match_torch():
    class Ours(D.Dataset):
        def __len__(self):
            return 5

        def __getitem__(self, i):
            return _Dicts(tracegrad)[i]

    _same_batches(D.DataLoader(Ours(), batch_size=2), TD.DataLoader(_Dicts(torch), batch_size=2))
    lo = [_as_np(b) for b in D.DataLoader(Ours(), batch_size=None)]
    lt = [_as_np(b) for b in TD.DataLoader(_Dicts(torch), batch_size=None)]
    assert lo == lt
    samples = [(np.ones((2, 2)) * i, i) for i in range(3)]
    assert _as_np(D.default_collate(samples)) == _as_np(TD.default_collate(samples))
    with pytest.raises(RuntimeError, match="each element in list of batch should be of equal size"):
        D.default_collate([[1, 2], [1]])
    with pytest.raises(TypeError, match="default_collate: batch must contain tensors"):
        D.default_collate([object(), object()])


def test_samplers_subsets_and_concat():
    x, y = _tensors(10)
    ds = D.TensorDataset(tg(x), tg(y))
    assert list(D.SequentialSampler(ds)) == list(range(10))
    bs = D.BatchSampler(D.SequentialSampler(ds), 4, drop_last=False)
    assert list(bs) == list(TD.BatchSampler(TD.SequentialSampler(range(10)), 4, drop_last=False)) and len(bs) == 3
    rs = D.RandomSampler(ds, replacement=True, num_samples=25, generator=tracegrad.Generator().manual_seed(1))
    draws = list(rs)
    assert len(draws) == 25 == len(rs) and all(0 <= d < 10 for d in draws)
    long_epoch = list(D.RandomSampler(ds, num_samples=23))
    assert len(long_epoch) == 23 and sorted(long_epoch[:20]) == sorted(list(range(10)) * 2)
    sub = D.Subset(ds, [3, 1])
    assert len(sub) == 2 and sub[0][1].item() == 0 and sub[1][1].item() == 1
    parts = D.random_split(ds, [0.7, 0.3], generator=tracegrad.Generator().manual_seed(0))
    assert [len(p) for p in parts] == [len(p) for p in TD.random_split(range(10), [0.7, 0.3])]
    assert sorted(parts[0].indices + parts[1].indices) == list(range(10))
    with pytest.raises(ValueError, match="Sum of input lengths does not equal"):
        D.random_split(ds, [3, 3])
    both = ds + D.TensorDataset(tg(x[:2]), tg(y[:2]))
    assert len(both) == 12 and both[11][1].item() == 1 and both[-1][1].item() == 1
    sub_loader = D.DataLoader(ds, batch_size=3, sampler=D.SubsetRandomSampler([0, 2, 4, 6]))
    assert sorted(v for _, yb in sub_loader for v in (yb.tolist())) == sorted([0, 2, 1, 0])
    with pytest.raises(AssertionError, match="Size mismatch between tensors"):
        D.TensorDataset(tracegrad.ones(3), tracegrad.ones(4))


def test_loader_option_errors_match_torch():
    x, y = _tensors(4)
    ds_o, ds_t = D.TensorDataset(tg(x)), TD.TensorDataset(x)
    cases = [dict(sampler=[0, 1], shuffle=True), dict(batch_sampler=[[0]], batch_size=2),
             dict(batch_size=None, drop_last=True), dict(num_workers=-1)]
    for kw in cases:
        with pytest.raises(ValueError) as eo:
            D.DataLoader(ds_o, **kw)
        with pytest.raises(ValueError) as et:
            TD.DataLoader(ds_t, **kw)
        assert str(eo.value) == str(et.value)


def test_batch_sampler_option_and_custom_collate_and_iterable():
    x, y = _tensors(6)
    ds = D.TensorDataset(tg(x), tg(y))
    lo = D.DataLoader(ds, batch_sampler=[[5, 0], [1]])
    lt = TD.DataLoader(TD.TensorDataset(x, y), batch_sampler=[[5, 0], [1]])
    _same_batches(lo, lt)
    assert len(lo) == 2
    batches = list(D.DataLoader(ds, batch_size=4, collate_fn=lambda b: len(b)))
    assert batches == [4, 2]

    class Stream(D.IterableDataset):
        def __iter__(self):
            return iter(range(7))

    class StreamT(TD.IterableDataset):
        def __iter__(self):
            return iter(range(7))

    _same_batches(D.DataLoader(Stream(), batch_size=3), TD.DataLoader(StreamT(), batch_size=3))
    _same_batches(D.DataLoader(Stream(), batch_size=3, drop_last=True),
                  TD.DataLoader(StreamT(), batch_size=3, drop_last=True))
    with pytest.raises(ValueError, match="expected unspecified shuffle option"):
        D.DataLoader(Stream(), shuffle=True)
    assert D.get_worker_info() is None
    # num_workers > 0 is accepted and loads in this process, with the same batches
    _same_batches(D.DataLoader(ds, batch_size=2, num_workers=2), TD.DataLoader(TD.TensorDataset(x, y), batch_size=2))
