"""Eager CUDA tensors on the simulated device, against torch on the CPU.

The simulated device (kernels/cuda/simulate.py) is the real CUDA path with the
driver swapped: memory is host NumPy buffers behind the caching allocator, and
each op's generated Triton kernel runs under Triton's interpreter. So these
tests run the kernels a GPU would run, the launch code and the allocator; what
they cannot see is the GPU itself (see test_triton_compile for sm_90 builds).

The interpreter costs milliseconds a launch: shapes stay small and few."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

import tracegrad
from tracegrad.kernels.cuda import eager
from tracegrad.kernels.cuda.simulate import simulated
from cuda_device import cuda_device, simulation_only


@pytest.fixture
def cuda():
    with cuda_device():
        yield


def same(ours, theirs, **tol) -> None:
    """ours (a CUDA tensor) has theirs' values, shape and dtype."""
    assert ours.is_cuda and ours.device == "cuda:0"
    got = torch.from_numpy(np.array(ours.cpu()._values()))
    if theirs.dtype == torch.bfloat16:
        theirs = theirs.float()
    torch.testing.assert_close(got, theirs.to(got.dtype), **tol)
    assert tuple(ours.shape) == tuple(theirs.shape)


def pair(rng, *shape, dtype="float32"):
    a = rng.standard_normal(shape).astype(dtype)
    return tracegrad.tensor(a, device="cuda"), torch.tensor(a)


# ---- the device itself --------------------------------------------------------------------------
@simulation_only
def test_without_a_gpu_or_simulation_cuda_is_refused():
    with simulated(False):
        for make in (lambda: tracegrad.ones(2, device="cuda"), lambda: tracegrad.ones(2).cuda(),
                     lambda: tracegrad.ones(2).to("cuda")):
            with pytest.raises(RuntimeError, match="no CUDA device or driver was found"):
                make()
        assert tracegrad.cuda.is_available() is False


def test_moving_between_host_and_device(cuda, rng):
    a = rng.standard_normal((3, 4)).astype(np.float32)
    x = tracegrad.tensor(a)
    y = x.cuda()
    assert (y.device.type, y.device.index, y.is_cuda, y.get_device()) == ("cuda", 0, True, 0)
    assert x.to("cuda").device == y.device == tracegrad.device("cuda:0")
    back = y.cpu()
    assert back.device == "cpu" and not back.is_cuda and np.array_equal(back.numpy(), a)
    assert y.to("cuda") is y and x.cpu() is x
    assert y.to("cuda", tracegrad.float64).dtype is tracegrad.float64
    with pytest.raises(TypeError, match="can't convert cuda:0 device type tensor to numpy"):
        y.numpy()
    assert y.tolist() == x.tolist() and y[0, 0].item() == pytest.approx(float(a[0, 0]))
    z = tracegrad.zeros(2, 3, device="cuda", dtype=tracegrad.int64)
    assert z.is_cuda and z.dtype is tracegrad.int64 and z.sum().item() == 0
    assert tracegrad.ones_like(z).is_cuda and tracegrad.cuda.is_available() and tracegrad.cuda.device_count() == 1


def test_printing_shows_the_device(cuda):
    x = tracegrad.tensor([[1.0, 2.5], [3.0, 4.0]], device="cuda")
    ref = torch.tensor([[1.0, 2.5], [3.0, 4.0]])
    assert repr(x) == repr(ref)[:-1] + ", device='cuda:0')"
    assert repr(tracegrad.arange(3, device="cuda")) == "tensor([0, 1, 2], device='cuda:0')"
    w = tracegrad.ones(2, device="cuda", requires_grad=True)
    assert repr(w * 2) == "tensor([2., 2.], device='cuda:0', grad_fn=<MulBackward0>)"


def test_mixing_devices_is_torchs_error(cuda):
    x, c = tracegrad.ones(3, device="cuda"), tracegrad.ones(3)
    for f in (lambda: x + c, lambda: c + x, lambda: x.exp() * c, lambda: tracegrad.where(x > 0, x, c),
              lambda: x.reshape(1, 3) @ c.reshape(3, 1)):
        with pytest.raises(RuntimeError, match="Expected all tensors to be on the same device, but found at "
                                               "least two devices, cuda:0 and cpu!"):
            f()
    assert (x + tracegrad.tensor(2.0)).tolist() == [3.0, 3.0, 3.0]  # a 0-d CPU tensor mixes in, as in torch


# ---- ops -------------------------------------------------------------------------------------------------
def test_pointwise_broadcasting_and_strided_views(cuda, rng):
    x, tx = pair(rng, 4, 6)
    b, tb = pair(rng, 6)
    same(x * 2 + b, tx * 2 + tb)
    same(x.t().exp() - b.reshape(6, 1), tx.t().exp() - tb.reshape(6, 1))  # a transposed input
    same(x[1:, ::2].tanh() / (x[1:, 1::2].abs() + 1), tx[1:, ::2].tanh() / (tx[1:, 1::2].abs() + 1))  # step slices
    same(tracegrad.maximum(x, b.unsqueeze(0).expand(4, 6)), torch.maximum(tx, tb.unsqueeze(0).expand(4, 6)))
    same(tracegrad.where(x > 0, x, b), torch.where(tx > 0, tx, tb))
    same(x.sigmoid().clamp(0.2, 0.7), tx.sigmoid().clamp(0.2, 0.7))
    same((x > b) & (x < 1), (tx > tb) & (tx < 1))
    i, ti = tracegrad.arange(12, device="cuda").reshape(3, 4), torch.arange(12).reshape(3, 4)
    same(i * 3 // 2 - 1, ti * 3 // 2 - 1)
    same(i.float() / 4, ti.float() / 4)
    y = x.t() * 1.5  # torch keeps a transposed input's memory order in elementwise results
    assert y.stride() == (tx.t() * 1.5).stride() == (1, 6)


def test_half_precision_pointwise(cuda, rng):
    for dt, tdt in ((tracegrad.float16, torch.float16), (tracegrad.bfloat16, torch.bfloat16)):
        a = rng.standard_normal((5, 3)).astype(np.float32)
        x, tx = tracegrad.tensor(a, device="cuda").to(dt), torch.tensor(a).to(tdt)
        same((x * 3 + 1).relu(), (tx * 3 + 1).relu())


def test_reductions_over_any_dims(cuda, rng):
    x, tx = pair(rng, 3, 4, 5)
    same(x.sum(), tx.sum())
    same(x.sum(1), tx.sum(1))
    same(x.mean((0, 2), keepdim=True), tx.mean((0, 2), keepdim=True))
    same(x.amax(-1), tx.amax(-1))
    same(x.amin(0), tx.amin(0))
    same(x.transpose(0, 2).sum(0), tx.transpose(0, 2).sum(0))  # a non-contiguous input
    same(x.prod(2), tx.prod(2))
    same((x > 0).sum(1), (tx > 0).sum(1))  # bool sums count in int64
    same(tracegrad.nn.functional.softmax(x, -1), torch.softmax(tx, -1))


def test_matmul(cuda, rng):
    a, ta = pair(rng, 5, 7)
    b, tb = pair(rng, 7, 3)
    same(a @ b, ta @ tb)
    same(a.t().t() @ b[:, :2], ta @ tb[:, :2])
    same(a @ b[:, 0], ta @ tb[:, 0])  # matrix @ vector
    p, tp = pair(rng, 2, 4, 7)
    same(p @ b, tp @ tb)  # batched, broadcast
    same(a.double() @ b.double(), (ta.double() @ tb.double()))


def test_in_place_and_copies(cuda, rng):
    x, tx = pair(rng, 3, 4)
    y, ty = x.clone(), tx.clone()
    y.mul_(2).add_(1)
    ty.mul_(2).add_(1)
    same(y, ty)
    same(x, tx)  # the clone did not share memory
    v = y[:, 1]  # writing through a view writes the base
    v.zero_()
    ty[:, 1].zero_()
    same(y, ty)
    same(x.t().contiguous(), tx.t().contiguous())
    assert x.t().contiguous().is_contiguous()
    host = tracegrad.zeros(3, 4)
    host.copy_(x.t().t())  # copy_ crosses devices, both ways
    assert not host.is_cuda and np.array_equal(host.numpy(), tx.numpy())
    z = tracegrad.zeros(3, 4, device="cuda", dtype=tracegrad.float64)
    z.copy_(tracegrad.tensor([1.0, 2.0, 3.0, 4.0]))
    z[0].fill_(7)
    same(z, torch.tensor([[7.0] * 4, [1.0, 2.0, 3.0, 4.0], [1.0, 2.0, 3.0, 4.0]], dtype=torch.float64))


# ---- autograd ------------------------------------------------------------------------------------------
@simulation_only
def test_simulation_is_switched_on_by_the_environment():
    import os
    import subprocess
    import sys

    code = ("import tracegrad; x = tracegrad.arange(4.0, device='cuda'); print(x * 2, tracegrad.cuda.is_available())")
    env = dict(os.environ, TRACEGRAD_SIMULATE_CUDA="1")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # this checkout's tracegrad
    out = subprocess.run([sys.executable, "-c", code], env=env, cwd=root, capture_output=True, text=True,
                         timeout=120)
    assert out.stdout.strip() == "tensor([0., 2., 4., 6.], device='cuda:0') True", out.stderr


def test_autograd_through_a_small_mlp(cuda, rng):
    xs = rng.standard_normal((8, 5)).astype(np.float32)
    target = rng.standard_normal((8, 2)).astype(np.float32)
    w1, b1 = rng.standard_normal((16, 5)).astype(np.float32) * 0.5, np.full(16, 0.1, np.float32)
    w2, b2 = rng.standard_normal((2, 16)).astype(np.float32) * 0.5, np.zeros(2, np.float32)

    def run(L, dev):
        params = [L.tensor(p, device=dev, requires_grad=True) for p in (w1, b1, w2, b2)]
        x, t = L.tensor(xs, device=dev), L.tensor(target, device=dev)
        for _ in range(2):  # twice: the second backward accumulates into .grad
            h = L.nn.functional.linear(x, params[0], params[1]).relu()
            out = h @ params[2].t() + params[3]
            loss = ((out - t) ** 2).mean()
            loss.backward()
        return loss, params

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no op of this model falls back to the host
        loss, params = run(tracegrad, "cuda")
    tloss, tparams = run(torch, "cpu")
    same(loss.detach(), tloss.detach())
    for p, tp in zip(params, tparams):
        assert p.grad.is_cuda
        same(p.grad, tp.grad)


def test_gradient_flows_back_across_devices(cuda):
    w = tracegrad.tensor([1.0, 2.0], requires_grad=True)  # on the host
    y = (w.cuda() * 3).sum()
    assert y.is_cuda
    y.backward()
    assert not w.grad.is_cuda and w.grad.tolist() == [3.0, 3.0]


# ---- runtime -----------------------------------------------------------------------------------------
def test_memory_counters_follow_the_allocator(cuda):
    assert tracegrad.cuda.memory_allocated() == 0
    x = tracegrad.ones(1000, device="cuda")  # 4000 bytes: the 4096-byte size class
    assert tracegrad.cuda.memory_allocated() == 4096
    y = x * 2
    assert tracegrad.cuda.memory_allocated() == 8192
    del x, y
    assert tracegrad.cuda.memory_allocated() == 0 and tracegrad.cuda.max_memory_allocated() == 8192
    assert tracegrad.cuda.memory_reserved() == 8192  # cached for reuse, not given back
    tracegrad.cuda.synchronize()
    tracegrad.cuda.empty_cache()
    assert tracegrad.cuda.memory_reserved() == 0


def test_ops_without_a_kernel_run_on_the_host_and_say_so(cuda, rng):
    """scatter with reduce='multiply' has no device kernel (there is no atomic multiply)."""
    x, tx = pair(rng, 3, 4)
    i, ti = tracegrad.tensor([[0, 2]], device="cuda"), torch.tensor([[0, 2]])
    eager._FALLBACKS.pop("scatter", None)
    with pytest.warns(UserWarning, match="scatter has no CUDA kernel yet"):
        same(x.scatter(1, i, x, reduce="multiply"), tx.scatter(1, ti, tx, reduce="multiply"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # once per op
        same(x.scatter(0, i, x, reduce="multiply"), tx.scatter(0, ti, tx, reduce="multiply"))
    assert "scatter" in eager.host_fallbacks()
    same(tracegrad.cat([x, x * 2], 1), torch.cat([tx, tx * 2], 1))


@pytest.mark.parametrize("opt", ["SGD", "Adam"])
def test_module_to_cuda_and_optimizer_steps(cuda, rng, opt):
    xs = rng.standard_normal((8, 5)).astype(np.float32)
    ys = rng.standard_normal((8, 1)).astype(np.float32)

    def train(L, dev):
        m = L.nn.Sequential(L.nn.Linear(5, 4), L.nn.ReLU(), L.nn.Linear(4, 1))
        with L.no_grad():
            for p in m.parameters():
                p.copy_(L.tensor(np.linspace(-0.5, 0.5, p.numel(), dtype=np.float32).reshape(tuple(p.shape))))
        m = m.to(dev)
        o = getattr(L.optim, opt)(m.parameters(), lr=0.1)
        x, y = L.tensor(xs, device=dev), L.tensor(ys, device=dev)
        for _ in range(2):
            o.zero_grad()
            ((m(x) - y) ** 2).mean().backward()
            o.step()
        return list(m.parameters())

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ours = train(tracegrad, "cuda")
    for p, tp in zip(ours, train(torch, "cpu")):
        assert isinstance(p, tracegrad.nn.Parameter)
        same(p.detach(), tp.detach())
    assert not tracegrad.nn.Linear(2, 2).cuda().cpu().weight.is_cuda


def test_lookups_and_their_gradients(cuda):
    """embedding, index_select, gather and max over a dim on CUDA tensors (their index values are read
    on the host, and their backwards build zeros on the gradient's device), against torch on the CPU."""
    rng = np.random.default_rng(3)
    wn = rng.standard_normal((10, 4)).astype(np.float32)
    idx, cols = [1, 3, 3, 9], [[0], [1], [2], [3], [0], [1], [2], [3], [0], [1]]

    def run(L, w, on):
        i, c = L.tensor(idx).to(on), L.tensor(cols).to(on)
        e = L.nn.functional.embedding(i, w)
        s = L.index_select(w, 0, i)
        m = w.max(1)
        g = w.gather(1, c)
        total = e.sum() + (s * 2).sum() + (m.values * 3).sum() + (g * 4).sum() + m.indices.sum()
        total.backward()
        return total

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # (these run on the host for now, and say so)
        w = tracegrad.tensor(wn).cuda().requires_grad_()
        ours = run(tracegrad, w, "cuda")
    wr = torch.tensor(wn, requires_grad=True)
    theirs = run(torch, wr, "cpu")
    assert w.grad.device.type == "cuda"
    np.testing.assert_allclose(ours.item(), theirs.item(), rtol=1e-6)
    np.testing.assert_allclose(w.grad.cpu().numpy(), wr.grad.numpy(), rtol=1e-6)
    with pytest.raises(IndexError, match="index out of range in self"):
        tracegrad.nn.functional.embedding(tracegrad.tensor([10]).cuda(), w)


def test_empty_tensors_stay_on_the_device(cuda):
    for make in (lambda L, **k: L.zeros(0, 5, **k), lambda L, **k: L.ones(2, 0, 3, **k),
                 lambda L, **k: L.empty(0, **k)):
        ours, theirs = make(tracegrad, device="cuda"), make(torch)
        assert ours.is_cuda and tuple(ours.shape) == tuple(theirs.shape)
        assert ours.stride() == theirs.stride()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # (a sum over no elements runs on the host, and says so)
            same((ours + 1).sum(0), (theirs + 1).sum(0))
