"""A roofline for one kernel: the bytes it must move, the FLOPs it must do, and the
least time an H100 needs for them.

    time >= max(bytes / memory bandwidth, flops / peak throughput)

Bytes count each load's distinct elements once (a broadcast bias is read once,
the cache serves the repeats) and each store's elements once; a matmul's
operands are counted once each, the ideal that tiling approaches. FLOPs count one
per element per pointwise step (a transcendental counts as one: it is a handful
of instructions, but pointwise kernels are bandwidth-bound long before that
matters), one per input element per reduction step, and 2*M*N*K per matmul.

Device numbers are NVIDIA's H100 datasheet ("NVIDIA H100 Tensor Core GPU",
datasheet, 2023): HBM3 bandwidth 3.35 TB/s (SXM5) and 2.0 TB/s (PCIe); tensor-core
rates are the dense ones, half of the figures it quotes "with sparsity". Integer
math is bounded by the FP32 rate (an upper bound: sm_90 has half as many INT32
lanes). Use `achieved()` to compare a measured time with the bound.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Mapping

from ... import dtypes as D
from .spec import KernelSpec, infer_dtypes


@dataclass(frozen=True)
class Device:
    """Peak numbers of one GPU: HBM bandwidth (bytes/s) and throughput per kind of math (FLOP/s)."""

    name: str
    bandwidth: float
    peak: Mapping[str, float] = field(default_factory=dict)
    source: str = ""


_DATASHEET = "NVIDIA H100 Tensor Core GPU datasheet (2023); tensor-core rates are the dense ones"
H100_SXM = Device(
    "NVIDIA H100 SXM5 80GB", 3.35e12,
    {"fp64": 34e12, "fp64_tc": 67e12, "fp32": 67e12, "tf32_tc": 494.5e12, "fp16_tc": 989.5e12,
     "bf16_tc": 989.5e12},
    _DATASHEET)
H100_PCIE = Device(
    "NVIDIA H100 PCIe 80GB", 2.0e12,
    {"fp64": 26e12, "fp64_tc": 51e12, "fp32": 51e12, "tf32_tc": 378e12, "fp16_tc": 756.5e12,
     "bf16_tc": 756.5e12},
    _DATASHEET)


@dataclass(frozen=True)
class Roofline:
    kernel: str
    bytes: int
    flops: int
    unit: str          # which peak bounds the math: fp32, fp16_tc, ...
    t_memory: float    # seconds to move `bytes` at full bandwidth
    t_compute: float   # seconds to do `flops` at full throughput
    device: Device

    @property
    def time(self) -> float:
        """The least time the kernel can take on the device."""
        return max(self.t_memory, self.t_compute)

    @property
    def bound(self) -> str:
        return "memory" if self.t_memory >= self.t_compute else "compute"

    @property
    def intensity(self) -> float:
        """FLOPs per byte moved."""
        return self.flops / self.bytes if self.bytes else math.inf

    def __str__(self) -> str:
        return (f"{self.kernel}: {self.bytes / 1e6:.3f} MB, {self.flops / 1e9:.3f} GFLOP ({self.unit}), "
                f"{self.intensity:.2f} FLOP/B, >= {self.time * 1e6:.2f} us on {self.device.name} ({self.bound}-bound)")


def _numel(shape) -> int:
    return math.prod(shape)


def roofline(spec: KernelSpec, device: Device = H100_SXM) -> Roofline:
    """Bytes, FLOPs and the bound for `spec` on `device`."""
    dtypes = infer_dtypes(spec)
    moved = 0
    for ld in spec.loads:
        moved += _numel(ld.shape if ld.shape is not None else spec.shape) * ld.dtype.itemsize
    for st in spec.stores:
        dt = st.dtype or dtypes[st.value]
        if st.shape is not None:
            n = _numel(st.shape)
        elif _is_reduced(spec, st.value):
            n = _numel(spec.rows_shape)
        else:
            n = spec.numel
        moved += n * dt.itemsize
    flops = 0
    for step in spec.body:
        if step.is_reduction:
            flops += spec.numel
        elif _is_reduced(spec, step.out):
            flops += _numel(spec.rows_shape)
        else:
            flops += spec.numel
    unit = "fp64" if any(dt is D.float64 for dt in dtypes.values()) else "fp32"
    if spec.matmul is not None:
        a = spec.load(spec.matmul.a)
        k = a.shape[-1]
        flops += 2 * spec.numel * k
        unit = {D.float16: "fp16_tc", D.bfloat16: "bf16_tc", D.float64: "fp64_tc"}.get(
            a.dtype, "tf32_tc" if spec.matmul.allow_tf32 else "fp32")
    t_mem = moved / device.bandwidth
    t_cmp = flops / device.peak[unit]
    return Roofline(spec.name, moved, flops, unit, t_mem, t_cmp, device)


def _is_reduced(spec: KernelSpec, value: str) -> bool:
    """Whether a value is per-row (computed from reductions only) in a reduction kernel."""
    if spec.kind != "reduction":
        return False
    steps = {s.out: s for s in spec.body}
    loads = {ld.name: ld for ld in spec.loads}

    def full(v: str) -> bool:
        if v in loads:
            ld = loads[v]
            shape = ld.shape if ld.shape is not None else spec.shape
            pad = len(spec.shape) - len(shape)
            tail = (1,) * pad + tuple(shape)
            return any(n != 1 for n in tail[len(spec.shape) - spec.reduce_ndim:])
        s = steps[v]
        return (not s.is_reduction) and any(full(a) for a in s.args if isinstance(a, str))

    return not full(value)


def achieved(line: Roofline, seconds: float) -> dict[str, float]:
    """What a measured run reached: GB/s, GFLOP/s, and the fraction of the roofline bound."""
    return {"GB/s": line.bytes / seconds / 1e9, "GFLOP/s": line.flops / seconds / 1e9,
            "of_roofline": line.time / seconds}
