"""Choosing block sizes by timing candidates, remembered on disk across runs.

`autotune(spec, bench)` renders the spec with each candidate configuration
(`candidates(spec)`: block sizes, warps, stages), times each with `bench`
(seconds; on a GPU `gpu_bench`, which runs the kernel with Triton's do_bench),
and keeps the fastest. A candidate that fails to compile or launch (too much
shared memory, too many registers) is skipped. The winner is stored in a JSON
file keyed by the kernel (its spec's hash, which covers shapes, dtypes and
strides), the device name and the Triton version, so the search runs once per
machine, not once per process.

The cache file is `$TRACEGRAD_CACHE_DIR/autotune.json` (default
`~/.cache/tracegrad/autotune.json`). Writes go to a temporary file that is then
renamed over the old one, so concurrent processes never see half a file; a file
that cannot be read is treated as empty.
"""
from __future__ import annotations

import json
import math
import os
import tempfile
import threading
from pathlib import Path
from typing import Callable, Mapping

from .render import KernelSource, next_pow2, render
from .spec import KernelSpec

Bench = Callable[[KernelSource], float]


def cache_dir() -> Path:
    return Path(os.environ.get("TRACEGRAD_CACHE_DIR") or Path.home() / ".cache" / "tracegrad")


class AutotuneCache:
    """A JSON file of key -> best configuration, safe to share between processes."""

    def __init__(self, path: "str | Path | None" = None):
        self.path = Path(path) if path is not None else cache_dir() / "autotune.json"
        self._lock = threading.Lock()

    def _read(self) -> dict:
        try:
            with open(self.path) as f:
                data = json.load(f)
            return data if isinstance(data, dict) else {}
        except (OSError, ValueError):
            return {}

    def get(self, key: str) -> dict | None:
        entry = self._read().get(key)
        return entry if isinstance(entry, dict) else None

    def put(self, key: str, entry: Mapping) -> None:
        with self._lock:
            data = self._read()  # merge with what other processes wrote meanwhile
            data[key] = dict(entry)
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".autotune-", suffix=".json")
            try:
                with os.fdopen(fd, "w") as f:
                    json.dump(data, f, indent=1, sort_keys=True)
                os.replace(tmp, self.path)
            except BaseException:
                if os.path.exists(tmp):
                    os.unlink(tmp)
                raise


def candidates(spec: KernelSpec) -> list[dict]:
    """Configurations worth timing for this kind of kernel (sizes past the problem are dropped)."""
    kind = spec.kind
    if kind == "pointwise":
        top = max(128, next_pow2(spec.numel))
        return [{"XBLOCK": b, "num_warps": w} for b, w in ((256, 2), (512, 4), (1024, 4), (2048, 8), (4096, 8))
                if b <= top] or [{"XBLOCK": 128, "num_warps": 1}]
    if kind == "reduction":
        n = math.prod(spec.reduced_shape)
        out = []
        if next_pow2(n) <= 8192:  # persistent: vary the rows per program
            rb = next_pow2(n)
            for rows in (1, 2, 4, 8, 16):
                if rows * rb <= 16384:
                    out.append({"RBLOCK": rb, "ROWS": rows, "num_warps": max(1, min(8, rows * rb // 256))})
        for rb in (512, 1024, 2048):  # looped
            if rb < n:
                out.append({"RBLOCK": rb, "ROWS": 1, "num_warps": max(1, min(8, rb // 128))})
        return out
    dt = spec.load(spec.matmul.a).dtype.name
    if dt in ("float16", "bfloat16") or spec.matmul.allow_tf32:
        tiles = [(128, 128, 64, 8, 3), (128, 64, 64, 4, 4), (64, 128, 64, 4, 4), (128, 256, 64, 8, 3),
                 (64, 64, 32, 4, 4)]
        if dt == "float32":
            tiles = [(m, n, k // 2, w, s) for m, n, k, w, s in tiles]
    else:
        tiles = [(64, 64, 16, 4, 2), (32, 64, 16, 4, 2), (64, 32, 16, 4, 2), (32, 32, 16, 4, 3)]
    return [{"BLOCK_M": m, "BLOCK_N": n, "BLOCK_K": k, "num_warps": w, "num_stages": s} for m, n, k, w, s in tiles]


def cache_key(spec: KernelSpec, device: str) -> str:
    try:
        import triton

        version = triton.__version__
    except ImportError:
        version = "none"
    return f"{spec.key()}|{device}|triton-{version}"


def autotune(spec: KernelSpec, bench: Bench, *, device: str, cache: AutotuneCache | None = None,
             configs: list[dict] | None = None) -> dict:
    """The fastest configuration for `spec` on `device` (from the cache when known).

    Returns {"config": {...}, "seconds": t, "tried": n}. Raises RuntimeError when
    no candidate runs."""
    cache = cache if cache is not None else AutotuneCache()
    key = cache_key(spec, device)
    hit = cache.get(key)
    if hit is not None and "config" in hit:
        return hit
    best, best_t, errors = None, math.inf, []
    tried = 0
    for cfg in (configs if configs is not None else candidates(spec)):
        try:
            t = bench(render(spec.with_options(**cfg)))
        except Exception as e:  # out of shared memory, too many registers...: not a candidate
            errors.append(f"{cfg}: {type(e).__name__}: {e}")
            continue
        tried += 1
        if t < best_t:
            best, best_t = cfg, t
    if best is None:
        raise RuntimeError(f"no configuration of kernel {spec.name} ran:\n" + "\n".join(errors))
    entry = {"config": best, "seconds": best_t, "tried": tried}
    cache.put(key, entry)
    return entry


def gpu_bench(buffers: Mapping) -> Bench:
    """A bench function timing launches on the GPU with Triton's do_bench (needs a GPU)."""
    from triton.testing import do_bench

    from .launch import launch

    def bench(source: KernelSource) -> float:
        return do_bench(lambda: launch(source, buffers), warmup=5, rep=20) / 1e3

    return bench
