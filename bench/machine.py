"""What the numbers were measured on, and the machine's own roofs.

Roofs put a workload's GB/s and GFLOP/s in context: on CUDA the device-to-device
copy bandwidth and the torch.matmul peak per dtype, measured at the start of the
run with `triton.testing.do_bench`; on CPU NumPy's copy bandwidth and its
float32 matmul rate."""
from __future__ import annotations

import datetime
import os
import platform
import statistics
import subprocess
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _git(*args: str) -> str | None:
    try:
        out = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=10)
        return out.stdout.strip() if out.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        return None


def _loadavg() -> list[float] | None:
    """1, 5 and 15 minute load averages: other work on the machine shows here."""
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:
        return None


def describe(device: str) -> dict:
    import torch

    import tracegrad

    info = {
        "date": datetime.date.today().isoformat(),
        "time": datetime.datetime.now().isoformat(timespec="seconds"),
        "device": device,
        "cpu": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "thread_env": {v: os.environ[v] for v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                                                   "MKL_NUM_THREADS") if v in os.environ},
        "platform": platform.platform(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "torch": torch.__version__,
        "tracegrad": getattr(tracegrad, "__version__", "?"),
        "commit": _git("rev-parse", "--short", "HEAD"),
        "dirty": bool(_git("status", "--porcelain", "--untracked-files=no")),
        "loadavg_at_start": _loadavg(),
    }
    if device == "cuda":
        info["gpu"] = torch.cuda.get_device_name()
        try:
            import triton

            info["triton"] = triton.__version__
        except ImportError:
            pass
    return info


def device_label(device: str) -> str:
    """The `<device>` part of the results folder name."""
    if device == "cuda":
        import torch

        slug = "".join(c if c.isalnum() else "-" for c in torch.cuda.get_device_name().lower())
        return "cuda-" + "-".join(p for p in slug.split("-") if p and p != "nvidia")
    return device


def _median_time(fn, repeats: int = 5) -> float:
    fn()
    ts = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts)


def cpu_roofs(quick: bool) -> dict:
    """NumPy's copy bandwidth (64 MiB) and float32 matmul rate (n=1024)."""
    src = np.ones(16 << 20, dtype=np.float32)
    dst = np.empty_like(src)
    t = _median_time(lambda: np.copyto(dst, src))
    n = 512 if quick else 1024
    a = np.ones((n, n), dtype=np.float32)
    tm = _median_time(lambda: a @ a)
    return {"copy_GBps": 2 * src.nbytes / t / 1e9, "numpy_matmul_GFLOPs": 2 * n ** 3 / tm / 1e9,
            "matmul_n": n}


def cuda_roofs(quick: bool) -> dict:
    """Device-to-device copy bandwidth and torch.matmul's peak per dtype."""
    import torch
    from triton.testing import do_bench

    out: dict = {}
    n = (1 << 26) if quick else (1 << 28)  # float32 elements: 256 MiB or 1 GiB
    x = torch.empty(n, dtype=torch.float32, device="cuda")
    y = torch.empty_like(x)
    ms = do_bench(lambda: y.copy_(x), return_mode="median")
    out["copy_GBps"] = 2 * x.numel() * 4 / (ms * 1e-3) / 1e9
    del x, y
    m = 4096 if quick else 8192
    for name in ("float32", "float16", "bfloat16"):
        dt = getattr(torch, name)
        a = torch.randn(m, m, device="cuda", dtype=dt)
        b = torch.randn(m, m, device="cuda", dtype=dt)
        ms = do_bench(lambda: a @ b, return_mode="median")
        out[f"matmul_{name}_TFLOPs"] = 2 * m ** 3 / (ms * 1e-3) / 1e12
    out["matmul_n"] = m
    out["float32_matmul_precision"] = torch.get_float32_matmul_precision()
    torch.cuda.empty_cache()
    return out
