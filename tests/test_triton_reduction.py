"""Row-reduction Triton kernels (persistent and looped) under Triton's interpreter, against torch.

sum/max/min/mean/prod over the last axes in every float dtype and int32; a
prologue and an epilogue fused around a reduction; softmax, log-softmax and layer
norm as single kernels; NaN propagation; column reductions read through strides.
"""
from __future__ import annotations

import pytest

import triton  # noqa: F401  (the test extra installs it: these tests must fail, not skip, without it)
import triton_cases as C
from tracegrad.kernels.triton import KernelSpec, Load, Step, Store, render

CASES = C.reduction_cases()


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_reduction(case, seed):
    C.check(case, seed)


def _src(cid):
    return render(next(c for c in CASES if c.id == cid).spec).text


def test_softmax_is_one_kernel_with_two_reductions():
    text = _src("softmax-float32-persistent")
    assert text.count("@triton.jit\ndef tg_") == 1
    assert "_tg_reduce_max(" in text and "_tg_reduce_add(" in text
    assert "for roff" not in text  # the whole row sits in one block


def test_looped_kernels_make_one_pass_per_reduction_level():
    # sum, max, min and mean read only x: one pass over the row computes all four
    assert _src("reduce-rows-float32-looped").count("for roff") == 1
    # softmax: max, then sum(exp(x - max)), then the output
    assert _src("softmax-float32-looped").count("for roff") == 3
    # layer norm: mean, then variance around it, then the normalised output
    assert _src("layer-norm-float32-looped").count("for roff") == 3


def test_mean_is_a_sum_scaled_by_one_over_n():
    spec = KernelSpec("mean", (3, 8), [Load("x", "float32")], [Step("m", "mean", ("x",))],
                      [Store("o", "m", shape=(3,))], reduce_ndim=1)
    assert "m = m * 0.125" in render(spec).text


def test_max_min_propagate_nan_in_their_combine():
    text = _src("reduce-nan-looped")
    assert "propagate_nan=tl.PropagateNan.ALL" in text


def test_padding_uses_the_identity():
    """Lanes past the row's end hold the combine's identity: -inf for max, 0 for sum."""
    text = _src("softmax-float32-persistent")
    assert 'tl.full([], float("-inf"), tl.float32)' in text
    assert "tl.where(cmask, e, 0.0)" in text
