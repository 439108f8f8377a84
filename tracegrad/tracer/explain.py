"""tracegrad.explain: every stage of compiling one call, printable.

    rep = tracegrad.explain(fn, x, w)
    print(rep)                 # graphs, fusion groups, kernels with source, bytes, FLOPs
    rep.kernels                # one entry per kernel the forward launches
    rep.kernels[0].source      # the generated code of that kernel
    rep.kernels[0].ir("ptx")   # Triton kernels only (the NumPy backend says so)
    rep.kernels[0].report()    # Triton kernels: registers, spills, shared memory, roofline

Nothing runs: explain traces and compiles, and reports.
"""
from __future__ import annotations

from typing import Callable

from .compile import _ModuleCall, build_entry
from . import debug


class Explanation:
    """The stages of one compiled call (see the module docstring)."""

    def __init__(self, entry, name: str):
        self.name = name
        self.traced = entry.cap.graph
        self.forward = entry.split.forward
        self.backward = entry.split.backward
        self.forward_plan, self.backward_plan = entry.plans
        self.kernels = list(entry.fwd.kernels)
        self.backward_kernels = list(entry.bwd.kernels) if entry.bwd is not None else []
        self.forward_source = entry.fwd.source
        self.backward_source = entry.bwd.source if entry.bwd is not None else None
        self.saved = list(entry.split.saved)
        self.backend = entry.backend

    def __str__(self) -> str:
        out = [f"=== tracegrad.explain: {self.name} (backend {self.backend}) ==="]
        out.append(f"\n--- forward graph ({len(self.forward.nodes)} nodes, after optimisation) ---")
        out.append(self.forward.python().rstrip())
        if self.backward is not None:
            out.append(f"\n--- backward graph ({len(self.backward.nodes)} nodes; saved from forward: "
                       f"{', '.join(v.name for v in self.saved) or 'nothing'}) ---")
            out.append(self.backward.python().rstrip())
        out.append("\n--- fusion groups: forward ---")
        out.append(str(self.forward_plan))
        if self.backward_plan is not None:
            out.append("\n--- fusion groups: backward ---")
            out.append(str(self.backward_plan))
        for title, ks in (("forward", self.kernels), ("backward", self.backward_kernels)):
            if not ks:
                continue
            out.append(f"\n--- kernels: {title} ({len(ks)}) ---")
            for k in ks:
                out.append(f"# {k.name}  [{k.kind}]  bytes moved: {k.bytes}  FLOPs: {k.flops}  "
                           f"ops: {' '.join(k.ops)}" + (f"  from: {'; '.join(k.locs)}" if k.locs else ""))
                if hasattr(k, "roofline"):  # a Triton kernel: its H100 bound (k.report() adds registers)
                    line = k.roofline()
                    out.append(f"# roofline: {line.bytes} bytes, {line.flops} FLOPs, >= {line.time * 1e9:.2f} ns "
                               f"on {line.device.name} ({line.bound}-bound)")
                out.append(k.source.rstrip())
        return "\n".join(out) + "\n"

    __repr__ = __str__


def explain(fn: Callable, *inputs, backend: str = "numpy", **kwargs) -> Explanation:
    """Trace, optimise, fuse and generate code for `fn(*inputs, **kwargs)`; report every stage."""
    names = None
    target = fn
    if hasattr(fn, "_orig_mod"):  # a CompiledModule
        fn = fn._orig_mod
    if hasattr(fn, "_compiled") is False and hasattr(fn, "fn") and hasattr(fn, "cache"):  # a CompiledFunction
        fn = fn.fn
    if callable(fn) and hasattr(fn, "named_parameters") and hasattr(fn, "forward"):
        names = {id(p): n for n, p in fn.named_parameters()}
        target = _ModuleCall(fn)
    else:
        target = fn
    name = getattr(target, "__name__", type(target).__name__)
    entry = build_entry(target, inputs, kwargs, backend=backend, capture_names=names, debug_level=debug.level(),
                        name=name)
    return Explanation(entry, name)
