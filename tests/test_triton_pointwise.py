"""Pointwise Triton kernels from KernelSpecs, run under Triton's interpreter and compared with torch.

Every pointwise op of the op table gets a kernel (one load -> op -> store chain per
dtype it supports); then dtype promotion, Python scalars, fused chains of several
ops, and strided / broadcast / offset / negative-stride layouts. triton_cases.py
holds the kernels; test_aot_sm90.py compiles the same ones for an H100.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

import triton  # noqa: F401  (the test extra installs it: these tests must fail, not skip, without it)
import triton_cases as C
import tracegrad  # noqa: F401  (registers every op of the table)
from tracegrad import dtypes as D
from tracegrad.kernels.triton import KernelSpec, Load, LoweringError, Step, Store, render
from tracegrad.kernels.triton.interpret import run
from tracegrad.ops.table import OPS

OP_CASES = C.op_cases()
OTHER_CASES = [C.promotion_case(), C.scalar_case()] + C.chain_cases() + C.layout_cases()


@pytest.mark.parametrize("case", OP_CASES, ids=lambda c: c.id)
def test_op_table_op(case, seed):
    C.check(case, seed)


@pytest.mark.parametrize("case", OTHER_CASES, ids=lambda c: c.id)
def test_fused_pointwise(case, seed):
    C.check(case, seed)


def test_every_pointwise_op_is_covered():
    """Each pointwise primitive with a lowering has a kernel above; one without raises LoweringError
    (the caller then falls back to NumPy), it never renders broken source."""
    covered = {st.op for c in OP_CASES for st in c.spec.body}
    missing, silent = [], []
    for name, op in OPS.items():
        if op.kind != "pointwise":
            continue
        if op.lowering is not None:
            if name not in covered:
                missing.append(name)
            continue
        spec = KernelSpec(name, (4,), [Load("x", "float32")], [Step("y", name, ("x",))], [Store("out", "y")])
        try:
            render(spec)
            silent.append(name)
        except LoweringError:
            pass
    assert not missing, f"pointwise ops with a lowering but no interpreter test: {missing}"
    assert not silent, f"ops without a lowering rendered anyway: {silent}"


# ---- what the generated source looks like ------------------------------------------------------------
def _case(cid: str):
    return next(c for c in OP_CASES + OTHER_CASES if c.id == cid)


def test_contiguous_operands_use_the_flat_index():
    text = render(_case("chain-contiguous-f32").spec).text
    assert "tl.load(x_ptr + offs" in text and "tl.load(y_ptr + offs" in text
    assert "%" not in text and "//" not in text  # no coordinate arithmetic at all


def test_broadcast_and_strided_operands_use_coordinates():
    text = render(_case("layout-transposed-y1x20").spec).text
    assert "x1 = offs % 20" in text and "x0 = (offs // 20)" in text
    assert "y_ptr + x1" in text  # the (1, 20) operand moves with the column only
    assert "b_ptr)" in text  # the 0-dim operand is one unmasked scalar load


def test_half_precision_computes_in_float32():
    text = render(_case("chain-half-io").spec).text
    assert "tl.load(h_ptr + offs).to(tl.float32)" in text
    assert ".to(tl.float16)" in text and ".to(tl.bfloat16)" in text


def test_index_math_goes_64_bit_only_when_needed():
    big = KernelSpec("big", (2 ** 31 + 8,), [Load("x", "float32")], [Step("y", "neg", ("x",))], [Store("o", "y")])
    small = KernelSpec("small", (1024,), [Load("x", "float32")], [Step("y", "neg", ("x",))], [Store("o", "y")])
    assert "tl.program_id(0).to(tl.int64)" in render(big).text
    assert "tl.int64" not in render(small).text


def test_dead_loads_and_steps_are_not_emitted():
    spec = KernelSpec("dead", (8,), [Load("x", "float32"), Load("unused", "float32")],
                      [Step("a", "exp", ("x",)), Step("b", "log", ("x",))], [Store("o", "a")])
    src = render(spec)
    assert [p.buffer for p in src.params] == ["x", "o"]
    assert "tl.log" not in src.text


def test_float64_constants_are_not_rounded_through_float32(rng):
    """x * 0.1 in float64 must be torch's product with the double 0.1, bit for bit."""
    x = rng.standard_normal(64)
    out = np.zeros(64)
    spec = KernelSpec("f64_scale", (64,), [Load("x", "float64")], [Step("y", "mul", ("x", 0.1))], [Store("o", "y")])
    run(spec, {"x": x, "o": out})
    assert torch.equal(torch.from_numpy(out), torch.from_numpy(x) * 0.1)


def test_int8_arithmetic_wraps_like_torch():
    x = np.array([100, -100, 127, -128, 5, 0, 64, -64], np.int8)
    out = np.zeros(8, np.int8)
    spec = KernelSpec("i8", (8,), [Load("x", "int8")], [Step("y", "mul", ("x", 3)), Step("z", "add", ("y", 7))],
                      [Store("o", "z")])
    run(spec, {"x": x, "o": out})
    assert torch.equal(torch.from_numpy(out), torch.from_numpy(x) * 3 + 7)


def test_empty_tensor_launches_nothing():
    out = np.full(4, 7.0, np.float32)
    spec = KernelSpec("empty", (0, 3), [Load("x", "float32")], [Step("y", "exp", ("x",))], [Store("o", "y")])
    src = run(spec, {"x": np.zeros(1, np.float32), "o": out})
    assert src.grid[0] == 0 and (out == 7.0).all()


# ---- bad specs fail early, with a message -------------------------------------------------------------------------
@pytest.mark.parametrize("make, phrase", [
    (lambda: KernelSpec("k", (4,), [Load("x", "float32")], [Step("y", "exp", ("z",))], [Store("o", "y")]),
     "before it is defined"),
    (lambda: KernelSpec("k", (4, 3), [Load("x", "float32", (2, 3))], [Step("y", "exp", ("x",))], [Store("o", "y")]),
     "does not broadcast"),
    (lambda: KernelSpec("k", (4,), [Load("x", "float32")], [Step("x", "exp", ("x",))], [Store("o", "x")]),
     "defined twice"),
    (lambda: KernelSpec("k", (4,), [Load("x", "float32")], [Step("y", "sum", ("x",))], [Store("o", "y")]),
     "reduce_ndim=0"),
    (lambda: KernelSpec("k", (4,), [Load("x", "float32")], [Step("y", "no_such_op", ("x",))], [Store("o", "y")]),
     "unknown op"),
    (lambda: KernelSpec("k", (4,), [Load("x", "float32")], [Step("y", "exp", ("x",))], []), "without stores"),
    (lambda: KernelSpec("k", (4,), [Load("x", "float32", (4,), (1, 1))], [], [Store("o", "x")]), "strides"),
])
def test_invalid_specs_raise(make, phrase):
    with pytest.raises(ValueError, match=phrase):
        make()


def test_a_store_that_would_race_is_refused():
    """Storing a (4, 3) result through a broadcast (stride 0) view would write each address 4 times."""
    spec = KernelSpec("race", (4, 3), [Load("x", "float32")], [Step("y", "exp", ("x",))],
                      [Store("o", "y", shape=(4, 3), strides=(0, 1))])
    with pytest.raises(LoweringError, match="stride 0 along dim 0"):
        render(spec)


def test_unknown_dtype_name_raises_type_error():
    with pytest.raises(TypeError, match="unknown dtype"):
        Load("x", "float128")


def test_spec_key_changes_with_what_changes_the_code():
    a = _case("chain-contiguous-f32").spec
    assert a.key() == KernelSpec(a.name, a.shape, a.loads, a.body, a.stores).key()
    b = KernelSpec(a.name, a.shape, [Load("x", "float16"), a.loads[1]], a.body, a.stores)
    assert a.key() != b.key()
    assert D.float32 is a.loads[0].dtype  # dtype names become tracegrad dtypes
