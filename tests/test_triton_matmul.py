"""The tl.dot matmul template under Triton's interpreter, against torch.

float32 (exact, or TF32 when allowed), float16/bfloat16 accumulating in float32,
float64; transposed operands read through strides; batch dims broadcast on either
side; fused epilogues (bias + relu, gelu + residual, scaling) and ragged edges.
"""
from __future__ import annotations

import pytest

import triton  # noqa: F401  (the test extra installs it: these tests must fail, not skip, without it)
import triton_cases as C
from tracegrad.kernels.triton import KernelSpec, Load, LoweringError, MatMul, Store, render

CASES = C.matmul_cases()


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_matmul(case, seed):
    C.check(case, seed)


def _src(cid):
    return render(next(c for c in CASES if c.id == cid).spec).text


def test_precision_follows_torch_defaults():
    """float32 is exact unless TF32 is allowed (torch.backends.cuda.matmul.allow_tf32 is False by default)."""
    assert 'input_precision="ieee"' in _src("matmul-linear-relu-float32")
    assert 'input_precision="tf32"' in _src("matmul-tf32")
    half = _src("matmul-linear-relu-float16")
    assert "input_precision" not in half.split("def tg_")[1]
    assert "tl.full([BLOCK_M, BLOCK_N], 0.0, tl.float32)" in half  # float32 accumulator


def test_epilogue_is_fused_after_the_k_loop():
    text = _src("matmul-linear-relu-float32")
    loop_end = text.index("b_ptrs += ")
    assert text.index("bias_ptr + rn") > loop_end and text.index("tl.maximum(t, 0") > loop_end
    assert "bias = tl.load(bias_ptr + rn, mask=nmask)" in text  # the bias moves with columns only


def test_ragged_k_is_masked_and_even_k_is_not():
    assert "mask=rk[None, :] < 24 - k" in _src("matmul-linear-relu-float32")
    even = KernelSpec("even", (32, 32), [Load("a", "float16", (32, 64)), Load("b", "float16", (64, 32))], [],
                      [Store("o", "acc")], matmul=MatMul("acc", "a", "b"))
    assert "a_tile = tl.load(a_ptrs)\n" in render(even).text


def test_integer_matmul_is_left_to_numpy():
    spec = KernelSpec("imm", (4, 4), [Load("a", "int64", (4, 4)), Load("b", "int64", (4, 4))], [],
                      [Store("o", "acc")], matmul=MatMul("acc", "a", "b"))
    with pytest.raises(LoweringError, match="int64"):
        render(spec)


def test_matmul_shape_errors():
    with pytest.raises(ValueError, match="disagree on K"):
        KernelSpec("bad", (4, 4), [Load("a", "float32", (4, 3)), Load("b", "float32", (5, 4))], [],
                   [Store("o", "acc")], matmul=MatMul("acc", "a", "b"))
    with pytest.raises(ValueError, match="different dtypes"):
        KernelSpec("bad", (4, 4), [Load("a", "float32", (4, 3)), Load("b", "float16", (3, 4))], [],
                   [Store("o", "acc")], matmul=MatMul("acc", "a", "b"))
