"""`tracegrad.compile(fn, backend="triton")`: every fusion group as a Triton kernel.

`compile_graph(graph, plan)` is the backend interface of tracegrad.tracer.compile.
Each launching group of the fusion plan becomes a KernelSpec (`spec.from_nodes`)
and is rendered to Triton source. A group the Triton codegen cannot express (an op
without a lowering, a reduction over a leading dim, an index op) keeps its NumPy
kernel, with a warning naming the ops; it is never an error.

What runs: this build has no CUDA tensors yet, so on CPU tensors the program
(`TritonProgram`) runs each Triton kernel under Triton's interpreter on NumPy
memory (slow: for learning and tests); groups without a Triton form, and the
view-only steps between kernels, run the op table's NumPy code. Each kernel is a
`TritonKernel`:

    k.source              the Triton source (k.numpy_source: the NumPy backend's form)
    k.ir("ptx")           TTIR / TTGIR / LLIR / PTX / cubin, compiled for sm_90 here
    k.compiled()          registers, spills, shared memory (aot.Compiled)
    k.roofline()          bytes, FLOPs and the H100 bound; k.report() sums it all up
    k.run_interpreted(a)  the Triton kernel on NumPy arrays under Triton's interpreter
    k.runs                how often the program ran it

TRACEGRAD_VALIDATE=1 re-runs every kernel on NumPy and raises
validate.KernelMismatchError at the first disagreement (validate.py).
so `tracegrad.explain(fn, x, backend="triton")` shows the kernels a GPU would run.
"""
from __future__ import annotations

import time
from types import SimpleNamespace
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
        return from_nodes(name, _inline_register_broadcasts(list(group.nodes), group.outputs), list(group.outputs))
    except ValueError as e:  # the spec's validation: an op kind a kernel body cannot hold, ...
        raise LoweringError(str(e)) from None


def _broadcasts(src_shape, shape) -> bool:
    """Whether expanding src_shape to shape only repeats size-1 (or new leading) dims."""
    if len(shape) < len(src_shape):
        return False
    return all(a == b or a == 1 for a, b in zip(src_shape[::-1], shape[::-1]))


def _inline_register_broadcasts(nodes: list, outputs) -> list:
    """Rewrite a group's nodes into what the spec takes, without changing what they compute.

    Views of memory are dropped (the spec reads them through their strides
    anyway, and a matmul must then still open the kernel); addmm becomes matmul +
    bias add (`_split_addmm`); and `expand` nodes of values the group computes
    itself are dropped, their users reading the source instead:

    A kernel evaluates every value at each index of its block, broadcasting
    smaller operands as NumPy does (a row reduction's [ROWS, 1] result meets
    [ROWS, RBLOCK] values), so an explicit expand of a register value, as the
    backward of sum/mean writes it, is the broadcast the kernel does anyway.
    (The spec refuses views of register values: they have no memory to view.)
    Expands that are stored, or of values read from memory, stay as they are."""
    from ...tracer.graph import Value

    stored = {id(v) for v in outputs}
    produced: set[int] = set()
    alias: dict[int, Value] = {}
    out = []
    for n in nodes:
        if alias and any(isinstance(a, Value) and id(a) in alias for a in n.args):
            n = SimpleNamespace(op=n.op, attrs=n.attrs, dtype=n.dtype, compute=n.compute, outputs=n.outputs,
                                args=tuple(alias.get(id(a), a) if isinstance(a, Value) else a for a in n.args))
        if n.op.kind == "view" and len(n.outputs) == 1:
            src = next((a for a in n.args if isinstance(a, Value)), None)
            if src is not None and id(src) not in produced:
                continue  # a view of memory emits nothing: its users load it through its strides
        if n.op.name == "addmm" and not out:
            split = _split_addmm(n)
            if split is not None:
                out.extend(split)
                produced.update(id(o) for m in split for o in m.outputs)
                continue
        if n.op.name == "expand" and len(n.outputs) == 1 and id(n.outputs[0]) not in stored:
            src = next((a for a in n.args if isinstance(a, Value)), None)
            o = n.outputs[0]
            if src is not None and id(src) in produced and _broadcasts(tuple(src.shape), tuple(o.shape)):
                alias[id(o)] = src
                continue
        produced.update(id(o) for o in n.outputs)
        out.append(n)
    return out


def _split_addmm(n):
    """addmm(bias, a, b) (what Linear runs) as a matmul opening the kernel and a bias-add epilogue.

    Only for beta = alpha = 1 and float dtypes; otherwise None (the spec then refuses it)."""
    from ...ops.table import OPS
    from ... import dtypes as D

    bias, a, b = n.args[:3]
    o = n.outputs[0]
    if n.attrs.get("beta", 1) != 1 or n.attrs.get("alpha", 1) != 1 or o.dtype.category != D._FLOAT:
        return None
    mm = SimpleNamespace(name=o.name + "_mm", shape=tuple(o.shape), dtype=o.dtype,
                         strides=contiguous_strides(tuple(o.shape)), offset=0)
    return [SimpleNamespace(op=OPS["matmul"], args=(a, b), attrs={}, dtype=n.dtype, compute=n.compute, outputs=[mm]),
            SimpleNamespace(op=OPS["add"], args=(mm, bias), attrs={}, dtype=n.dtype, compute=n.compute,
                            outputs=n.outputs)]


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
        self.runs = 0  # how often it ran under the interpreter
        self.failed: str | None = None  # why the interpreter could not run it (it then runs on NumPy)

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

    def report(self, device=None) -> str:
        """Resources and roofline in a few lines: registers, spills, shared memory (compiled for
        sm_90 here, no GPU needed), bytes, FLOPs and the least time at the device's bandwidth/peak."""
        from .roofline import H100_SXM, roofline

        c = self.compiled()
        line = roofline(self.spec, device or H100_SXM)
        return (f"{self.name}: sm_{c.capability}, {c.n_regs} registers/thread, {c.n_spills} bytes spilled, "
                f"{c.shared} bytes shared memory, {c.num_warps} warps\n"
                f"  roofline on {line.device.name}: {line.bytes} bytes, {line.flops} FLOPs, "
                f">= {line.time * 1e9:.2f} ns ({line.bound}-bound: memory {line.t_memory * 1e9:.2f} ns at "
                f"{line.device.bandwidth / 1e12:.2f} TB/s, math {line.t_compute * 1e9:.2f} ns at "
                f"{line.device.peak[line.unit] / 1e12:.1f} TFLOP/s {line.unit})")

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
        self.runs += 1
        # each output keeps the strides the graph gave it (a transposed input gives a transposed result,
        # as eagerly), not a row-major copy
        from ..numpy_backend import _layout

        return {name: _layout(np.lib.stride_tricks.as_strided(
            buffers[name][st.offset:], st.shape, tuple(s * st.dtype.itemsize for s in st.strides)).copy(),
            tuple(st.strides)) for name, st in outs.items()}

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


def compile_graph(graph, plan, *, debug: int = 0, name: str = "program") -> "TritonProgram":
    """The program for `graph` run as `plan` says: each group that lowers as its Triton kernel."""
    from .. import numpy_backend

    program = numpy_backend.compile_graph(graph, plan, debug=debug, name=name)
    kernels = list(program.kernels)
    for i, k in enumerate(kernels):
        try:
            spec = group_spec(k.group, k.name)
            missing = [v.name for v in k.group.outputs if all(st.name != v.name for st in spec.stores)]
            if missing:
                raise LoweringError(f"outputs {missing} are not stored by the kernel")
            kernels[i] = TritonKernel(k, spec, render(spec))
        except LoweringError as e:
            _fallback_warning(k, str(e))
    return TritonProgram(graph, plan, kernels, program, debug=debug, name=name)


def _fallback_warning(k, why: str) -> None:
    warnings.warn(f"tracegrad.compile(backend='triton'): kernel {k.name} ({' '.join(k.ops)}) has no Triton "
                  f"form and runs on NumPy: {why}", stacklevel=3)


class TritonProgram:
    """A compiled graph whose kernels are Triton kernels: `program(*arrays) -> tuple of arrays`.

    On CPU tensors (all this build has) each Triton kernel runs under Triton's
    interpreter on NumPy memory; a group without a Triton form, and the view-only
    groups between kernels, run their nodes with the op table's NumPy code. This
    is slow (the interpreter executes a kernel one program instance at a time)
    and exists to learn from and to test the generated kernels end to end.

        program.kernels       TritonKernel (or, for a fallback, the NumPy Kernel) per launch
        program.source        the host program: which kernel runs when, on which values
        program.numpy         the NumPy backend's program for the same graph (a reference)

    With TRACEGRAD_VALIDATE=1 every kernel run is checked against NumPy (validate.py)."""

    def __init__(self, graph, plan, kernels: list, numpy_program, *, debug: int = 0, name: str = "program"):
        self.graph = graph
        self.plan = plan
        self.kernels = kernels
        self.numpy = numpy_program
        self.debug = debug
        self.name = name
        self._by_group = {id(k.group): k for k in kernels}
        self.source = self._host_source()

    def __call__(self, *arrays) -> tuple:
        return tuple(self.run(arrays))

    def run(self, inputs) -> list:
        from . import validate
        from ...tracer.graph import run_node

        check = validate.enabled()
        g = self.graph
        env: dict[int, np.ndarray] = {id(v): np.asarray(a) for v, a in zip(g.inputs, inputs)}
        for c in g.constants():
            env[id(c)] = c.data

        def evaluate(node) -> None:
            outs = run_node(node, [env[id(v)] for v in node.inputs()])
            for o, r in zip(node.outputs, outs):
                env[id(o)] = r

        with np.errstate(all="ignore"):
            for grp in self.plan.groups:
                k = self._by_group.get(id(grp)) if grp.launches else None
                if not isinstance(k, TritonKernel) or k.failed is not None:
                    t0 = time.perf_counter()
                    for n in grp.nodes:
                        evaluate(n)
                    if k is not None:
                        self._log(k, time.perf_counter() - t0)
                    continue
                for n in grp.nodes:
                    # the kernel reads views of memory through strides; their values feed its loads
                    # (a view of a register value was inlined as a broadcast: it has no array here)
                    if n.op.kind == "view" and all(id(v) in env for v in n.inputs()):
                        evaluate(n)
                value_of = {v.name: v for n in grp.nodes for v in n.inputs()}
                args = {ld.name: env[id(value_of[ld.name])] for ld in k.spec.loads}
                t0 = time.perf_counter()
                try:
                    outs = k.run_interpreted(args)
                except Exception as e:  # an interpreter gap: this kernel runs on NumPy from now on
                    k.failed = f"{type(e).__name__}: {e}"
                    _fallback_warning(k, f"the interpreter failed ({k.failed})")
                    for n in grp.nodes:
                        evaluate(n)
                    continue
                self._log(k, time.perf_counter() - t0)
                if check:
                    for n in grp.nodes:
                        evaluate(n)
                    for v in grp.outputs:
                        validate.check(k.name, v.name, v.dtype, outs[v.name], env[id(v)], args)
                for v in grp.outputs:
                    env[id(v)] = outs[v.name]
        results = []
        owned = {id(v) for v in g.inputs} | {id(c) for c in g.constants()}
        for v in g.outputs:
            a = env[id(v)]
            # a returned input or constant must not alias memory the caller or the next call sees
            results.append(np.array(a, copy=True) if id(v) in owned else a)
        return results

    def _log(self, k, seconds: float) -> None:
        if self.debug:
            from ..numpy_backend import _Logger

            _Logger(self.kernels)(self.kernels.index(k), seconds)

    def _host_source(self) -> str:
        """A readable listing of the program: every kernel's source, then the order they run in."""
        parts = []
        for k in self.kernels:
            parts.append(k.source.rstrip() + "\n")
        params = ", ".join(v.name for v in self.graph.inputs)
        lines = [f"# host program {self.name}({params}): Triton kernels run under the interpreter on CPU tensors"]
        for grp in self.plan.groups:
            k = self._by_group.get(id(grp)) if grp.launches else None
            outs = ", ".join(v.name for v in grp.outputs) or "_"
            ins = ", ".join(v.name for v in grp.inputs)
            if isinstance(k, TritonKernel):
                lines.append(f"{outs} = {k.spec.name}[{k.triton.grid}]({ins})  # Triton")
            elif k is not None:
                lines.append(f"{outs} = {k.name}({ins})  # NumPy (no Triton form)")
            else:
                ops = " ".join(n.op.name for n in grp.nodes)
                lines.append(f"{outs} = views({ins})  # {ops}")
        lines.append(f"return {', '.join(v.name for v in self.graph.outputs)}")
        return "\n".join(parts) + "\n".join(lines) + "\n"

    def __repr__(self) -> str:
        n = sum(isinstance(k, TritonKernel) for k in self.kernels)
        return f"<TritonProgram {self.name}: {n} Triton kernel(s) of {len(self.kernels)}>"


def run_interpreted(graph, plan, kernels, inputs) -> list[np.ndarray]:
    """Run a compiled graph with each of its Triton kernels under Triton's interpreter.

    Groups without a Triton form (and view-only groups) run their nodes on NumPy
    as the NumPy backend would. inputs: one array per graph input (storage dtype:
    bfloat16 as its uint16 bits); returns one array per graph output. This is how
    a whole Triton program is checked on a machine without a GPU."""
    return TritonProgram(graph, plan, list(kernels), None).run(inputs)
