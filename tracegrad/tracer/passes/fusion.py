"""Fusion: which nodes of a graph run together as one kernel.

The result is a backend-independent `FusionPlan`; the NumPy backend and the
Triton codegen both read it, and it is what counts kernels.

FusionPlan
    graph    the Graph the plan is for
    groups   list[Group], in an order that respects data dependencies; running the
             groups in this order runs the graph
    kernels  the groups that launch a kernel (every kind but "view")

Group
    id        position in `groups`
    kind      "pointwise"  elementwise ops over one iteration space
              "reduction"  reductions over one domain, with the pointwise ops that
                           feed them (prologue) and consume them (epilogue); several
                           reductions over the same rows (softmax's max and sum,
                           layer norm's mean and variance) share one group, the way a
                           persistent-row kernel computes them
              "matmul"     one matmul (or addmm) and the pointwise ops applied to its
                           result (epilogue: bias, activation)
              "opaque"     one op no template covers (indexing, scans, cat...): a
                           kernel of its own
              "view"       views of values made elsewhere: metadata only, no launch
    nodes     the group's nodes in execution order, views computed inside included
    anchors   the reduction nodes (reduction), the matmul node (matmul), else []
    prologue  nodes before the first anchor; epilogue: nodes after the last one
    inputs    Values the group reads that are made outside it (inputs, constants,
              other groups' outputs)
    outputs   Values made inside that something outside needs (another group,
              a view outside, the graph's outputs); everything else stays inside
    domain    the iteration space: the output shape (pointwise), the reduced input's
              shape (reduction), (batch..., M, N, K) (matmul), the output (opaque)
    reduce_dims  the dims of `domain` a reduction group reduces
    name      kind and shape in one identifier: "red_amax_exp_sum_64x100"

Rules (greedy, producer into consumer, in graph order, while legal):
  - a pointwise producer joins a pointwise consumer of the same size;
  - pointwise producers of a reduction's input size join it (prologue);
  - pointwise consumers of a reduction join it (epilogue) if they run over its
    domain or its reduced shape; a second reduction over the same domain joins too;
  - pointwise consumers of a matmul's result join it (epilogue);
  - a reduction is never duplicated, and no merge may make the group graph cyclic;
  - siblings (two reductions over one domain reading the same value, two pointwise
    groups of one size reading the same value) merge, so the value is read once.
Views are free: a view of a value made inside a group is computed in that group;
other views are "view" groups that launch nothing.
"""
from __future__ import annotations

from ..graph import Graph, Node, Value

_ABBR = {"pointwise": "pw", "reduction": "red", "matmul": "mm", "opaque": "op", "view": "view"}


def category(n: Node) -> str:
    k = n.op.kind
    if k == "view":
        return "view"
    if k == "pointwise":
        return "pointwise"
    if k == "movement" and n.op.lowering == "{0}":  # clone / contiguous: an elementwise copy
        return "pointwise"
    if k == "reduce":
        return "reduction"
    if k == "linalg":
        return "matmul"
    return "opaque"


def _numel(shape) -> int:
    n = 1
    for s in shape:
        n *= s
    return n


def reduction_domain(n: Node):
    """(domain shape, reduced dims) of a reduction node, from its input and attrs."""
    ins = list(n.inputs())
    src = max(ins, key=lambda v: v.numel()) if ins else n.outputs[0]
    shape = src.shape
    nd = len(shape)
    dims = n.attrs.get("dims", n.attrs.get("dim", "all"))
    if dims == "all" or dims is None:
        dims = tuple(range(nd))
    elif isinstance(dims, int):
        dims = (dims % max(nd, 1),) if nd else ()
    else:
        dims = tuple(sorted(d % max(nd, 1) for d in dims))
    return shape, dims


def matmul_domain(n: Node):
    ins = list(n.inputs())
    out = n.outputs[0]
    k = 1
    for v in ins:
        if v.ndim >= 1 and v.numel() and v.shape != out.shape:
            # the contracted size: the last dim of the left operand
            k = v.shape[-1]
            break
    return tuple(out.shape) + (k,)


class Group:
    """One kernel's worth of nodes (see the module docstring)."""

    __slots__ = ("id", "kind", "nodes", "anchors", "inputs", "outputs", "domain", "reduce_dims", "name",
                 "_size", "_red_size")

    def __init__(self, kind: str, nodes: list):
        self.id = -1
        self.kind = kind
        self.nodes = nodes
        self.anchors: list = []
        self.inputs: list = []
        self.outputs: list = []
        self.domain: tuple = ()
        self.reduce_dims: tuple = ()
        self.name = ""
        self._size = 0
        self._red_size = 0

    @property
    def prologue(self) -> list:
        if not self.anchors:
            return []
        first = self.nodes.index(self.anchors[0])
        return self.nodes[:first]

    @property
    def epilogue(self) -> list:
        if not self.anchors:
            return []
        last = self.nodes.index(self.anchors[-1])
        return self.nodes[last + 1:]

    @property
    def launches(self) -> bool:
        return self.kind != "view"

    def compute_nodes(self) -> list:
        return [n for n in self.nodes if n.op.kind != "view"]

    def __repr__(self) -> str:
        return f"<Group {self.id} {self.name}: {len(self.nodes)} nodes>"


class FusionPlan:
    def __init__(self, graph: Graph, groups: list):
        self.graph = graph
        self.groups = groups

    @property
    def kernels(self) -> list:
        return [g for g in self.groups if g.launches]

    def __str__(self) -> str:
        lines = [f"fusion plan for {self.graph.name}: {len(self.kernels)} kernel(s)"]
        for g in self.groups:
            if not g.launches:
                continue
            ops = " ".join(n.op.name for n in g.compute_nodes())
            ins = ", ".join(v.name for v in g.inputs)
            outs = ", ".join(v.name for v in g.outputs)
            lines.append(f"  [{g.id}] {g.name} ({g.kind}): {ops}\n       reads {ins or '-'}; writes {outs or '-'}")
        return "\n".join(lines)

    __repr__ = __str__


# ---- the merging -------------------------------------------------------------------------------
class _G:
    """A group under construction."""

    __slots__ = ("kind", "nodes", "size", "red_size", "domain", "dims", "succ", "pred", "alive")

    def __init__(self, node: Node, kind: str):
        self.kind = kind
        self.nodes = [node]
        self.succ: set = set()
        self.pred: set = set()
        self.alive = True
        if kind == "reduction":
            self.domain, self.dims = reduction_domain(node)
            self.size = _numel(self.domain)
            self.red_size = _numel(node.outputs[0].shape)
        elif kind == "matmul":
            self.domain = matmul_domain(node)
            self.dims = ()
            self.size = _numel(node.outputs[0].shape)
            self.red_size = -1
        else:
            self.domain = tuple(node.outputs[0].shape) if node.outputs else ()
            self.dims = ()
            self.size = _numel(self.domain)
            self.red_size = -1


def _broadcasts_into(small: int, big: int) -> bool:
    """A pointwise value of `small` elements used by ops over `big` elements (a row bias, a scalar)
    is cheap to compute where it is used."""
    return 0 < small <= big and big % small == 0


def _legal_kinds(p: _G, c: _G, consumers_are_anchor: bool) -> bool:
    pk, ck = p.kind, c.kind
    if pk == "pointwise" and ck == "pointwise":
        return _broadcasts_into(p.size, c.size)
    if pk == "pointwise" and ck == "reduction":
        return p.size in (c.size, c.red_size) or _broadcasts_into(p.size, c.size)
    if pk == "reduction" and ck == "pointwise":
        return c.size in (p.size, p.red_size)
    if pk == "reduction" and ck == "reduction":
        return p.domain == c.domain and p.dims == c.dims
    if pk == "matmul" and ck == "pointwise":
        return c.size == p.size
    if pk == "pointwise" and ck == "matmul":
        # a pointwise producer may feed the matmul's epilogue (not the matmul itself)
        return not consumers_are_anchor and _broadcasts_into(p.size, c.size)
    return False


def _reaches(a: _G, b: _G, skip_direct: bool) -> bool:
    """Is there a path a -> ... -> b through at least one other group?"""
    if skip_direct and len(a.succ) == 1:  # a's only successor is b (the common case in a chain)
        return False
    stack = [s for s in a.succ if s is not b] if skip_direct else list(a.succ)
    seen = set()
    while stack:
        g = stack.pop()
        if g is b:
            return True
        if id(g) in seen:
            continue
        seen.add(id(g))
        stack.extend(g.succ)
    return False


def _merge(a: _G, b: _G, owner: dict) -> _G:
    """Merge b into a."""
    kind = a.kind
    for k in ("matmul", "reduction"):
        if b.kind == k or a.kind == k:
            kind = k
            break
    if b.kind == "reduction" and a.kind != "reduction":
        a.domain, a.dims, a.size, a.red_size = b.domain, b.dims, b.size, b.red_size
    elif b.kind == "matmul" and a.kind != "matmul":
        a.domain, a.dims, a.size, a.red_size = b.domain, b.dims, b.size, b.red_size
    elif a.kind == b.kind == "pointwise" and b.size > a.size:  # a broadcast producer joined a bigger consumer
        a.domain, a.size = b.domain, b.size
    a.kind = kind
    a.nodes.extend(b.nodes)
    for n in b.nodes:
        owner[id(n)] = a
    for s in b.succ:
        s.pred.discard(b)
        if s is not a:
            s.pred.add(a)
            a.succ.add(s)
    for p in b.pred:
        p.succ.discard(b)
        if p is not a:
            p.succ.add(a)
            a.pred.add(p)
    a.succ.discard(a)
    a.pred.discard(a)
    a.succ.discard(b)
    a.pred.discard(b)
    b.alive = False
    return a


def fuse(graph: Graph) -> FusionPlan:
    """The fusion plan of `graph` (see the module docstring for the rules)."""
    nodes = graph.nodes
    order = {id(n): i for i, n in enumerate(nodes)}
    prod: dict = {}
    for n in nodes:
        for o in n.outputs:
            prod[id(o)] = n
    view_src: dict = {}  # id(view output) -> the value it views
    for n in nodes:
        if n.op.kind == "view":
            first = next(iter(n.inputs()), None)
            for o in n.outputs:
                view_src[id(o)] = first

    def through_views(v: Value):
        """The non-view node that made the memory v looks at (None: an input or constant)."""
        seen = 0
        while v is not None and id(v) in view_src and seen < 10000:
            v = view_src[id(v)]
            seen += 1
        if v is None:
            return None
        return prod.get(id(v))

    owner: dict = {}
    gs: list = []
    for n in nodes:
        cat = category(n)
        if cat == "view":
            continue
        g = _G(n, cat)
        owner[id(n)] = g
        gs.append(g)
    # edges between groups
    for n in nodes:
        if n.op.kind == "view":
            continue
        c = owner[id(n)]
        for v in n.inputs():
            pn = through_views(v)
            if pn is None:
                continue
            p = owner[id(pn)]
            if p is not c:
                p.succ.add(c)
                c.pred.add(p)

    changed = True
    rounds = 0
    while changed and rounds < 8:
        changed = False
        rounds += 1
        for n in nodes:
            if n.op.kind == "view":
                continue
            c = owner[id(n)]
            for v in list(n.inputs()):
                pn = through_views(v)
                if pn is None:
                    continue
                p = owner[id(pn)]
                c = owner[id(n)]
                if p is c or not p.alive or not c.alive:
                    continue
                anchor_reads = category(n) == "matmul"
                if not _legal_kinds(p, c, anchor_reads):
                    continue
                if p.kind == "matmul" and c.kind == "matmul":
                    continue
                if (p.kind == "reduction" and c.kind == "matmul") or (p.kind == "matmul" and c.kind == "reduction"):
                    continue
                if _reaches(p, c, True):  # (no path c -> p: p -> c is an edge of an acyclic graph)
                    continue
                _merge(p, c, owner)  # (the merged group takes the kind and domain of its anchor)
                changed = True
        # siblings reading the same value
        readers: dict = {}
        for n in nodes:
            if n.op.kind == "view":
                continue
            for v in n.inputs():
                root = v
                while id(root) in view_src and view_src[id(root)] is not None:
                    root = view_src[id(root)]
                readers.setdefault(id(root), []).append(owner[id(n)])
        for groups in readers.values():
            alive = []
            for g in groups:
                g = _find_alive(g, owner)
                if g not in alive:
                    alive.append(g)
            for i in range(len(alive)):
                for j in range(i + 1, len(alive)):
                    a, b = alive[i], alive[j]
                    if not a.alive or not b.alive or a is b:
                        continue
                    same = (a.kind == b.kind == "reduction" and a.domain == b.domain and a.dims == b.dims) or \
                        (a.kind == b.kind == "pointwise" and a.size == b.size)
                    if not same or _reaches(a, b, False) or _reaches(b, a, False):
                        continue
                    _merge(a, b, owner)
                    changed = True

    final = [g for g in gs if g.alive]
    return _build_plan(graph, final, owner, order, prod, view_src)


def _find_alive(g: _G, owner: dict) -> _G:
    if g.alive:
        return g
    return owner[id(g.nodes[0])]


def _build_plan(graph: Graph, final: list, owner: dict, order: dict, prod: dict, view_src: dict) -> FusionPlan:
    nodes = graph.nodes
    # topological order of groups (ties: the earliest first node)
    for g in final:
        g.nodes.sort(key=lambda n: order[id(n)])
    indeg = {id(g): len([p for p in g.pred if p.alive]) for g in final}
    ready = sorted([g for g in final if indeg[id(g)] == 0], key=lambda g: order[id(g.nodes[0])])
    ordered = []
    while ready:
        g = ready.pop(0)
        ordered.append(g)
        for s in sorted(g.succ, key=lambda x: order[id(x.nodes[0])]):
            if not s.alive:
                continue
            indeg[id(s)] -= 1
            if indeg[id(s)] == 0:
                ready.append(s)
                ready.sort(key=lambda x: order[id(x.nodes[0])])
    if len(ordered) != len(final):  # pragma: no cover - merges keep the group graph acyclic
        raise AssertionError("fusion made a cycle")

    # where each view runs: inside the group that made its memory, for readers in that group;
    # at program level ("view" groups, no launch) for anything else that reads it
    group_of: dict = {}
    for g in ordered:
        for n in g.nodes:
            group_of[id(n)] = g
    users: dict = {}
    for n in nodes:
        for v in n.inputs():
            users.setdefault(id(v), []).append(n)
    out_ids = {id(v) for v in graph.outputs}

    def maker_group(v):
        while id(v) in view_src and view_src[id(v)] is not None:
            v = view_src[id(v)]
        pn = prod.get(id(v))
        return group_of.get(id(pn)) if pn is not None else None

    need_out: set = set()
    need_in: dict = {}
    for n in reversed(nodes):
        if n.op.kind != "view":
            continue
        mg = maker_group(n.outputs[0]) if n.outputs else None
        for o in n.outputs:
            if id(o) in out_ids:
                need_out.add(id(n))
            for u in users.get(id(o), ()):
                if u.op.kind == "view":
                    if id(u) in need_out:
                        need_out.add(id(n))
                    if id(u) in need_in:
                        need_in[id(n)] = need_in[id(u)]
                elif mg is not None and group_of.get(id(u)) is mg:
                    need_in[id(n)] = mg
                else:
                    need_out.add(id(n))
    placed: set = set()

    def place(v, acc):
        """Put the outside views that make `v` (sources first) into acc."""
        n = prod.get(id(v))
        if n is None or n.op.kind != "view" or id(n) not in need_out or id(n) in placed:
            return
        for u in n.inputs():
            place(u, acc)
        placed.add(id(n))
        acc.append(n)

    plan_groups: list = []
    for g in ordered:
        members = sorted(g.nodes + [n for n in nodes if need_in.get(id(n)) is g], key=lambda n: order[id(n)])
        pre: list = []
        member_ids = {id(n) for n in members}
        for n in members:
            for v in n.inputs():
                pn = prod.get(id(v))
                if pn is not None and id(pn) in member_ids:
                    continue
                place(v, pre)
        if pre:
            plan_groups.append(Group("view", pre))
        grp = Group(g.kind, members)
        grp.domain = tuple(g.domain)
        grp.reduce_dims = tuple(g.dims)
        grp.anchors = [n for n in members if category(n) == g.kind] if g.kind in ("reduction", "matmul") else []
        plan_groups.append(grp)
    tail: list = []
    for v in graph.outputs:
        place(v, tail)
    if tail:
        plan_groups.append(Group("view", tail))
    _finish(graph, plan_groups)
    return FusionPlan(graph, plan_groups)


def _finish(graph: Graph, groups: list) -> None:
    """Fill in inputs, outputs and names."""
    readers: dict = {}
    for gi, g in enumerate(groups):
        for n in g.nodes:
            for v in n.inputs():
                readers.setdefault(id(v), set()).add(gi)
    out_ids = {id(v) for v in graph.outputs}
    for gi, g in enumerate(groups):
        g.id = gi
        made = {id(o) for n in g.nodes for o in n.outputs}
        seen = set()
        for n in g.nodes:
            for v in n.inputs():
                if id(v) not in made and id(v) not in seen:
                    seen.add(id(v))
                    g.inputs.append(v)
        for n in g.nodes:
            for o in n.outputs:
                if id(o) in out_ids or (readers.get(id(o), set()) - {gi}):
                    g.outputs.append(o)
        if g.kind == "view":
            g.name = "views"
            continue
        if g.kind == "pointwise" or g.kind == "opaque":
            g.domain = tuple(max((o.shape for o in g.outputs or [n.outputs[0] for n in g.nodes]),
                                 key=_numel)) if g.nodes else ()
        ops = []
        for n in (g.anchors + [n for n in g.compute_nodes() if n not in g.anchors]):
            if n.op.name not in ops:
                ops.append(n.op.name)
        shape = "x".join(map(str, g.domain)) if g.domain else "scalar"
        g.name = f"{_ABBR[g.kind]}_{'_'.join(ops[:3])}_{shape}"
