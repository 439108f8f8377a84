"""Recording one op into the backward graph (called by the dispatcher).

When an op runs on inputs of which at least one requires grad, its outputs get
a node (`out.grad_fn`). The node holds:
  - `_edges`: for each tensor input, where its gradient goes next: the input's
    own grad_fn (and which of that node's outputs it was), an `AccumulateGrad`
    for a leaf, or `(None, 0)` when the input does not require grad. The vjp
    rule returns one gradient per tensor input, in the same order.
  - `next_functions`: the same edges as torch shows them. torch leaves out
    inputs that are never differentiable (indices, masks, a `where` condition)
    and shows a Python number it wrapped into a tensor (`x + 2`) as `(None, 0)`.
    An op says which arguments torch lists with `Op.edges`; that listing is
    worked out from the node's ctx when someone reads it (see TorchEdges).
  - the tensors the vjp reads (`Op.save`), with their version counters, so that
    an in-place change to one of them is caught at backward time. A saved output
    is remembered by its output number, not by (node, number), so the node does
    not refer to itself.
  - a `Ctx` with what else the rule reads: attrs, input shapes and dtypes,
    which inputs need a gradient."""
from __future__ import annotations

from ..dtypes import _FLOAT
from .node import node_class, AccumulateGrad, _classes, _Extra

NO_EDGE = (None, 0)
_NEEDS1 = (True,)
_NEEDS_BOTH, _NEEDS_FIRST, _NEEDS_SECOND = (True, True), (True, False), (False, True)
_NUMBERS = frozenset((int, float, bool))


class Ctx:
    """What a vjp rule may read besides saved tensors: non-tensor arguments,
    each tensor input's shape and dtype, and which inputs need a gradient.
    `ctx.args` keeps the op's arguments for the Python numbers among them; a
    rule must read tensor values only from `saved` (which is version-checked).
    The op's attrs read as attributes (ctx.dim, ctx.keepdim): its instance dict is
    the attrs dict itself, which costs nothing to make and reads at plain speed."""

    __slots__ = ("attrs", "shapes", "dtypes", "needs", "args", "out_shape", "out_dtype", "__dict__")


def name_by_args(fn):
    """Mark an Op.grad_name callable that wants (attrs, args), for names that depend on
    whether an operand is a tensor or a Python number (RemainderBackward0 vs ...1)."""
    fn.uses_args = True
    return fn


class save_if:
    """An Op.save that keeps an input only when the rule's formulas will read it, as torch does
    (mul saves `other` only if `self` needs a gradient). Each rule is (i, (j, ...)): input i is
    saved when any input j requires grad; otherwise its slot holds None. A Python number
    operand is never saved (the rule reads it from ctx.args)."""

    __slots__ = ("rules",)

    def __init__(self, *rules):
        self.rules = rules

    def positions(self, args, T):
        out = []
        for i, js in self.rules:
            keep = None
            for j in js:
                a = args[j]
                if isinstance(a, T) and a._requires_grad:
                    keep = i
                    break
            out.append(keep)
        return out


def _save_if_positions(rules, args, T):
    """save_if.positions, without the method call (record runs once per op)."""
    out = []
    for i, js in rules:
        for j in js:
            a = args[j]
            if isinstance(a, T) and a._requires_grad:
                out.append(i)
                break
        else:
            out.append(None)
    return out


def accumulator(t):
    """The AccumulateGrad node of leaf `t` (one per leaf, made on first use)."""
    acc = t._accum
    if acc is None:
        acc = t._accum = AccumulateGrad(t)
    return acc


def edge_of(t):
    """Where the gradient of tensor `t` is sent: (node, output number)."""
    if not t._requires_grad:
        return NO_EDGE
    fn = t.grad_fn
    if fn is not None:
        return (fn, t._output_nr)
    acc = t._accum
    if acc is None:
        acc = t._accum = AccumulateGrad(t)
    return (acc, 0)


class TorchEdges:
    """A node's `next_functions` where torch lists other arguments than the engine follows
    (`Op.edges`): worked out from the op's arguments only when someone asks, since most
    graphs are run, not inspected. One per op, shared by its nodes."""

    __slots__ = ("edges",)

    def __init__(self, edges):
        self.edges = edges

    def view(self, node) -> tuple:
        ctx = node.ctx
        if ctx is None:  # taken apart (a finished trace)
            return node._edges
        args = ctx.args
        spec = self.edges
        positions = spec if type(spec) is tuple else spec(args, ctx.attrs)
        arg_edge = []  # per argument: its index among the edges, or -1
        k = 0
        for a in args:
            if isinstance(a, _T):
                arg_edge.append(k)
                k += 1
            else:
                arg_edge.append(-1)
                if type(a) is list or type(a) is tuple:  # cat/stack: one edge per tensor inside
                    k += sum(1 for x in a if isinstance(x, _T))
        edges = node._edges
        if k != len(edges):  # taken apart (a finished trace)
            return edges
        return tuple(edges[arg_edge[p]] if arg_edge[p] >= 0 else NO_EDGE for p in positions)


class _Plan:
    """What record() needs from an op, worked out once: the node class, how to save, and
    how torch lists next_functions. Rebuilt if the op's fields are reassigned."""

    __slots__ = ("save", "grad_name", "edges", "cls", "kind", "entries", "has_out", "nf", "mode1", "tmpl1",
                 "out1", "mode2", "pairs")

    def __init__(self, op):
        self.save = save = op.save
        self.grad_name = name = op.grad_name
        self.edges = op.edges
        self.cls = node_class(name) if type(name) is str else None
        self.nf = TorchEdges(op.edges) if op.edges is not None else None
        self.entries = None
        self.has_out = False
        if not save:
            self.kind = 0
        elif type(save) is save_if:
            self.kind = 2
        elif type(save) is tuple:
            self.kind = 1
            self.entries, self.has_out = _parse_save(save)
        else:
            self.kind = 3  # save(attrs): parsed per call
        self._one_tensor_saves()
        # two tensor inputs: mode2 0 saves nothing, 5 a save_if of two rules (positions cached by
        # which inputs need a gradient in `pairs`), None the general code
        self.pairs = {}
        if self.kind == 0:
            self.mode2 = 0
        elif self.kind == 2 and len(save.rules) == 2:
            self.mode2 = 5
        else:
            self.mode2 = None

    def pair_positions(self, needs):
        probe = tuple(_Probe() if n else _NoGrad() for n in needs)
        pos = self.pairs[needs] = tuple(_save_if_positions(self.save.rules, probe, (_Probe, _NoGrad)))
        return pos

    def _one_tensor_saves(self):
        """What is saved when input 0 is the only tensor (it requires grad; any other argument is
        a Python number): the common unary and tensor-with-number ops. mode1: 0 nothing saved,
        1 (input 0,), 2 (output 0,), 3 the constant tmpl1 (empty save_if slots), 4 tmpl1's codes
        (0: input 0, -1 - k: output k, None: an empty slot), None: the general code."""
        self.tmpl1 = self.out1 = None
        kind = self.kind
        if kind == 0:
            self.mode1 = 0
            return
        if kind == 1:
            tmpl = tuple(e for e in self.entries if e <= 0)  # a number operand is not saved
        elif kind == 2:
            tmpl = tuple(i if i == 0 else None for i in _save_if_positions(self.save.rules, _ONE_TENSOR, _Probe))
        else:
            self.mode1 = None
            return
        if not tmpl:
            self.mode1 = 0
        elif tmpl == (0,):
            self.mode1 = 1
        elif tmpl == (-1,):
            self.mode1 = 2
            self.out1 = (0,)
        elif all(e is None for e in tmpl):
            self.mode1 = 3
            self.tmpl1 = tmpl
        else:
            self.mode1 = 4
            self.tmpl1 = tmpl
            if any(e is not None and e < 0 for e in tmpl):
                self.out1 = tuple(-1 - e if e is not None and e < 0 else None for e in tmpl)


class _Probe:
    """Stands for 'a tensor that requires grad' when a plan works out what save_if keeps."""

    _requires_grad = True


class _NoGrad:
    """Stands for 'a tensor that does not require grad' (see _Probe)."""

    _requires_grad = False


_ONE_TENSOR = (_Probe(), 0, 0, 0, 0, 0, 0, 0)


def _parse_save(save):
    """Op.save entries as ints: i >= 0 is input i, -1 - k is output k ("out", "out1", ...)."""
    entries = tuple(s if type(s) is not str else -1 - int(s[3:] or 0) for s in save)
    return entries, any(e < 0 for e in entries)


_PLANS: dict = {}
_T = None  # tracegrad.Tensor, set on first use (tensor.py imports this package)
_new = object.__new__


def _plan_of(op):
    global _T
    if _T is None:
        from ..tensor import Tensor

        _T = Tensor
    plan = _PLANS[op] = _Plan(op)
    return plan


def standin(o):
    """What a node saves of its own output: a tensor sharing the output's data and version counter,
    without its grad_fn. Saving the output itself would be a reference cycle (node -> output ->
    grad_fn -> node) that only the garbage collector frees, when a graph is dropped without a
    backward pass (an evaluation loop outside no_grad). Under create_graph the node hands its vjp
    `live_saved` instead, where the output has its grad_fn back."""
    s = _new(o.__class__)
    s._data = o._data
    s.dtype = o.dtype
    s._vc = o._vc
    if o._sym is not None:  # traced: the same symbolic value as the output
        s._sym = o._sym
    return s


def live_saved(node, saved):
    """`saved` with each saved output given its grad_fn (this node) again, for a backward pass
    that is itself recorded (create_graph): its gradient formulas must differentiate through it."""
    out = node._saved_out
    if not out or not saved:
        return saved
    live = list(saved)
    for i, k in enumerate(out):
        if k is not None and live[i] is not None:
            s = live[i]
            t = _new(s.__class__)
            t._data = s._data
            t.dtype = s.dtype
            t._vc = s._vc
            if s._sym is not None:
                t._sym = s._sym
            t.grad_fn = node
            t._output_nr = k
            t._requires_grad = True
            live[i] = t
    return tuple(live)


def _save(node, plan, mode, args, attrs, outs, T):
    """The saved tensors of a node, in general (record's short cases aside)."""
    if mode == 4:
        a = args[0]
        saved = tuple([a if e == 0 else None if e is None else standin(outs[-1 - e]) for e in plan.tmpl1])
        has_out = plan.out1 is not None
        src = plan.out1
    else:
        kind = plan.kind
        if kind == 0:
            node._saved = node._versions = ()
            node._saved_out = None
            return
        if kind == 1:
            entries, has_out = plan.entries, plan.has_out
        elif kind == 2:
            entries, has_out = _save_if_positions(plan.save.rules, args, T), False
        else:
            entries, has_out = _parse_save(plan.save(attrs))
        fixed_slots = kind == 2
        # only tensors are saved (and version-checked); a Python number operand lives in ctx.args
        saved = []
        src = [] if has_out else None
        for i in entries:
            if i is None:  # a slot save_if left empty
                t = None
            elif i >= 0:
                t = args[i]
                if not isinstance(t, T):
                    if not fixed_slots:
                        continue
                    t = None  # a Python number where save_if keeps a slot
            else:  # one of the op's own outputs
                t = standin(outs[-1 - i])
                src.append(-1 - i)
                saved.append(t)
                continue
            saved.append(t)
            if has_out:
                src.append(None)  # an input: an error message names its grad_fn at that time
        saved = tuple(saved)
        if has_out:
            src = tuple(src)
    node._saved = saved
    node._versions = tuple([t._vc[0] if t is not None else 0 for t in saved])
    node._saved_out = src if has_out else None


def record(op, args, attrs, outs):
    """Give `outs` (the op's results) a grad_fn node, if any tensor input requires grad.
    This runs for every op on the autograd path, so it is written for speed: one tensor
    input (unary ops, reductions, views) and plain tensor/number operands take the short
    way; per-op facts come from a cached plan."""
    plan = _PLANS.get(op)
    if plan is None or plan.save is not op.save or plan.grad_name is not op.grad_name \
            or plan.edges is not op.edges:
        plan = _plan_of(op)
    T = _T
    n = len(args)
    a = args[0]
    # one tensor (unary ops, reductions, views), or tensor (op) number
    if isinstance(a, T) and (n == 1 or n == 2 and type(args[1]) in _NUMBERS):
        if not a._requires_grad:
            return
        fn = a.grad_fn
        if fn is not None:
            edges = ((fn, a._output_nr),)
        else:
            acc = a._accum
            edges = ((acc if acc is not None else accumulator(a), 0),)
        shapes = (a._data.shape,)
        dtypes = (a.dtype,)
        needs = _NEEDS1
        mode = plan.mode1
    elif n == 2 and isinstance(a, T) and isinstance(args[1], T):  # tensor (op) tensor
        b = args[1]
        if a._requires_grad:
            fn = a.grad_fn
            if fn is not None:
                ea = (fn, a._output_nr)
            else:
                acc = a._accum
                ea = (acc if acc is not None else accumulator(a), 0)
            if b._requires_grad:
                fn = b.grad_fn
                if fn is not None:
                    edges = (ea, (fn, b._output_nr))
                else:
                    acc = b._accum
                    edges = (ea, (acc if acc is not None else accumulator(b), 0))
                needs = _NEEDS_BOTH
            else:
                edges = (ea, NO_EDGE)
                needs = _NEEDS_FIRST
        elif b._requires_grad:
            fn = b.grad_fn
            if fn is not None:
                edges = (NO_EDGE, (fn, b._output_nr))
            else:
                acc = b._accum
                edges = (NO_EDGE, (acc if acc is not None else accumulator(b), 0))
            needs = _NEEDS_SECOND
        else:
            return
        shapes = (a._data.shape, b._data.shape)
        dtypes = (a.dtype, b.dtype)
        mode = plan.mode2
    else:
        edges = []
        shapes = []
        dtypes = []
        needs = []
        need = False
        for a in args:
            if isinstance(a, T):
                shapes.append(a._data.shape)
                dtypes.append(a.dtype)
                if a._requires_grad:
                    need = True
                    needs.append(True)
                    fn = a.grad_fn
                    if fn is not None:
                        edges.append((fn, a._output_nr))
                    else:
                        acc = a._accum
                        edges.append((acc if acc is not None else accumulator(a), 0))
                else:
                    needs.append(False)
                    edges.append(NO_EDGE)
            elif type(a) is list or type(a) is tuple:  # cat/stack take a list of tensors
                for x in a:
                    if isinstance(x, T):
                        e = edge_of(x)
                        shapes.append(x._data.shape)
                        dtypes.append(x.dtype)
                        needs.append(e[0] is not None)
                        need = need or e[0] is not None
                        edges.append(e)
        if not need:
            return
        mode = None
        edges = tuple(edges)
        shapes = tuple(shapes)
        dtypes = tuple(dtypes)
        needs = tuple(needs)

    ctx = _new(Ctx)
    ctx.attrs = attrs
    if attrs:
        ctx.__dict__ = attrs  # attrs read as ctx.dim, ctx.keepdim, ...
    ctx.shapes = shapes
    ctx.dtypes = dtypes
    ctx.needs = needs
    ctx.args = args
    out0 = outs[0]
    ctx.out_shape = out0._data.shape
    ctx.out_dtype = out0.dtype

    cls = plan.cls
    if cls is None:
        name = op.grad_name
        name = name(attrs, args) if getattr(name, "uses_args", False) else name(attrs)
        cls = _classes.get(name) or node_class(name)
    node = _new(cls)
    node._vjp = op.vjp
    node._edges = edges
    node._nf = plan.nf
    node.ctx = ctx
    node._in_dtypes = dtypes

    if mode == 0:
        node._saved = node._versions = ()
        node._saved_out = None
    elif mode == 1:
        node._saved = (a,)
        node._versions = (a._vc[0],)
        node._saved_out = None
    elif mode == 2:
        node._saved = (standin(out0),)
        node._versions = (out0._vc[0],)
        node._saved_out = plan.out1
    elif mode == 3:
        node._saved = plan.tmpl1
        node._versions = (0,) * len(plan.tmpl1)
        node._saved_out = None
    elif mode == 5:  # two tensors, save_if with a rule for each: which it keeps depends on needs
        i, j = plan.pairs.get(needs) or plan.pair_positions(needs)
        s0 = args[i] if i is not None else None
        s1 = args[j] if j is not None else None
        node._saved = (s0, s1)
        node._versions = (s0._vc[0] if s0 is not None else 0, s1._vc[0] if s1 is not None else 0)
        node._saved_out = None
    else:
        _save(node, plan, mode, args, attrs, outs, T)

    nout = len(outs)
    node._nout = nout
    if nout == 1:
        node._x = None
        if out0.dtype.category == _FLOAT:
            out0.grad_fn = node
            out0._requires_grad = True
    else:
        x = node._x = _Extra()
        x.out_meta = [(o._data.shape, o.dtype) for o in outs]
        for i, o in enumerate(outs):
            if o.dtype.category == _FLOAT:
                o.grad_fn = node
                o._output_nr = i
                o._requires_grad = True
