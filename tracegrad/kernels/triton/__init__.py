"""Fused Triton kernels: from a block-level `KernelSpec` to Triton source, run three ways.

    spec.py        KernelSpec = loads, an SSA body of op-table steps, reductions, matmul, stores
    lowering.py    each op's Triton form (read from the op table) and the dtype rules around it
    indexing.py    coalescing dims and the offset arithmetic of strided/broadcast operands
    render.py      spec -> source: the pointwise template and what all templates share
    reduction.py   the row-reduction template (persistent or looped)
    matmul.py      the tl.dot template with a fused epilogue
    launch.py      source -> kernel function -> launch on a grid
    interpret.py   Triton's interpreter on NumPy memory (no GPU needed)
    aot.py         ahead-of-time compile for sm_90: TTIR/TTGIR/LLIR/PTX/cubin, registers, spills
    autotune.py    block-size search with a persistent on-disk cache
    roofline.py    bytes, FLOPs and the time a kernel needs at H100 bandwidth/peak
    backend.py     tracegrad.compile(..., backend="triton"): fusion groups -> specs -> kernels, run
    validate.py    TRACEGRAD_VALIDATE=1: each kernel run checked against NumPy

Rendering needs nothing but tracegrad; Triton itself is imported only by
launch/interpret/aot/autotune, when they run. A spec is usually built from the
tracer's fusion groups with `spec.from_nodes`.
"""
from .spec import KernelSpec, Load, MatMul, Step, Store, pointwise
from .lowering import LoweringError
from .render import KernelSource, render

__all__ = ["KernelSpec", "Load", "MatMul", "Step", "Store", "pointwise", "LoweringError", "KernelSource", "render"]
