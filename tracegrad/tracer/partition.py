"""Splitting the joint forward+backward graph into a forward and a backward.

The joint graph computes everything: outputs, effects, and gradients from the
tangents (the incoming output gradients). Nodes that depend on a tangent can
only run in the backward; the others could run in either. What crosses from
forward to backward is the set of *saved* values, and choosing it is a min-cut
problem (the approach of functorch's min-cut partitioner):

    every forward value v is an edge  v_in -> v_out  whose capacity is what saving
    v costs (its bytes; inputs a little less, since the caller holds them anyway);
    an op joins its inputs' v_out to its outputs' v_in with infinite capacity;
    the source feeds the inputs and every value that must not be recomputed
    (anything that is not a pointwise op or a view: matmuls, reductions,
    indexing); every value a backward node reads drains to the sink.

A minimum cut separates what the forward computes from what the backward
recomputes: the cut edges are the values to save. Cheap pointwise values are
recomputed from smaller ones rather than saved: `relu`'s mask is saved as one
byte per element instead of the float output, `exp(x)` is recomputed from `x`.
"""
from __future__ import annotations

from collections import deque

from .graph import Graph, Value
from . import passes

INF = float("inf")
_CHEAP = ("pointwise", "view")


def recomputable(node) -> bool:
    k = node.op.kind
    return k in _CHEAP or (k == "movement" and node.op.lowering == "{0}")


class Split:
    """forward: primals -> user outputs, effects, saved values.
    backward: saved values, tangents -> gradients (None when nothing needs gradients)."""

    def __init__(self, forward: Graph, backward: Graph | None, saved: list):
        self.forward = forward
        self.backward = backward
        self.saved = saved


def split_joint(cap, *, optimize: bool = True):
    """(forward Graph, backward Graph or None) for a Capture; see `partition` for the Split."""
    s = partition(cap, optimize=optimize)
    return s.forward, s.backward


def partition(cap, *, optimize: bool = True) -> Split:
    J = passes.optimize(cap.graph) if optimize else cap.graph
    n_fwd = cap.n_user + cap.n_effect_values
    fwd_outs = J.outputs[:n_fwd]
    grads = J.outputs[n_fwd:]
    primals = J.inputs[:cap.n_primals]
    tangents = J.inputs[cap.n_primals:]
    fnames = (J.output_names or [])[:n_fwd]
    if not grads:
        F = passes.dce(J.copy(inputs=primals, outputs=fwd_outs))
        F.output_names = fnames
        return Split(F, None, [])

    dep = {id(t) for t in tangents}
    bw_nodes, fw_nodes = [], []
    for n in J.nodes:
        if any(id(v) in dep for v in n.inputs()):
            bw_nodes.append(n)
            dep.update(id(o) for o in n.outputs)
        else:
            fw_nodes.append(n)
    saved = _min_cut(primals, fw_nodes, bw_nodes, grads, dep, fwd_outs)
    F = passes.dce(J.copy(inputs=primals, nodes=fw_nodes, outputs=fwd_outs + saved))
    F.output_names = fnames + [f"saved_{v.name}" for v in saved]
    B = _backward_graph(J, saved, tangents, grads)
    B.name = "backward"
    B.output_names = (J.output_names or [])[n_fwd:]
    return Split(F, B, saved)


def _backward_graph(J: Graph, saved, tangents, grads) -> Graph:
    avail = {id(v) for v in saved} | {id(t) for t in tangents}
    prod = J.producers()
    need: set = set()
    keep: set = set()
    stack = list(grads)
    while stack:
        v = stack.pop()
        if id(v) in need or id(v) in avail or v.kind == "const":
            continue
        need.add(id(v))
        n = prod.get(v)
        if n is None:
            raise AssertionError(f"the backward needs {v.name}, which the forward does not save")
        if id(n) not in keep:
            keep.add(id(n))
            stack.extend(n.inputs())
    nodes = [n for n in J.nodes if id(n) in keep]
    return Graph("backward", list(saved) + list(tangents), nodes, list(grads))


def _cost(v: Value, held: bool) -> float:
    """What saving v costs: its bytes, a little less for inputs and outputs (the caller holds those)."""
    c = float(max(v.nbytes, 1))
    return c * 0.9 if held else c


def _min_cut(primals, fw_nodes, bw_nodes, grads, dep, fwd_outs=()) -> list:
    """The forward values the backward should receive."""
    ids: dict = {}  # id(value) -> index of its "in" vertex (out vertex is index + 1)
    values: list = []

    def vid(v):
        k = ids.get(id(v))
        if k is None:
            k = ids[id(v)] = 2 + 2 * len(values)
            values.append(v)
        return k

    edges: list = []
    S, T = 0, 1
    primal_ids = {id(p) for p in primals} | {id(v) for v in fwd_outs}
    for p in primals:
        k = vid(p)
        edges.append((S, k, INF))
    held = primal_ids
    for n in fw_nodes:
        ins = [v for v in n.inputs() if v.kind != "const"]
        for o in n.outputs:
            k = vid(o)
            if not recomputable(n):
                edges.append((S, k, INF))
            for u in ins:
                edges.append((vid(u) + 1, k, INF))
    needed = set()
    for n in bw_nodes:
        for u in n.inputs():
            if id(u) not in dep and u.kind != "const":
                needed.add(id(u))
                edges.append((vid(u) + 1, T, INF))
    for g in grads:
        if id(g) not in dep and g.kind != "const":
            edges.append((vid(g) + 1, T, INF))
    for v in values:
        k = ids[id(v)]
        edges.append((k, k + 1, _cost(v, id(v) in held)))
    side = _source_side(2 + 2 * len(values), edges, S, T)
    return [v for v in values if side[ids[id(v)]] and not side[ids[id(v)] + 1]]


def _source_side(nv: int, edge_list, s: int, t: int) -> list:
    """Max flow (Dinic), then the vertices reachable from s in the residual graph."""
    to, cap, head, nxt = [], [], [-1] * nv, []

    def add(u, v, c):
        to.append(v); cap.append(c); nxt.append(head[u]); head[u] = len(to) - 1  # noqa: E702
        to.append(u); cap.append(0.0); nxt.append(head[v]); head[v] = len(to) - 1  # noqa: E702

    for u, v, c in edge_list:
        add(u, v, c)
    while True:
        level = [-1] * nv
        level[s] = 0
        q = deque([s])
        while q:
            u = q.popleft()
            e = head[u]
            while e != -1:
                if cap[e] > 1e-9 and level[to[e]] < 0:
                    level[to[e]] = level[u] + 1
                    q.append(to[e])
                e = nxt[e]
        if level[t] < 0:
            break
        it = list(head)
        while True:
            f = _augment(s, t, INF, level, it, to, cap, nxt)
            if f <= 1e-9:
                break
            if f == INF:  # an infinite path: every value the backward reads is forced; save them all
                break
        if f == INF:
            break
    seen = [False] * nv
    seen[s] = True
    q = deque([s])
    while q:
        u = q.popleft()
        e = head[u]
        while e != -1:
            if cap[e] > 1e-9 and not seen[to[e]]:
                seen[to[e]] = True
                q.append(to[e])
            e = nxt[e]
    return seen


def _augment(s, t, limit, level, it, to, cap, nxt) -> float:
    """One augmenting path in the level graph (iterative DFS)."""
    stack = [(s, limit)]
    path = []  # edge indices
    while stack:
        u, f = stack[-1]
        if u == t:
            pushed = f
            for e in path:
                cap[e] -= pushed
                cap[e ^ 1] += pushed
            return pushed
        e = it[u]
        advanced = False
        while e != -1:
            v = to[e]
            if cap[e] > 1e-9 and level[v] == level[u] + 1:
                stack.append((v, min(f, cap[e])))
                path.append(e)
                advanced = True
                break
            e = nxt[e]
            it[u] = e
        if not advanced:
            it[u] = -1
            stack.pop()
            if path:
                dead = path.pop()
                it[to[dead ^ 1]] = nxt[dead]
    return 0.0
