"""The roofline helper: bytes, FLOPs and the H100 bound of a kernel spec."""
from __future__ import annotations

import math

import pytest

import triton_cases as C
from tracegrad.kernels.triton import KernelSpec, Load, MatMul, Step, Store
from tracegrad.kernels.triton.roofline import H100_PCIE, H100_SXM, achieved, roofline


def test_pointwise_is_memory_bound_and_counts_each_byte_once():
    n = 1024 * 1024
    spec = KernelSpec("add", (1024, 1024), [Load("x", "float32"), Load("y", "float32"), Load("b", "float32", (1024,))],
                      [Step("t", "add", ("x", "y")), Step("u", "add", ("t", "b"))], [Store("o", "u")])
    r = roofline(spec)
    assert r.bytes == 3 * n * 4 + 1024 * 4  # x, y, the output; the broadcast bias once
    assert r.flops == 2 * n
    assert r.bound == "memory"
    assert math.isclose(r.time, r.bytes / 3.35e12)
    assert math.isclose(roofline(spec, H100_PCIE).time, r.bytes / 2.0e12)


def test_half_precision_moves_half_the_bytes():
    f32 = KernelSpec("e", (4096,), [Load("x", "float32")], [Step("y", "exp", ("x",))], [Store("o", "y")])
    f16 = KernelSpec("e", (4096,), [Load("x", "float16")], [Step("y", "exp", ("x",))], [Store("o", "y")])
    assert roofline(f16).bytes * 2 == roofline(f32).bytes


def test_big_half_matmul_is_compute_bound_on_tensor_cores():
    n = 4096
    spec = KernelSpec("mm", (n, n), [Load("a", "float16", (n, n)), Load("b", "float16", (n, n))], [],
                      [Store("o", "acc")], matmul=MatMul("acc", "a", "b"))
    r = roofline(spec)
    assert r.flops == 2 * n ** 3 and r.unit == "fp16_tc"
    assert r.bound == "compute"
    assert math.isclose(r.t_compute, 2 * n ** 3 / H100_SXM.peak["fp16_tc"])
    assert r.intensity > 1000


@pytest.mark.parametrize("tf32, unit", [(False, "fp32"), (True, "tf32_tc")])
def test_float32_matmul_peak_depends_on_tf32(tf32, unit):
    spec = KernelSpec("mm", (64, 64), [Load("a", "float32", (64, 32)), Load("b", "float32", (32, 64))], [],
                      [Store("o", "acc")], matmul=MatMul("acc", "a", "b", allow_tf32=tf32))
    assert roofline(spec).unit == unit


def test_reductions_count_row_outputs():
    case = next(c for c in C.reduction_cases() if c.id == "softmax-float32-persistent")
    r = roofline(case.spec)
    numel = math.prod(case.spec.shape)
    assert r.bytes == 2 * numel * 4  # read x, write the softmax
    assert r.flops == 5 * numel  # max, sub, exp, sum, div: one per element each


def test_achieved_compares_a_measurement_with_the_bound():
    spec = KernelSpec("e", (1 << 20,), [Load("x", "float32")], [Step("y", "exp", ("x",))], [Store("o", "y")])
    r = roofline(spec)
    got = achieved(r, 2 * r.time)
    assert math.isclose(got["of_roofline"], 0.5)
    assert math.isclose(got["GB/s"], r.bytes / (2 * r.time) / 1e9)
    assert "memory-bound" in str(r)
