"""The tracer: capture ops into a graph, build the backward graph, fuse, compile.

    tracegrad.trace(fn, *inputs)     -> Graph (prints as a Python program)
    tracegrad.compile(fn | module)   -> a callable that traces once per signature
    tracegrad.explain(fn, *inputs)   -> graphs, fusion groups and kernels, printable

Modules: graph (the IR), symbolic (symbolic tensors, data-dependence errors),
meta (output metadata from the op table), trace (recording, functionalization),
passes/ (dce, cse, constant folding, no-op views, fusion), partition (forward /
backward split by min-cut), compile (cache and runtime), explain, debug.
"""
from __future__ import annotations

from .graph import Graph, Node, Value
from .symbolic import DataDependentError, SymbolicTensor
from .trace import trace
from .compile import compile, CompiledFunction, CompiledModule, CompiledFunctionBackward
from .explain import explain, Explanation
from . import random_ops  # noqa: F401  (registers the random ops)

__all__ = ["trace", "compile", "explain", "Graph", "Node", "Value", "DataDependentError", "SymbolicTensor",
           "CompiledFunction", "CompiledModule", "CompiledFunctionBackward", "Explanation"]
