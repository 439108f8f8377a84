"""The kernels eager CUDA ops launch, compiled ahead of time for an H100 (sm_90) without a GPU.

test_aot_sm90 compiles the kernels the codegen tests write by hand; eager ops
build their own specs (explicit strides and offsets, torch's output layouts,
casts around matmuls, linear's backward), so they are compiled here too. Each
workload runs real eager ops on the simulated device while every launch is
recorded; each distinct kernel must then compile for sm_90, spill nothing, fit
in shared memory, and read dense float32/float16/bfloat16 operands with 128-bit
vector loads.

Shapes are big enough to reach the renderers' full block sizes (XBLOCK 1024, a
4096-wide persistent row, a looped row, 128x128x64 tensor-core tiles), the sizes
where register pressure shows, and small enough for the interpreter.
"""
from __future__ import annotations

import warnings

import numpy as np
import pytest

import triton  # noqa: F401  (the test extra installs it: these tests must fail, not skip, without it)
import tracegrad
from tracegrad import dtypes as D
from tracegrad.kernels.cuda import eager
from cuda_device import cuda_device
from tracegrad.kernels.triton import render
from tracegrad.kernels.triton.aot import compile_sm90
from tracegrad.kernels.triton.spec import contiguous_strides

F = tracegrad.nn.functional
SM90_SHARED = 227 * 1024  # the most shared memory one block may use on sm_90
# elements one 128-bit load moves, for the dtypes whose dense loads must vectorise
VECTOR_WIDTH = {D.float32: 4, D.float16: 8, D.bfloat16: 8}


def dev(rng, *shape, dtype=None, requires_grad=False):
    t = tracegrad.tensor(rng.standard_normal(shape).astype(np.float32), device="cuda")
    if dtype is not None:
        t = t.to(dtype)
    return t.requires_grad_() if requires_grad else t


# ---- workloads: each runs eager ops; the kernels they launch are what gets compiled ----------------
def pointwise_float32(rng):
    x, b = dev(rng, 64, 96), dev(rng, 96)
    (x * 2 + b).relu()  # a broadcast bias row
    x - b.reshape(1, 96).expand(64, 96)
    tracegrad.where(x > 0, x, b).sigmoid().clamp(0.2, 0.7)
    ((x > b) & (x < 1)).float()
    tracegrad.maximum(x, b) * x.exp() / (x.abs() + 1)
    x * tracegrad.tensor(3.0)  # a 0-d CPU tensor joins as a scalar load
    dev(rng, 7, 13).tanh()  # numel not a multiple of the vector width: masked tail


def pointwise_strided(rng):
    x, b = dev(rng, 64, 96), dev(rng, 96)
    x.t().exp() - b.reshape(96, 1)  # a transposed input, and torch's transposed output layout
    x.t() + dev(rng, 96, 64)  # mixed layouts
    x[1:, ::2].tanh() / (x[1:, 1::2].abs() + 1)  # step slices at odd offsets
    x[:, 8:72] * 2  # a column window: rows are dense, the kernel is not
    dev(rng, 4, 16, 24).permute(2, 0, 1) * dev(rng, 24, 1, 1)


def pointwise_half(rng):
    for dt in (tracegrad.float16, tracegrad.bfloat16):
        x, b = dev(rng, 64, 96, dtype=dt), dev(rng, 96, dtype=dt)
        (x * 3 + b).relu()
        x.t().sigmoid()
        x * dev(rng, 64, 96)  # promotes to float32
        F.gelu(x)


def casts_and_copies(rng):
    x = dev(rng, 64, 96)
    for dt in (tracegrad.float16, tracegrad.bfloat16, tracegrad.float64, tracegrad.int32):
        x.to(dt).float()
    x.half().to(tracegrad.bfloat16)
    x.clone()
    x.t().contiguous()
    x[:, ::3].clone()
    y = tracegrad.zeros(64, 96, device="cuda")
    y.copy_(x)
    y[:, 1].zero_()  # writes through a strided view
    y[2:].fill_(7)
    y.copy_(tracegrad.arange(96.0))  # a host row broadcast over the device tensor


def reductions(rng):
    x = dev(rng, 16, 24, 32)
    x.sum(-1)  # the last dim
    x.sum(0)  # a leading dim: permuted last by strides
    x.mean((0, 2), keepdim=True)  # several dims
    x.sum()
    x.amax(-1), x.amin(1), x.prod(2)
    x.transpose(0, 2).sum(0)
    (x > 0).sum(1)  # bool counts in int64
    x.half().sum(-1)
    dev(rng, 8, 4096).sum(-1)  # one whole 4096-wide row per block
    dev(rng, 4, 5000).amax(-1)  # a row too long for one block: the looped kernel


def matmuls(rng):
    a, b = dev(rng, 64, 128), dev(rng, 128, 96)
    a @ b  # float32: FMA tiles
    a.t().t() @ b[:, :48]
    a @ b[:, 0]  # matrix @ vector
    a @ dev(rng, 96, 128).t()  # b read K-contiguous, linear's layout
    dev(rng, 3, 64, 128) @ b  # batched, broadcast
    ah, bh = a.half(), b.half()
    dev(rng, 128, 256, dtype=tracegrad.float16) @ dev(rng, 256, 128, dtype=tracegrad.float16)  # full tensor-core tiles
    dev(rng, 2, 64, 128, dtype=tracegrad.float16) @ dev(rng, 2, 128, 96, dtype=tracegrad.float16)
    ah.t().t() @ bh.t().contiguous().t()
    a.bfloat16() @ b.bfloat16()


def linear_and_addmm(rng):
    x, w, bias = dev(rng, 64, 96), dev(rng, 48, 96), dev(rng, 48)
    F.linear(x, w, bias)  # the bias as the matmul's epilogue
    F.linear(x.half(), w.half(), bias.half())
    tracegrad.addmm(dev(rng, 64, 48), x, w.t(), beta=0.5, alpha=2.0)
    tracegrad.addmm(bias, x, w.t())


def mlp_backward(rng):
    x, t = dev(rng, 64, 96), dev(rng, 64, 10)
    w1, b1 = dev(rng, 128, 96, requires_grad=True), dev(rng, 128, requires_grad=True)
    w2, b2 = dev(rng, 10, 128, requires_grad=True), dev(rng, 10, requires_grad=True)
    for _ in range(2):  # the second backward accumulates into .grad
        h = F.linear(x, w1, b1).relu()
        out = h @ w2.t() + b2
        ((out - t) ** 2).mean().backward()
    assert all(p.grad is not None and p.grad.is_cuda for p in (w1, b1, w2, b2))


def softmax_family(rng):
    for shape in ((64, 96), (8, 4096), (4, 5000)):  # a small row, a whole-block row, a looped row
        x = dev(rng, *shape, requires_grad=True)
        g = dev(rng, *shape)
        (F.softmax(x, -1) * g).sum().backward()
        (F.log_softmax(x, -1) * g).sum().backward()
    F.softmax(dev(rng, 16, 24, 32), 1)  # along a middle dim: permuted last by strides
    xh = dev(rng, 64, 96, dtype=tracegrad.float16, requires_grad=True)
    (F.log_softmax(xh, -1) * dev(rng, 64, 96, dtype=tracegrad.float16)).sum().backward()


def losses(rng):
    x = dev(rng, 64, 1000, requires_grad=True)  # ImageNet-sized class rows
    t = tracegrad.tensor(rng.integers(0, 1000, 64), device="cuda")
    for reduction in ("mean", "sum", "none"):
        F.cross_entropy(x, t, reduction=reduction).sum().backward()
    F.cross_entropy(x.half(), t).backward()  # half precision: log_softmax, then nll_loss
    w = dev(rng, 1000).abs()
    F.nll_loss(F.log_softmax(x, 1), t, w, reduction="mean").backward()
    F.nll_loss(dev(rng, 4, 10, 16, 16), tracegrad.tensor(rng.integers(0, 10, (4, 16, 16)), device="cuda"))
    y = dev(rng, 64, 96, requires_grad=True)
    for reduction in ("mean", "sum", "none"):
        F.mse_loss(y, dev(rng, 64, 96), reduction=reduction).sum().backward()


def layer_norm_and_cat(rng):
    x = dev(rng, 64, 768, requires_grad=True)
    w, b = dev(rng, 768, requires_grad=True), dev(rng, 768, requires_grad=True)
    (F.layer_norm(x, (768,), w, b) * dev(rng, 64, 768)).sum().backward()
    F.layer_norm(dev(rng, 4, 5000), (5000,))  # a looped row
    F.layer_norm(dev(rng, 64, 768, dtype=tracegrad.float16), (768,))
    a, c = dev(rng, 64, 96), dev(rng, 64, 32)
    tracegrad.cat([a, c], 1), tracegrad.cat([a, a.half()], 0), tracegrad.cat([a.t(), c.t()], 0)
    tracegrad.stack([a, a, a], 1)


def multi_step_reductions(rng):
    x = dev(rng, 16, 24, 32, requires_grad=True)
    x.logsumexp(-1).sum().backward()
    x.var((0, 2)).sum().backward()
    x.std(1, keepdim=True)
    x.max(-1), x.min(1), x.argmax(0), x.argmin(), dev(rng, 4, 5000).argmax(-1)  # the last: a looped row
    dev(rng, 64, 96, dtype=tracegrad.float16).logsumexp(-1)


WORKLOADS = [pointwise_float32, pointwise_strided, pointwise_half, casts_and_copies, reductions, matmuls,
             linear_and_addmm, mlp_backward, softmax_family, losses, layer_norm_and_cat, multi_step_reductions]
KINDS = {"reductions": {"reduction"}, "matmuls": {"matmul"}, "linear_and_addmm": {"matmul"},
         "mlp_backward": {"pointwise", "reduction", "matmul"}, "softmax_family": {"reduction"},
         "losses": {"pointwise", "reduction"}, "layer_norm_and_cat": {"pointwise", "reduction"},
         "multi_step_reductions": {"reduction"}}


def launched_kernels(workload, rng) -> list:
    """The distinct kernel sources the workload's eager ops launched, in launch order."""
    specs, on_host = [], []
    launch, fallback = eager._launch, eager._fallback

    def recording(spec, arrays):
        specs.append(spec)
        return launch(spec, arrays)

    def to_host(op, *args):
        on_host.append(op.name)
        return fallback(op, *args)

    with cuda_device(), pytest.MonkeyPatch.context() as mp, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the fallback warning fires once a process; on_host sees every one
        mp.setattr(eager, "_launch", recording)
        mp.setattr(eager, "_fallback", to_host)
        workload(rng)
    # an op run on the host launches nothing, so it would drop out of this check unseen
    assert not on_host, f"ran on the host, not as kernels: {sorted(set(on_host))}"
    kernels = {}
    for spec in specs:
        src = render(spec)
        kernels.setdefault((src.text, tuple(src.signature().items())), src)
    return list(kernels.values())


def dense_loads(spec) -> int:
    """Loads of a pointwise kernel that can move 128 bits per thread: dense over the kernel's
    whole shape (row-major, or in the same dim order as every store: the kernel walks memory
    order), of a vectorisable dtype, starting on a vector boundary, in a kernel of whole vectors."""
    if spec.kind != "pointwise":
        return 0
    row_major = contiguous_strides(spec.shape)
    n = 0
    for ld in spec.loads:
        width = VECTOR_WIDTH.get(ld.dtype)
        if width is None or spec.numel % width or ld.offset % width or ld.index:
            continue
        strides = row_major if ld.strides is None else ld.strides
        if (ld.shape is None or ld.shape == spec.shape) and \
                (strides == row_major or (_dense_permuted(spec.shape, strides) and
                                          all(st.strides == strides for st in spec.stores))):
            n += 1
    return n


def _dense_permuted(shape, strides) -> bool:
    """strides are a row-major layout of some permutation of the dims (a transposed dense tensor)."""
    order = sorted(range(len(shape)), key=lambda d: -strides[d])
    return tuple(strides[d] for d in order) == contiguous_strides([shape[d] for d in order])


@pytest.mark.parametrize("workload", WORKLOADS, ids=lambda w: w.__name__)
def test_eager_kernels_compile_for_sm90_without_spills(workload, rng):
    assert_compiles_for_sm90(workload, rng, KINDS.get(workload.__name__, {"pointwise"}))


def assert_compiles_for_sm90(workload, rng, kinds: set) -> None:
    """Every kernel the workload launches compiles for sm_90 with no spills, fits in shared memory
    and reads dense operands with 128-bit loads; it launched kernels of each kind in `kinds`.
    Other test files import this for their own workloads."""
    kernels = launched_kernels(workload, rng)
    assert kernels, "the workload launched no kernel"
    seen = {k.spec.kind for k in kernels}
    assert kinds <= seen, seen
    problems = []
    for src in kernels:
        try:
            k = compile_sm90(src)
        except Exception as e:  # every kernel is checked; the failures are reported together
            problems.append(f"{src.name}: does not compile: {type(e).__name__}: {str(e)[:400]}\n{src.text}")
            continue
        if k.n_spills or not 0 < k.n_regs <= 255 or k.shared > SM90_SHARED or ".target sm_90a" not in k.ptx \
                or k.cubin[:4] != b"\x7fELF":
            problems.append(k.summary())
        want = dense_loads(src.spec)
        if want and k.vector_loads() < want:
            problems.append(f"{k.summary()}: {want} dense loads should be 128-bit\n" + "\n".join(k.global_loads()))
    assert not problems, "\n\n".join(problems)


def test_dense_loads_are_counted_only_where_a_vector_fits():
    """The vector-load check must not pass vacuously: it sees the dense float32 loads of a
    plain elementwise op and of a transposed one (written transposed, as torch lays it out),
    and none in a sliced read."""
    rng = np.random.default_rng(0)
    wants = {}

    def workload(rng):
        x = dev(rng, 64, 96)
        x * 2, x.t() * 2, x[:, 1:] * 2
        dev(rng, 64, 96, dtype=tracegrad.float16) * 2

    for src in launched_kernels(workload, rng):
        wants[(src.spec.shape, src.spec.loads[0].dtype.name, src.spec.loads[0].strides)] = dense_loads(src.spec)
    assert wants == {((64, 96), "float32", (96, 1)): 1, ((96, 64), "float32", (1, 96)): 1,
                     ((64, 95), "float32", (96, 1)): 0, ((64, 96), "float16", (96, 1)): 1}, wants
