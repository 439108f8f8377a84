"""The built-in workloads: eager overhead, pointwise chains, row softmax, layer
norm, cross-entropy and matmul (square, tall-skinny, with a bias+ReLU epilogue),
for CPU and for CUDA.

Every computation is written once against the torch API (`fn(lib, ...)` with
`lib` = tracegrad or torch) plus a NumPy version for the NumPy baseline. The
NumPy versions are what a NumPy user would write: one array op per line, each
allocating its result."""
from __future__ import annotations

import numpy as np

from .workload import Target, Workload

# ---------------------------------------------------------------------------
# Computations
# ---------------------------------------------------------------------------


def _functional(lib):
    """`lib.nn.functional` when the library has one (tracegrad grows it)."""
    nn = getattr(lib, "nn", None)
    return getattr(nn, "functional", None) if nn is not None else None


def _has(lib, name: str) -> bool:
    F = _functional(lib)
    return F is not None and hasattr(F, name)


def softmax(lib, x):
    F = _functional(lib)
    if F is not None and hasattr(F, "softmax"):
        return F.softmax(x, dim=-1)
    # the decomposition torch's own softmax computes (max-subtracted, so exp cannot overflow)
    e = (x - x.amax(dim=-1, keepdim=True)).exp()
    return e / e.sum(dim=-1, keepdim=True)


def softmax_np(x):
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


EPS = 1e-5


def layer_norm(lib, x, w, b):
    F = _functional(lib)
    if F is not None and hasattr(F, "layer_norm"):
        return F.layer_norm(x, (x.shape[-1],), w, b, EPS)
    mean = x.mean(dim=-1, keepdim=True)
    xc = x - mean
    var = (xc * xc).mean(dim=-1, keepdim=True)
    return xc / (var + EPS).sqrt() * w + b


def layer_norm_np(x, w, b):
    mean = x.mean(axis=-1, keepdims=True)
    xc = x - mean
    var = (xc * xc).mean(axis=-1, keepdims=True)
    return xc / np.sqrt(var + np.float32(EPS)) * w + b


def cross_entropy(lib, logits, target):
    return _functional(lib).cross_entropy(logits, target)


def cross_entropy_np(logits, target):
    m = logits.max(axis=-1, keepdims=True)
    lse = np.log(np.exp(logits - m).sum(axis=-1)) + m[:, 0]
    return (lse - logits[np.arange(len(target)), target]).mean()


def matmul(lib, a, b):
    return a @ b


def matmul_bias_relu(lib, a, b, bias):
    """A matmul with the epilogue a linear layer and its activation add: one kernel when fused."""
    return (a @ b + bias).relu()


def matmul_bias_relu_np(a, b, bias):
    return np.maximum(a @ b + bias, 0)


# A pointwise chain cycles through four cheap ops that keep values bounded.
def _chain_step(lib, x, i: int):
    k = i % 4
    if k == 0:
        return x * 0.9
    if k == 1:
        return x + 0.1
    if k == 2:
        return x.relu()
    return x - 0.05


def _chain_step_np(x, i: int):
    k = i % 4
    if k == 0:
        return x * 0.9
    if k == 1:
        return x + 0.1
    if k == 2:
        return np.maximum(x, 0)
    return x - 0.05


def make_chain(n_ops: int):
    # Written out for each length (no loop over a closure variable) so that a
    # compiler traces straight-line code, and each chain is its own function.
    src = "def chain{n}(lib, x):\n" + "".join(
        f"    x = _chain_step(lib, x, {i})\n" for i in range(n_ops)) + "    return x\n"
    src_np = "def chain{n}_np(x):\n" + "".join(
        f"    x = _chain_step_np(x, {i})\n" for i in range(n_ops)) + "    return x\n"
    ns = {"_chain_step": _chain_step, "_chain_step_np": _chain_step_np, "np": np}
    exec(src.format(n=n_ops), ns)
    exec(src_np.format(n=n_ops), ns)
    return ns[f"chain{n_ops}"], ns[f"chain{n_ops}_np"]


# ---------------------------------------------------------------------------
# Inputs, labels, byte and flop counts
# ---------------------------------------------------------------------------


def _f32(rng, shape):
    return rng.standard_normal(shape).astype(np.float32)


def _vec(n, rng):
    return (_f32(rng, (n,)),)


def _rows(shape, rng):
    return (_f32(rng, shape),)


def _rows_wb(shape, rng):
    return (_f32(rng, shape), _f32(rng, shape[-1:]), _f32(rng, shape[-1:]))


def _square_pair(n, rng):
    return (_f32(rng, (n, n)), _f32(rng, (n, n)))


def _mkn(size) -> tuple[int, int, int]:
    """A matmul size: n for an n x n x n square, or (M, K, N) for (M, K) @ (K, N)."""
    return (size, size, size) if isinstance(size, int) else tuple(size)


def _mm_pair(size, rng):
    m, k, n = _mkn(size)
    # scaled by 1/sqrt(K) so that half-precision results stay well inside their range
    return (_f32(rng, (m, k)), (_f32(rng, (k, n)) / np.sqrt(k)).astype(np.float32))


def _mm_bias(size, rng):
    return _mm_pair(size, rng) + (_f32(rng, (_mkn(size)[2],)),)


def _mm_label(size) -> str:
    return "x".join(str(d) for d in _mkn(size))


def _logits(shape, rng):
    n, v = shape
    return (_f32(rng, shape), rng.integers(0, v, n).astype(np.int64))


def _numel_label(n: int) -> str:
    for div, suffix in ((1_000_000, "M"), (1_000, "k")):
        if n >= div and n % div == 0:
            return f"{n // div}{suffix}"
    return str(n)


def _shape_label(s) -> str:
    return "x".join(str(d) for d in s) if isinstance(s, tuple) else str(s)


def _io_bytes(size, arrays, out) -> float:
    """Compulsory traffic: read every input once, write the output once."""
    outs = out if isinstance(out, tuple) else (out,)
    return float(sum(np.asarray(a).nbytes for a in arrays) + sum(np.asarray(o).nbytes for o in outs))


def _mm_flops(size) -> float:
    m, k, n = _mkn(size)
    return 2.0 * m * k * n


# ---------------------------------------------------------------------------
# Eager overhead on tiny tensors
# ---------------------------------------------------------------------------


def _overhead(device: str, quick: bool) -> list[Workload]:
    shape = (3, 3)
    one = lambda s, rng: (_f32(rng, s),)  # noqa: E731
    two = lambda s, rng: (_f32(rng, s), _f32(rng, s))  # noqa: E731
    specs = [
        ("add", two, lambda lib, x, y: x + y, lambda x, y: x + y),
        ("mul", two, lambda lib, x, y: x * y, lambda x, y: x * y),
        ("sum", one, lambda lib, x: x.sum(), lambda x: x.sum()),
        ("index", one, lambda lib, x: x[1:, :2], lambda x: x[1:, :2]),
        ("matmul", two, lambda lib, x, y: x @ y, lambda x, y: x @ y),
    ]
    out = []
    for name, make, fn, fn_np in specs:
        out.append(Workload(
            name=f"overhead_{name}", group="eager overhead", sizes=[shape], quick_sizes=[shape],
            make_inputs=make, fn=fn, numpy_fn=fn_np if device == "cpu" else None,
            devices=(device,), label=_shape_label, rotate=True,
            targets=(Target(shape, "torch", 1.0),) if device == "cpu" else (),
            note=f"one `{name}` on a 3x3 float32 tensor: the per-op cost of the Python path",
        ))
    return out


# ---------------------------------------------------------------------------
# CPU workloads
# ---------------------------------------------------------------------------


def cpu_workloads(quick: bool) -> list[Workload]:
    import tracegrad

    ws = _overhead("cpu", quick)
    for n_ops in (1, 4, 8, 16):
        fn, fn_np = make_chain(n_ops)
        targets = (Target(10_000_000, "numpy", 1.1),
                   Target(10_000_000, "numpy", 1.1, system="tracegrad.compile")) if n_ops == 4 else ()
        ws.append(Workload(
            name=f"chain{n_ops}", group="pointwise chain",
            sizes=[1_000, 100_000, 1_000_000, 10_000_000],
            # --quick keeps 10M (slow to time) only where the target is
            quick_sizes=[1_000, 100_000, 10_000_000] if targets else [1_000, 1_000_000],
            make_inputs=_vec, fn=fn, numpy_fn=fn_np, label=_numel_label, bytes=_io_bytes,
            targets=targets,
            note=f"{n_ops} pointwise op(s) (*0.9, +0.1, relu, -0.05, ...) on float32; "
                 "GB/s counts one read and one write",
        ))
    sm_impl = "F.softmax" if _has(tracegrad, "softmax") else "amax/sub/exp/sum/div (no F.softmax yet)"
    ln_impl = "F.layer_norm" if _has(tracegrad, "layer_norm") else "mean/sub/mul/mean/sqrt/div (no F.layer_norm yet)"
    ws.append(Workload(
        name="softmax", group="row-wise", sizes=[(64, 128), (1024, 1024), (4096, 4096)],
        quick_sizes=[(64, 128), (1024, 1024)], make_inputs=_rows, fn=softmax, numpy_fn=softmax_np,
        label=_shape_label, bytes=_io_bytes, note=f"softmax over the last dim; tracegrad runs {sm_impl}",
    ))
    ws.append(Workload(
        name="layer_norm", group="row-wise", sizes=[(64, 128), (1024, 1024), (4096, 4096)],
        quick_sizes=[(64, 128), (1024, 1024)], make_inputs=_rows_wb, fn=layer_norm,
        numpy_fn=layer_norm_np, label=_shape_label, bytes=_io_bytes,
        note=f"layer norm over the last dim with weight and bias; tracegrad runs {ln_impl}",
    ))
    ws.append(Workload(
        name="matmul", group="matmul", sizes=[64, 256, 512, 1024], quick_sizes=[64, 512],
        make_inputs=_square_pair, fn=lambda lib, a, b: a @ b, numpy_fn=lambda a, b: a @ b,
        label=lambda n: f"{n}x{n}x{n}", x=lambda n: n, flops=_mm_flops, bytes=_io_bytes,
        note="square float32 matmul (NumPy's BLAS and torch's use every core)",
    ))
    ws.append(Workload(
        name="matmul_bias_relu", group="matmul", sizes=[256, 1024], quick_sizes=[256],
        make_inputs=_mm_bias, fn=matmul_bias_relu, numpy_fn=matmul_bias_relu_np,
        label=_mm_label, x=lambda n: n, flops=_mm_flops, bytes=_io_bytes,
        note="relu(a @ b + bias), float32: a linear layer's matmul with its epilogue",
    ))
    ws.append(Workload(
        name="cross_entropy", group="row-wise", sizes=[(64, 32768), (256, 32768), (256, 131072)],
        quick_sizes=[(64, 32768)], make_inputs=_logits, fn=cross_entropy, numpy_fn=cross_entropy_np,
        label=_shape_label, bytes=_io_bytes, x=lambda s: s[1],
        note="mean cross-entropy of (rows, vocabulary) float32 logits against class targets",
    ))
    return ws


# ---------------------------------------------------------------------------
# CUDA workloads
# ---------------------------------------------------------------------------


def cuda_workloads(quick: bool) -> list[Workload]:
    ws = _overhead("cuda", quick)
    for n_ops in (1, 4, 8, 16):
        fn, _ = make_chain(n_ops)
        ws.append(Workload(
            name=f"chain{n_ops}", group="pointwise chain", devices=("cuda",),
            sizes=[1 << 20, 1 << 22, 1 << 24, 1 << 26, 1 << 28], quick_sizes=[1 << 20, 1 << 26],
            make_inputs=_vec, fn=fn, label=_numel_label, bytes=_io_bytes,
            note=f"{n_ops} pointwise op(s) on float32; GB/s counts one read and one write "
                 "(compare with the copy bandwidth measured at start)",
        ))
    rows = [(4096, 1024), (4096, 4096), (4096, 16384), (4096, 32768)]
    ws.append(Workload(
        name="softmax", group="row-wise", devices=("cuda",), sizes=rows, quick_sizes=rows[::3],
        make_inputs=_rows, fn=softmax, label=_shape_label, bytes=_io_bytes,
        note="softmax over the last dim, float32",
    ))
    ws.append(Workload(
        name="layer_norm", group="row-wise", devices=("cuda",), sizes=rows, quick_sizes=rows[::3],
        make_inputs=_rows_wb, fn=layer_norm, label=_shape_label, bytes=_io_bytes,
        note="layer norm over the last dim with weight and bias, float32",
    ))
    ws.append(Workload(
        name="cross_entropy", group="row-wise", devices=("cuda",),
        sizes=[(4096, 32768), (4096, 65536), (4096, 131072)], quick_sizes=[(4096, 32768)],
        make_inputs=_logits, fn=cross_entropy, label=_shape_label, bytes=_io_bytes, x=lambda s: s[1],
        note="mean cross-entropy of 4096 rows of float32 logits over a 32k..128k vocabulary",
    ))
    tall = [(32768, 4096, 128), (65536, 1024, 256), (8192, 128, 8192)]
    for dt in ("float32", "float16", "bfloat16"):
        ws.append(Workload(
            name=f"matmul_{dt}", group="matmul", devices=("cuda",), dtype=dt,
            sizes=[1024, 2048, 4096, 8192], quick_sizes=[1024, 4096],
            make_inputs=_mm_pair, fn=matmul, label=_mm_label, x=lambda n: n, flops=_mm_flops,
            note=f"square {dt} matmul (compare with the torch.matmul peak measured at start)",
        ))
        ws.append(Workload(
            name=f"matmul_tall_{dt}", group="matmul", devices=("cuda",), dtype=dt,
            sizes=tall, quick_sizes=tall[:1], make_inputs=_mm_pair, fn=matmul, label=_mm_label,
            x=lambda s: _mkn(s)[0], flops=_mm_flops,
            note=f"{dt} (M, K) @ (K, N) with one dim far smaller than the others",
        ))
        ws.append(Workload(
            name=f"matmul_bias_relu_{dt}", group="matmul", devices=("cuda",), dtype=dt,
            sizes=[1024, 4096, 8192], quick_sizes=[4096], make_inputs=_mm_bias, fn=matmul_bias_relu,
            label=_mm_label, x=lambda n: n, flops=_mm_flops,
            note=f"relu(a @ b + bias), {dt}: the epilogue fused into the matmul when compiled",
        ))
    return ws


def builtin_workloads(device: str, quick: bool) -> list[Workload]:
    return cpu_workloads(quick) if device == "cpu" else cuda_workloads(quick)
