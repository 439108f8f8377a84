"""Removal of no-op views and copies.

A view whose output has its input's shape, strides and offset is the input
(`x.view(x.shape)`, `expand` to the same shape, `x[...]`, an identity
permute). A copy (`clone`, `contiguous`, a cast to the same dtype) of a value
is that value, unless the copy escapes: then the caller would get the same
memory twice, or an input's memory back."""
from __future__ import annotations

from ..graph import Graph

_COPIES = ("clone", "contiguous")


def remove_noop_views(graph: Graph) -> Graph:
    escaping = _escaping(graph)
    mapping: dict = {}
    nodes = []
    for n in graph.nodes:
        n2 = n.replace_inputs(mapping) if mapping else n
        ins = list(n2.inputs())
        if len(n2.outputs) == 1 and len(ins) == 1:
            src, out = ins[0], n2.outputs[0]
            if n2.op.kind == "view" and out.shape == src.shape and out.strides == src.strides \
                    and out.offset == 0 and out.dtype is src.dtype:
                mapping[out] = src
                continue
            if _is_copy(n2, src, out) and id(out) not in escaping:
                mapping[out] = src
                continue
        nodes.append(n2)
    if not mapping:
        return graph
    return graph.copy(nodes=nodes, outputs=[mapping.get(v, v) for v in graph.outputs])


def _is_copy(n, src, out) -> bool:
    if out.dtype is not src.dtype or out.shape != src.shape or out.strides != src.strides:
        return False  # a copy that changes the layout matters to the views made of it
    if n.op.name in _COPIES:
        return True
    return n.op.name == "to_copy"


def _escaping(graph: Graph) -> set:
    """ids of values that are outputs, or whose views are."""
    views_of: dict = {}
    for n in graph.nodes:
        if n.op.kind == "view":
            for v in n.inputs():
                for o in n.outputs:
                    views_of.setdefault(id(o), []).append(v)
                break
    out = set()
    stack = [v for v in graph.outputs]
    while stack:
        v = stack.pop()
        if id(v) in out:
            continue
        out.add(id(v))
        stack.extend(views_of.get(id(v), ()))
    return out
