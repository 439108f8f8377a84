"""Where the CUDA tests run: the simulated device by default, a real GPU when asked.

    python -m pytest -n 2                                  simulated: kernels under Triton's interpreter
    TRACEGRAD_TEST_DEVICE=cuda python -m pytest -n 1       the same tests on the machine's GPU

Every test of a CUDA tensor enters `cuda_device()`; the references stay torch on the
CPU either way. With TRACEGRAD_TEST_DEVICE=cuda and no usable GPU the tests fail
(they never fall back to simulation silently); the few tests that check the
simulation itself are marked `simulation_only`.
"""
from __future__ import annotations

import contextlib
import os
from typing import Iterator

import pytest

from tracegrad.kernels.cuda.simulate import simulated

REAL_GPU = os.environ.get("TRACEGRAD_TEST_DEVICE", "") == "cuda"

simulation_only = pytest.mark.skipif(REAL_GPU, reason="checks the simulated device itself")


@pytest.fixture
def cuda(monkeypatch):
    """The device under test, with every host fallback recorded: a test fails if any op fell back.
    (Test files import it: `from cuda_device import cuda`.)"""
    from tracegrad.kernels.cuda import eager

    on_host = []
    fallback = eager._fallback

    def record(op, *args):
        on_host.append(op.name)
        return fallback(op, *args)

    monkeypatch.setattr(eager, "_fallback", record)
    with cuda_device():
        yield
    assert not on_host, f"ran on the host: {sorted(set(on_host))}"


@contextlib.contextmanager
def cuda_device() -> Iterator[None]:
    if not REAL_GPU:
        with simulated():
            yield
        return
    import tracegrad

    if not tracegrad.cuda.is_available():
        raise RuntimeError("TRACEGRAD_TEST_DEVICE=cuda, but no CUDA device is available to the tests")
    yield
