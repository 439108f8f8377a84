"""Test configuration shared by every test file.

- hypothesis runs few examples and no deadline (CI has 2 cores and must stay fast);
  `HYPOTHESIS_PROFILE=thorough` runs many more locally.
- every test starts from torch's and tracegrad's defaults (float32 default dtype, grad mode on),
  so one test changing them cannot break another.
- `rng` gives each test its own seeded NumPy generator; the seed is in the test id's output on failure.
"""
from __future__ import annotations

import os
import sys

# One BLAS/OpenMP thread per test process, set before NumPy or torch load their
# thread pools: under `pytest -n 2` on two cores, each worker's two-thread pool
# fights the other worker for the cores (a small float32 matmul ran 20x slower).
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

sys.path.insert(0, os.path.dirname(__file__))  # `from util import ...` in test files

try:
    from hypothesis import HealthCheck, settings

    settings.register_profile("ci", max_examples=60, deadline=None, derandomize=True,
                              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    settings.register_profile("thorough", max_examples=500, deadline=None,
                              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
except ImportError:  # hypothesis-based tests skip themselves
    pass


@pytest.fixture(autouse=True)
def _defaults():
    """Reset the state tests may change: default dtype and grad mode, in both libraries."""
    yield
    import tracegrad

    tracegrad.set_default_dtype(tracegrad.float32)
    tracegrad.set_grad_enabled(True)
    try:
        import torch

        torch.set_default_dtype(torch.float32)
        torch.set_grad_enabled(True)
    except ImportError:
        pass


SEED = 20240531


@pytest.fixture
def seed(request) -> int:
    """A per-test seed derived from the test id, so each case gets different but reproducible data."""
    import zlib

    return (SEED + zlib.crc32(request.node.nodeid.encode())) % (2 ** 32)


@pytest.fixture
def rng(seed) -> np.random.Generator:
    return np.random.default_rng(seed)
