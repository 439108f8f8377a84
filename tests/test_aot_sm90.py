"""Every kernel the Triton tests generate, compiled ahead of time for an H100 (sm_90) without a GPU.

`triton.compile` with GPUTarget("cuda", 90, 32) runs the whole pipeline here
(TTIR, TTGIR, LLVM IR, PTX, cubin); ptxas reports registers and spills. Each
kernel must compile, spill nothing, fit sm_90's shared memory, and contiguous
float32 operands must be read with 128-bit vector loads.
"""
from __future__ import annotations

import pytest

import triton  # noqa: F401  (the test extra installs it: these tests must fail, not skip, without it)
import triton_cases as C
from tracegrad import dtypes as D
from tracegrad.kernels.triton import render
from tracegrad.kernels.triton.aot import compile_sm90

CASES = C.all_cases()
SM90_SHARED = 227 * 1024  # the most shared memory one block may use on sm_90


def _contiguous_f32_loads(spec) -> int:
    """Loads a pointwise kernel can read 4 floats at a time: float32, dense, full shape, aligned start."""
    if spec.kind != "pointwise" or spec.numel % 4:
        return 0
    return sum(1 for ld in spec.loads
               if ld.dtype is D.float32 and ld.strides is None and ld.offset % 4 == 0
               and (ld.shape is None or tuple(ld.shape) == spec.shape))


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_compiles_for_sm90_without_spills(case):
    k = compile_sm90(render(case.spec))
    assert k.n_spills == 0, k.summary()
    assert 0 < k.n_regs <= 255
    assert k.shared <= SM90_SHARED
    assert ".target sm_90a" in k.ptx
    assert "tt.func" in k.ttir and "ttg." in k.ttgir and "define" in k.llir
    assert k.cubin[:4] == b"\x7fELF"
    want = _contiguous_f32_loads(case.spec)
    if want:
        assert k.vector_loads() >= want, f"{k.summary()}\n" + "\n".join(k.global_loads())


def test_every_generated_kernel_is_compiled_here():
    """The interpreter tests draw their kernels from the same list this file compiles."""
    import test_triton_matmul
    import test_triton_pointwise
    import test_triton_reduction
    import test_triton_spec

    ids = {c.id for c in CASES}
    used = {c.id for c in test_triton_pointwise.OP_CASES + test_triton_pointwise.OTHER_CASES
            + test_triton_reduction.CASES + test_triton_matmul.CASES + test_triton_spec.CASES}
    assert used <= ids


def test_a_vector_friendly_kernel_really_vectorises():
    case = next(c for c in CASES if c.id == "chain-contiguous-f32")
    k = compile_sm90(render(case.spec))
    loads = k.global_loads()
    assert loads and all("ld.global.v4.b32" in ln for ln in loads), loads
