"""Constant folding: a node whose tensor inputs are all constants is evaluated now.

Constants come from factories called inside the traced function (zeros, ones,
tensor([...])) and from folding itself. A result is kept as a constant only if
it is small or no bigger than its inputs, so folding never materialises a
broadcast (an `expand` of a scalar to a large shape stays a node)."""
from __future__ import annotations

from ..graph import Graph, Value, run_node

MAX_FOLDED = 1 << 16  # elements


def fold_constants(graph: Graph, names=None) -> Graph:
    mapping: dict = {}
    nodes = []
    counter = [0]
    taken = {v.name for v in graph.inputs} | {o.name for n in graph.nodes for o in n.outputs} | \
        {v.name for v in graph.constants()}

    def fresh_name():
        while True:
            name = f"c{counter[0]}"
            counter[0] += 1
            if name not in taken:
                taken.add(name)
                return name

    for n in graph.nodes:
        n2 = n.replace_inputs(mapping) if mapping else n
        ins = list(n2.inputs())
        if ins and all(v.kind == "const" and v.data is not None for v in ins) and _foldable(n2, ins):
            try:
                outs = run_node(n2, [v.data for v in ins])
            except Exception:  # noqa: BLE001 - leave it to run (and raise) at call time
                nodes.append(n2)
                continue
            for o, arr in zip(n2.outputs, outs):
                mapping[o] = Value(fresh_name(), arr.shape, o.dtype, o.strides, kind="const", data=arr)
            continue
        nodes.append(n2)
    if not mapping:
        return graph
    return graph.copy(nodes=nodes, outputs=[mapping.get(v, v) for v in graph.outputs])


def _foldable(n, ins) -> bool:
    biggest = max(v.numel() for v in ins)
    return all(o.numel() <= max(biggest, MAX_FOLDED) for o in n.outputs) and n.op.kind != "random"
