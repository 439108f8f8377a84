"""The graph IR: an SSA program of op-table nodes.

    Value   one tensor of the program: a name, its shape, dtype and strides (in
            elements), and, for a view, the value whose memory it looks into
            (`base`). Inputs and constants are values with no producing node.
    Node    one call of a primitive from the op table (`tracegrad.ops.table.OPS`):
            the op, its arguments as the dispatcher got them (a Value where the op
            took a tensor, a list of them for cat/stack, Python numbers as they
            were), its attrs, and the dtype / compute dtype the dispatcher was
            handed. Running a node means `dispatch.apply(op, args, attrs, dtype,
            compute)`, so a graph means exactly what eager mode means.
    Graph   inputs, constants, nodes in execution order, outputs.

`print(graph)` shows the graph as a Python function, one line per node, each
value's shape and dtype in a comment (the style of Thunder's traces):

    def forward(x: "f32[64, 1000]", w1: "f32[1000, 100]"):
        t0 = prims.matmul(x, w1, name='MmBackward0')  # t0: f32[64, 100]
        t1 = prims.clamp(t0, lo=0, hi=None)  # t1: f32[64, 100]
        return t1

That text is the program: `graph.as_function()` execs it, with `prims.<op>`
bound to the dispatcher, and the result called on tracegrad tensors gives the
numbers the traced function gives (and records autograd, like any eager code).
"""
from __future__ import annotations

import math
from typing import Any, Callable, Iterable, Iterator

import numpy as np

from .. import dtypes as D
from ..ops.table import OPS, Op

_SHORT = {"float32": "f32", "float64": "f64", "float16": "f16", "bfloat16": "bf16", "int64": "i64",
          "int32": "i32", "int16": "i16", "int8": "i8", "uint8": "u8", "bool": "b8"}


def dtype_str(dt: D.DType) -> str:
    return _SHORT.get(dt.name, dt.name)


def contiguous_strides(shape) -> tuple:
    st, acc = [], 1
    for n in reversed(tuple(shape)):
        st.append(acc)
        acc *= max(int(n), 1)
    return tuple(reversed(st))


class Value:
    """One tensor of a graph (SSA: defined once, by an input, a constant or a node)."""

    __slots__ = ("name", "shape", "dtype", "strides", "offset", "base", "node", "index", "kind", "data",
                 "requires_grad", "__weakref__")

    def __init__(self, name: str, shape, dtype: D.DType, strides=None, *, kind: str = "node", node=None,
                 index: int = 0, base: "Value | None" = None, offset: int = 0, data=None,
                 requires_grad: bool = False):
        self.name = name
        self.shape = tuple(int(s) for s in shape)
        self.dtype = dtype
        self.strides = tuple(strides) if strides is not None else contiguous_strides(self.shape)
        self.offset = offset  # elements from the start of `base`'s memory (views only)
        self.base = base  # the value whose memory a view shares; None when it owns its memory
        self.node = node
        self.index = index  # which output of `node`
        self.kind = kind  # "input" | "const" | "node"
        self.data = data  # the array of a constant (storage dtype)
        self.requires_grad = requires_grad

    # enough of a tensor's surface for the ops' dtype rules (result_type reads .dtype and .ndim)
    @property
    def ndim(self) -> int:
        return len(self.shape)

    def numel(self) -> int:
        n = 1
        for s in self.shape:
            n *= s
        return n

    @property
    def nbytes(self) -> int:
        return self.numel() * self.dtype.itemsize

    def root(self) -> "Value":
        """The value that owns the memory this one looks into."""
        v = self
        while v.base is not None:
            v = v.base
        return v

    def is_contiguous(self) -> bool:
        expected = 1
        for n, s in zip(reversed(self.shape), reversed(self.strides)):
            if n != 1 and s != expected:
                return False
            expected *= n
        return True

    def type_str(self) -> str:
        return f"{dtype_str(self.dtype)}[{', '.join(map(str, self.shape))}]"

    def __repr__(self) -> str:
        return f"<Value {self.name}: {self.type_str()}>"


class Node:
    """One primitive call. `args` mirror what `dispatch.apply` received."""

    __slots__ = ("op", "args", "attrs", "dtype", "compute", "given", "outputs", "loc", "phase")

    def __init__(self, op: Op, args: tuple, attrs: dict, dtype, compute, given: tuple = (False, False),
                 outputs: list | None = None, loc: str = "", phase: str = "forward"):
        self.op = op
        self.args = tuple(args)
        self.attrs = attrs
        self.dtype = dtype  # the output dtype (a tuple for several outputs)
        self.compute = compute  # the dtype inputs are cast to before the NumPy call, or None
        self.given = given  # were dtype / compute passed to apply explicitly (printed only then)
        self.outputs = outputs if outputs is not None else []
        self.loc = loc  # the user's source line that made this op ("file.py:12 (y = x.exp())")
        self.phase = phase  # "forward" or "backward": which pass of the trace recorded it

    @property
    def name(self) -> str:
        return self.op.name

    def inputs(self) -> Iterator[Value]:
        """The Values among the arguments, in order (a list argument's items included)."""
        for a in self.args:
            if isinstance(a, Value):
                yield a
            elif type(a) is list or type(a) is tuple:
                for x in a:
                    if isinstance(x, Value):
                        yield x

    def replace_inputs(self, mapping: dict) -> "Node":
        """A copy of this node whose arguments go through `mapping` (Value -> Value)."""

        def sub(a):
            if isinstance(a, Value):
                return mapping.get(a, a)
            if type(a) is list or type(a) is tuple:
                return type(a)(sub(x) for x in a)
            return a

        args = tuple(sub(a) for a in self.args)
        if all(x is y for x, y in zip(args, self.args)):
            return self
        n = Node(self.op, args, self.attrs, self.dtype, self.compute, self.given, self.outputs, self.loc, self.phase)
        return n

    def __repr__(self) -> str:
        return f"<Node {', '.join(o.name for o in self.outputs)} = {self.op.name}>"


class Graph:
    """A program: `inputs` (Values), `nodes` (in order), `outputs` (Values).

    Constants are Values of kind "const" that nodes refer to; `constants()` lists
    them. Graphs are built by the tracer and rebuilt by passes (which make new
    node lists rather than editing nodes another graph may share)."""

    def __init__(self, name: str = "forward", inputs=None, nodes=None, outputs=None):
        self.name = name
        self.inputs: list[Value] = list(inputs or [])
        self.nodes: list[Node] = list(nodes or [])
        self.outputs: list[Value] = list(outputs or [])
        self.output_names: list[str] | None = None  # optional labels printed next to `return`
        self.meta: dict = {}

    def copy(self, *, name=None, inputs=None, nodes=None, outputs=None) -> "Graph":
        g = Graph(name or self.name, self.inputs if inputs is None else inputs,
                  self.nodes if nodes is None else nodes, self.outputs if outputs is None else outputs)
        g.output_names = self.output_names  # labels are per position; passes keep positions
        g.meta = dict(self.meta)
        return g

    # ---- queries ---------------------------------------------------------------------
    def constants(self) -> list[Value]:
        seen, out = set(), []
        for v in self._all_used():
            if v.kind == "const" and id(v) not in seen:
                seen.add(id(v))
                out.append(v)
        return out

    def _all_used(self) -> Iterator[Value]:
        for n in self.nodes:
            yield from n.inputs()
        yield from self.outputs

    def users(self) -> dict:
        """Value -> list of nodes that read it."""
        u: dict = {}
        for n in self.nodes:
            for v in n.inputs():
                u.setdefault(v, []).append(n)
        return u

    def producers(self) -> dict:
        """Value -> the node of this graph that makes it."""
        return {o: n for n in self.nodes for o in n.outputs}

    # ---- printing as Python ---------------------------------------------------------------
    def python(self, *, comments: bool = True) -> str:
        """The graph as the source of a Python function (also what `str(graph)` gives)."""
        return _Printer(self, comments).render()

    __str__ = python

    def __repr__(self) -> str:
        return f"<Graph {self.name}: {len(self.inputs)} inputs, {len(self.nodes)} nodes, {len(self.outputs)} outputs>"

    def namespace(self) -> dict:
        """The globals the printed program needs: `prims`, `tracegrad`, the constants."""
        import tracegrad

        p = _Printer(self, False)
        p.render()
        ns = {"prims": PRIMS, "tracegrad": tracegrad, "inf": math.inf, "nan": math.nan}
        for v in self.constants():
            ns[v.name] = _const_tensor(v)
        ns.update(p.extra)
        return ns

    def as_function(self) -> Callable:
        """Exec the printed program; the result runs the graph on tracegrad tensors."""
        src = self.python(comments=False)
        ns = self.namespace()
        exec(compile(src, f"<tracegrad graph {self.name}>", "exec"), ns)
        return ns[_ident(self.name)]


def _const_tensor(v: Value):
    from ..tensor import Tensor

    return Tensor._make(v.data, v.dtype)


def _ident(name: str) -> str:
    s = "".join(c if c.isalnum() or c == "_" else "_" for c in name)
    return s if s and not s[0].isdigit() else "_" + s


class _Printer:
    """Renders a graph as Python; arrays inside attrs become named globals (k0, k1, ...)."""

    def __init__(self, graph: Graph, comments: bool):
        self.g = graph
        self.comments = comments
        self.extra: dict = {}

    def fmt(self, a) -> str:
        if isinstance(a, Value):
            return a.name
        if a is None or a is True or a is False:
            return repr(a)
        if a is Ellipsis:
            return "..."
        if isinstance(a, D.DType):
            return repr(a)
        if isinstance(a, (bool, np.bool_)):
            return repr(bool(a))
        if isinstance(a, (int, np.integer)):
            return repr(int(a))
        if isinstance(a, (float, np.floating)):
            f = float(a)
            if math.isnan(f):
                return "nan"
            if math.isinf(f):
                return "inf" if f > 0 else "-inf"
            return repr(f)
        if isinstance(a, str):
            return repr(a)
        if isinstance(a, slice):
            return f"slice({self.fmt(a.start)}, {self.fmt(a.stop)}, {self.fmt(a.step)})"
        if type(a) is tuple:
            inner = ", ".join(self.fmt(x) for x in a)
            return f"({inner},)" if len(a) == 1 else f"({inner})"
        if type(a) is list:
            return "[" + ", ".join(self.fmt(x) for x in a) + "]"
        if type(a) is dict:
            return "{" + ", ".join(f"{self.fmt(k)}: {self.fmt(v)}" for k, v in a.items()) + "}"
        # anything else (an index array, an object): a named global of the program
        name = f"k{len(self.extra)}"
        self.extra[name] = a
        return name

    def render(self) -> str:
        g = self.g
        params = []
        for v in g.inputs:
            note = v.type_str() + (" grad" if v.requires_grad else "")
            params.append(f'{v.name}: "{note}"' if self.comments else v.name)
        lines = [f"def {_ident(g.name)}({', '.join(params)}):"]
        if self.comments:
            for c in g.constants():
                lines.append(f"    # {c.name}: {c.type_str()} constant{_const_preview(c)}")
        for n in g.nodes:
            lines.append("    " + self.node_line(n))
        outs = ", ".join(v.name for v in g.outputs)
        if len(g.outputs) == 1:
            outs += ","
        ret = f"    return ({outs})"
        if self.comments and g.output_names:
            ret += "  # " + ", ".join(g.output_names)
        lines.append(ret)
        return "\n".join(lines) + "\n"

    def node_line(self, n: Node) -> str:
        args = [self.fmt(a) for a in n.args]
        args += [f"{k}={self.fmt(v)}" for k, v in n.attrs.items()]
        if n.given[0]:
            args.append(f"_dtype={self.fmt(n.dtype)}")
        if n.given[1]:
            args.append(f"_compute={self.fmt(n.compute)}")
        call = f"prims.{n.op.name}({', '.join(args)})"
        if n.op.nout == 1:
            lhs = n.outputs[0].name
        else:
            lhs = ", ".join(o.name for o in n.outputs) + ("," if len(n.outputs) == 1 else "")
        line = f"{lhs} = {call}"
        if self.comments:
            line += "  # " + ", ".join(f"{o.name}: {o.type_str()}" for o in n.outputs)
            if n.loc:
                line += f"  ({'grad of ' if n.phase == 'backward' else ''}{n.loc})"
        return line


def _const_preview(v: Value) -> str:
    if v.data is not None and v.numel() <= 4:
        try:
            vals = np.asarray(v.data).reshape(-1).tolist()
            if v.dtype is D.bfloat16:
                return ""
            return " = " + (repr(vals[0]) if v.ndim == 0 else repr(vals))
        except Exception:  # pragma: no cover - a preview is only a comment
            return ""
    return ""


class _Prims:
    """`prims.<op>(*args, **attrs)`: run one op of the table through the dispatcher."""

    def __getattr__(self, name: str) -> Callable:
        try:
            op = OPS[name]
        except KeyError:
            raise AttributeError(f"no op named {name!r} in the op table") from None
        from ..dispatch import apply

        def call(*args, _dtype=None, _compute=None, **attrs):
            return apply(op, args, attrs, _dtype, _compute)

        call.__name__ = name
        return call


PRIMS = _Prims()


# ---- running a node on NumPy arrays (what `apply` does, without tensors) -----------------------
def run_node(node: Node, vals: list) -> list:
    """Evaluate `node` on arrays (one per Value argument, in `node.inputs()` order, in storage
    dtype); returns the output arrays in storage dtype. Mirrors `dispatch.apply` step for step."""
    from ..dispatch import bf16_to_f32, to_storage

    op = node.op
    compute = node.compute
    it = iter(vals)

    def conv(v: Value, arr):
        if compute is not None and v.dtype is not compute:
            src = bf16_to_f32(arr) if v.dtype is D.bfloat16 else arr
            return src.astype(D.compute_np(compute))
        if v.dtype is D.bfloat16 and op.kind != "view":
            return bf16_to_f32(arr)
        return arr

    args = []
    for a in node.args:
        if isinstance(a, Value):
            args.append(conv(a, next(it)))
        elif type(a) is list or type(a) is tuple:
            items = []
            for x in a:
                if isinstance(x, Value):
                    arr = next(it)
                    items.append(bf16_to_f32(arr) if x.dtype is D.bfloat16 else arr)
                else:
                    items.append(x)
            args.append(items)
        else:
            args.append(a)
    attrs = np_attrs(op, node.attrs)
    with np.errstate(all="ignore"):
        res = op.numpy(*args, **attrs)
    if op.nout == 1:
        res = (res,)
    outs = []
    for o, r in zip(node.outputs, res):
        if op.kind == "view":
            outs.append(r)
            continue
        if type(r) is not np.ndarray:
            r = np.asarray(r)
        outs.append(to_storage(r, o.dtype))
    return outs


def np_attrs(op: Op, attrs: dict) -> dict:
    """The attrs `op.numpy` accepts (the rest are for dtype rules and vjps)."""
    if attrs and op.np_attrs is not None and not op.np_attrs.issuperset(attrs):
        return {k: v for k, v in attrs.items() if k in op.np_attrs}
    return attrs


def topo_check(graph: Graph) -> None:
    """Raise if a node reads a value no earlier node, input or constant defines (a pass bug)."""
    known = {id(v) for v in graph.inputs}
    for n in graph.nodes:
        for v in n.inputs():
            if v.kind == "const":
                continue
            if id(v) not in known:
                raise AssertionError(f"{n} reads {v.name} before it is defined")
        for o in n.outputs:
            known.add(id(o))
    for v in graph.outputs:
        if v.kind != "const" and id(v) not in known:
            raise AssertionError(f"output {v.name} is never defined")


def iter_values(args: Iterable) -> Iterator[Value]:
    for a in args:
        if isinstance(a, Value):
            yield a
        elif type(a) is list or type(a) is tuple:
            for x in a:
                if isinstance(x, Value):
                    yield x


def attr_key(a: Any):
    """A hashable key for an attr value (arrays by content), for CSE and caches."""
    if isinstance(a, np.ndarray):
        return ("nd", a.dtype.str, a.shape, a.tobytes())
    if type(a) is tuple or type(a) is list:
        return (type(a).__name__,) + tuple(attr_key(x) for x in a)
    if type(a) is dict:
        return ("dict",) + tuple((k, attr_key(v)) for k, v in sorted(a.items(), key=lambda kv: str(kv[0])))
    if isinstance(a, slice):
        return ("slice", attr_key(a.start), attr_key(a.stop), attr_key(a.step))
    if isinstance(a, float) and math.isnan(a):
        return ("nan",)
    if isinstance(a, (bool, int, float, str, type(None), D.DType)) or a is Ellipsis:
        return (type(a).__name__, a)
    return ("obj", id(a))
