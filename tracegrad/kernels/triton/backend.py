"""`tracegrad.compile(fn, backend="triton")`: every fusion group as a Triton kernel.

`compile_graph(graph, plan)` is the backend interface of tracegrad.tracer.compile.
Each launching group of the fusion plan becomes a KernelSpec (`spec.from_nodes`)
and is rendered to Triton source. A group the Triton codegen cannot express (an op
without a lowering, a reduction over a leading dim, an index op) keeps its NumPy
kernel, with a warning naming the ops; it is never an error.

What runs: this build has no CUDA tensors yet, and CPU tensors run on NumPy
(DESIGN.md: "Triton source on CUDA tensors, a NumPy program on CPU"). So the
program that executes is the NumPy backend's, and each of its kernels that lowers
is paired with its Triton form, a `TritonKernel`:

    k.source              the Triton source (k.numpy_source: what ran on the CPU)
    k.ir("ptx")           TTIR / TTGIR / LLIR / PTX / cubin, compiled for sm_90 here
    k.compiled()          registers, spills, shared memory (aot.Compiled)
    k.roofline()          bytes, FLOPs and the H100 bound
    k.run_interpreted(a)  the Triton kernel on NumPy arrays under Triton's interpreter

so `tracegrad.explain(fn, x, backend="triton")` shows the kernels a GPU would run.
"""
from __future__ import annotations

import warnings
from typing import Mapping

import numpy as np

from .lowering import LoweringError
from .render import KernelSource, render
from .spec import KernelSpec, contiguous_strides, from_nodes

_STAGES = ("ttir", "ttgir", "llir", "ptx", "cubin")


def group_spec(group, name: str) -> KernelSpec:
    """The KernelSpec of one fusion group (raises LoweringError when it has none)."""
    try:
        return from_nodes(name, list(group.nodes), list(group.outputs))
    except ValueError as e:  # the spec's validation: an op kind a kernel body cannot hold, ...
        raise LoweringError(str(e)) from None


class TritonKernel:
    """A kernel of the program with its Triton form (see the module docstring)."""

    def __init__(self, numpy_kernel, spec: KernelSpec, triton: KernelSource):
        self._k = numpy_kernel
        self.spec = spec
        self.triton = triton
        self.name = numpy_kernel.name
        self.kind = numpy_kernel.kind
        self.bytes = numpy_kernel.bytes
        self.flops = numpy_kernel.flops
        self.ops = numpy_kernel.ops
        self.locs = numpy_kernel.locs
        self.group = numpy_kernel.group
        self.source = triton.text
        self.numpy_source = numpy_kernel.source

    def compiled(self):
        from .aot import compile_sm90

        return compile_sm90(self.triton)

    def ir(self, stage: str):
        """One compilation stage for sm_90: 'ttir', 'ttgir', 'llir', 'ptx' (text) or 'cubin' (bytes)."""
        if stage not in _STAGES:
            raise ValueError(f"unknown stage {stage!r}; one of {', '.join(_STAGES)}")
        return getattr(self.compiled(), stage)

    def roofline(self):
        from .roofline import roofline

        return roofline(self.spec)

    def run_interpreted(self, arrays: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run the Triton kernel under the interpreter.

        arrays maps each load (a value name of the graph) to its array, laid out as
        the graph recorded it; returns each output value name -> a new array."""
        from ...dispatch import f32_to_bf16
        from .interpret import run

        buffers = {}
        for ld in self.spec.loads:
            a = np.asarray(arrays[ld.name])
            flat = _storage(a, ld)
            if ld.dtype.name == "bfloat16" and flat.dtype != np.uint16:
                flat = f32_to_bf16(flat.astype(np.float32))
            buffers[ld.name] = flat
        outs = {}
        for st in self.spec.stores:
            n = 1 + st.offset + sum((d - 1) * s for d, s in zip(st.shape, st.strides) if d > 0)
            buffers[st.name] = np.zeros(max(n, 1), dtype=st.dtype.np)
            outs[st.name] = st
        run(self.triton, buffers)
        return {name: np.lib.stride_tricks.as_strided(
            buffers[name][st.offset:], st.shape, tuple(s * st.dtype.itemsize for s in st.strides)).copy()
            for name, st in outs.items()}

    def __repr__(self) -> str:
        return f"<TritonKernel {self.name}: {self.bytes} bytes, {self.flops} flops>"


def _storage(a: np.ndarray, ld) -> np.ndarray:
    """A flat storage holding the values `a` where the load's strides and offset look for them."""
    shape = ld.shape
    strides = ld.strides if ld.strides is not None else contiguous_strides(shape)
    if any(s < 0 for s in strides):
        raise ValueError("run_interpreted takes loads with non-negative strides")
    n = 1 + ld.offset + sum((d - 1) * s for d, s in zip(shape, strides) if d > 0)
    flat = np.zeros(max(n, 1), a.dtype)
    view = np.lib.stride_tricks.as_strided(flat[ld.offset:], shape, tuple(s * a.itemsize for s in strides))
    view[...] = np.broadcast_to(a, shape)
    return flat


def compile_graph(graph, plan, *, debug: int = 0, name: str = "program"):
    """The program for `graph` run as `plan` says, with each kernel's Triton form attached."""
    from .. import numpy_backend

    program = numpy_backend.compile_graph(graph, plan, debug=debug, name=name)
    for i, k in enumerate(program.kernels):
        try:
            spec = group_spec(k.group, k.name)
            program.kernels[i] = TritonKernel(k, spec, render(spec))
        except LoweringError as e:
            warnings.warn(f"tracegrad.compile(backend='triton'): kernel {k.name} ({' '.join(k.ops)}) has no Triton "
                          f"form and runs on NumPy: {e}", stacklevel=2)
    return program


def run_interpreted(graph, plan, kernels, inputs) -> list[np.ndarray]:
    """Run a compiled graph with each of its Triton kernels under Triton's interpreter.

    Groups without a Triton form (and view-only groups) run their nodes on NumPy
    as the NumPy backend would. inputs: one array per graph input (storage dtype:
    bfloat16 as its uint16 bits); returns one array per graph output. This is how
    a whole Triton program is checked on a machine without a GPU."""
    from ...tracer.graph import run_node

    env: dict[int, np.ndarray] = {id(v): np.asarray(a) for v, a in zip(graph.inputs, inputs)}
    for c in graph.constants():
        env[id(c)] = c.data

    def evaluate(node) -> None:
        outs = run_node(node, [env[id(v)] for v in node.inputs()])
        for o, r in zip(node.outputs, outs):
            env[id(o)] = r

    triton_of = {id(k.group): k for k in kernels if isinstance(k, TritonKernel)}
    for grp in plan.groups:
        k = triton_of.get(id(grp))
        if k is None:
            for n in grp.nodes:
                evaluate(n)
            continue
        for n in grp.nodes:
            if n.op.kind == "view":
                evaluate(n)  # the kernel reads views through strides; their values feed run_interpreted
        value_of = {v.name: v for n in grp.nodes for v in n.inputs()}
        outs = k.run_interpreted({ld.name: env[id(value_of[ld.name])] for ld in k.spec.loads})
        for v in grp.outputs:
            env[id(v)] = outs[v.name]
    return [env[id(v)] for v in graph.outputs]
