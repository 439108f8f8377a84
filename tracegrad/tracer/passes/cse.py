"""Common-subexpression elimination: two nodes making the same call become one.

Every node of a traced graph is a pure function of its arguments (in-place
writes were functionalized while tracing), so the same op on the same values
with the same attrs and dtypes gives the same result."""
from __future__ import annotations

from ..graph import Graph, Value, attr_key


def _arg_key(a):
    if isinstance(a, Value):
        return ("v", id(a))
    if type(a) is list or type(a) is tuple:
        return (type(a).__name__,) + tuple(_arg_key(x) for x in a)
    return attr_key(a)


def node_key(n) -> tuple:
    return (n.op.name, tuple(_arg_key(a) for a in n.args), attr_key(n.attrs), attr_key(n.dtype),
            attr_key(n.compute), n.given)


def cse(graph: Graph) -> Graph:
    seen: dict = {}
    mapping: dict = {}
    nodes = []
    for n in graph.nodes:
        n2 = n.replace_inputs(mapping) if mapping else n
        if n2.op.kind == "random":  # two draws are two different values
            nodes.append(n2)
            continue
        key = node_key(n2)
        prev = seen.get(key)
        if prev is not None:
            for old, new in zip(n2.outputs, prev.outputs):
                mapping[old] = new
            continue
        seen[key] = n2
        nodes.append(n2)
    if not mapping:
        return graph
    return graph.copy(nodes=nodes, outputs=[mapping.get(v, v) for v in graph.outputs])
