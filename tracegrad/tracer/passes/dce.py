"""Dead-code elimination: keep a node only if some output (transitively) needs it, or it draws
random numbers (the generator's state is part of what a call does)."""
from __future__ import annotations

from ..graph import Graph


def dce(graph: Graph) -> Graph:
    live = {id(v) for v in graph.outputs}
    keep = []
    for n in reversed(graph.nodes):
        # a random draw moves the generator even when its numbers go unused: eager mode draws them too
        if n.op.kind == "random" or any(id(o) in live for o in n.outputs):
            keep.append(n)
            for v in n.inputs():
                live.add(id(v))
    keep.reverse()
    if len(keep) == len(graph.nodes):
        return graph
    return graph.copy(nodes=keep)
