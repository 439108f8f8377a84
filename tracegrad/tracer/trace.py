"""Tracing: run a Python function on symbolic tensors and record its ops.

    graph = tracegrad.trace(fn, x, w)      # the forward graph, printable

While a `Tracer` is installed in `dispatch.TRACER`, every op goes to
`Tracer.record` instead of running: it works out the outputs' shapes, dtypes
and strides from the op's NumPy implementation on stand-ins (see meta.py),
appends a Node, and returns symbolic tensors. Autograd records as usual, so if
inputs require grad, running the engine on the symbolic outputs makes the vjp
rules record the backward graph from the same ops.

What a function can touch besides its arguments is handled here too:
  - tensors from outside (a module's parameters, a closure's tensors) become
    graph inputs read by reference at every call; tensors the function makes
    with factories (zeros, tensor([...])) are constants;
  - in-place writes are functionalized: the written tensor's memory gets a new
    value in the graph, views of it re-derive theirs, and writes into tensors
    from outside become "effects" the compiled function applies after running;
  - `.grad` changes (backward inside the function, zero_grad) are effects too;
  - a symbolic tensor that outlives the trace (kept in Python state) is "leaked":
    the compiled function turns it into a real tensor after its first run.
Python control flow on values raises DataDependentError naming the line.
"""
from __future__ import annotations

import inspect
import keyword
import re
import weakref
from typing import Callable

import numpy as np

from ..autograd import grad_mode
from ..autograd.node import AccumulateGrad
from ..tensor import Tensor, _root
from .. import dispatch
from . import meta, pytree
from .graph import Graph, Node, Value, contiguous_strides
from .symbolic import (DataDependentError, SENTINEL, Storage, Sym, SymbolicTensor, make_symbolic, stand_in,
                       user_frame, user_loc, describe_frame)

_grad = grad_mode._state
_RESERVED = re.compile(r"^(t|c|k)\d+$")


def _strides_of(arr: np.ndarray) -> tuple:
    item = arr.itemsize
    return tuple(s // item for s in arr.strides)


def _ptr(arr: np.ndarray) -> int:
    return arr.__array_interface__["data"][0]


class Names:
    """Unique, valid Python names for the values of one trace."""

    def __init__(self):
        self.used: set = {"prims", "tracegrad", "inf", "nan"}
        self.n = {"t": 0, "c": 0}

    def new(self, prefix: str = "t") -> str:
        while True:
            name = f"{prefix}{self.n[prefix]}"
            self.n[prefix] += 1
            if name not in self.used:
                self.used.add(name)
                return name

    def user(self, name: str) -> str:
        s = "".join(c if c.isalnum() or c == "_" else "_" for c in name) or "x"
        if s[0].isdigit():  # "0.weight" of a Sequential -> p0_weight
            s = "p" + s
        if keyword.iskeyword(s) or _RESERVED.match(s):
            s += "_"
        base, k = s, 1
        while s in self.used:
            s = f"{base}_{k}"
            k += 1
        self.used.add(s)
        return s


class Tracer:
    """Records ops into nodes; one per trace. Installed in `dispatch.TRACER[0]`."""

    def __init__(self, capture_names: dict | None = None):
        self.nodes: list[Node] = []
        self.inputs: list[Value] = []
        self.sources: list = []  # per input: ("arg", i) | ("arg_grad", i) | ("capture", obj) | ("tangent", k)
        self.names = Names()
        self.capture_names = capture_names or {}  # id(tensor) -> a readable name (module parameters)
        self.symbolic: list = []  # every symbolic tensor made (kept alive while tracing)
        self.real: dict = {}  # id(real tensor) -> (tensor, proxy)
        self.fresh: dict = {}  # id(t) -> t for tensors made by factories during the trace
        self.standin_roots: set = set()
        self.grad_touched: dict = {}  # id(t) -> (t, its .grad before the trace touched it)
        self.storages: list[Storage] = []  # storages that belong to something outside the trace
        self.phase = "forward"
        self.cur_loc: str | None = None  # while a vjp runs: the forward op's line
        self.input_proxy: dict = {}  # index in self.inputs -> the proxy given to the function
        # id(input Value) -> (id, version counter) of the proxy made for it, to tell it from an alias like
        # x.detach(); not the proxy itself, which would keep it alive past the trace (a "leak", see _find_leaks)
        self.own_proxy: dict = {}
        self.real_by_mem: dict = {}  # (address, shape, strides, dtype) of a real tensor's memory -> its proxy

    # ---- inputs -------------------------------------------------------------------------------
    def _new_proxy(self, t: Tensor, value: Value, owner, known: bool = False) -> SymbolicTensor:
        if known:  # a constant: its memory may be read (vjps read index tensors' values)
            arr = t._data
        else:
            arr = stand_in(t._data.shape, _strides_of(t._data), t._data.dtype)
            self.standin_roots.add(id(_root(arr)))
        st = Storage(value, arr, owner)
        p = make_symbolic(arr, t.dtype, Sym(value, st, True), requires_grad=t._requires_grad)
        self.own_proxy[id(value)] = (id(p), p._vc)
        self.symbolic.append(p)
        if owner is not None:
            self.storages.append(st)
        return p

    def add_input(self, t: Tensor, source, name: str) -> SymbolicTensor:
        v = Value(self.names.user(name), t._data.shape, t.dtype, _strides_of(t._data), kind="input",
                  requires_grad=t._requires_grad)
        self.inputs.append(v)
        self.sources.append(source)
        p = self._new_proxy(t, v, source)
        self.input_proxy[len(self.inputs) - 1] = p
        if source[0] == "arg" and t._requires_grad and t._grad is not None:
            g = t._grad
            gv = Value(self.names.user(name + "_grad"), g._data.shape, g.dtype, _strides_of(g._data),
                       kind="input")
            self.inputs.append(gv)
            self.sources.append(("arg_grad", source[1]))
            p._grad = self._new_proxy(g, gv, ("arg_grad", source[1]))
        return p

    def proxy(self, t: Tensor) -> SymbolicTensor:
        """The symbolic tensor standing for `t` (t itself when it is symbolic)."""
        if t._sym is not None:
            return t
        e = self.real.get(id(t))
        if e is not None:
            return e[1]
        d = t._data
        mem = (_ptr(d), d.shape, d.strides, d.dtype.str, t.dtype.name)
        same = self.real_by_mem.get(mem)
        if same is not None:  # another tensor over the same memory (x.data, x.detach()): the same value
            self.real[id(t)] = (t, same)
            return same
        if id(t) in self.fresh:  # made by a factory inside the trace: a constant
            v = Value(self.names.new("c"), t._data.shape, t.dtype, _strides_of(t._data), kind="const",
                      data=t._data)
            p = self._new_proxy(t, v, ("fresh", weakref.ref(t)), known=True)
        else:  # from outside: an input read by reference
            name = self.capture_names.get(id(t), "")
            v = Value(self.names.user(name) if name else self.names.user(f"cap{len(self.inputs)}"),
                      t._data.shape, t.dtype, _strides_of(t._data), kind="input", requires_grad=t._requires_grad)
            self.inputs.append(v)
            self.sources.append(("capture", t))
            p = self._new_proxy(t, v, ("capture", t))
            if t._requires_grad:
                # backward inside the traced function must reach the real leaf's .grad
                p._accum = AccumulateGrad(t) if t.grad_fn is None else None
        self.real[id(t)] = (t, p)
        self.real_by_mem[mem] = p
        return p

    def value_of(self, t: Tensor) -> Value:
        p = self.proxy(t)
        s = p._sym
        st = s.storage
        if st is not None and not s.frozen and s.version != st.version:
            self._refresh(p)
        return s.value

    def _refresh(self, p: SymbolicTensor) -> None:
        """A write into p's memory happened since p's value was made: read it again."""
        s = p._sym
        st = s.storage
        if s.is_base:
            s.value = st.value
        else:
            from ..ops import movement as M, index as I

            pos = _positions(st.array, p._data)
            with grad_mode.no_grad():
                base = self._tensor_for(st.value, st.array)
                flat = M.reshape(base, (-1,))
                got = I.getitem(flat, pos.reshape(-1))
                s.value = self.value_of(M.reshape(got, tuple(p.shape)))
        s.version = st.version

    def _tensor_for(self, value: Value, like: np.ndarray) -> SymbolicTensor:
        """A standalone symbolic tensor for a value (not tied to any storage)."""
        if value.kind == "const" and value.data is not None:
            arr = value.data
        else:
            arr = stand_in(value.shape, value.strides, like.dtype if like is not None else value.dtype.np)
            self.standin_roots.add(id(_root(arr)))
        t = make_symbolic(arr, value.dtype, Sym(value, Storage(value, arr), True))
        self.symbolic.append(t)
        return t

    # ---- recording ops ---------------------------------------------------------------------
    def record(self, op, args, attrs, dtype, compute):
        given = (dtype is not None, compute is not None)
        sargs, vargs = [], []
        for a in args:
            if isinstance(a, Tensor):
                p = self.proxy(a)
                sargs.append(p)
                vargs.append(self.value_of(p))
            elif type(a) is list or type(a) is tuple:
                ps = [self.proxy(x) if isinstance(x, Tensor) else x for x in a]
                sargs.append(type(a)(ps))
                vargs.append(type(a)(self.value_of(x) if isinstance(x, Tensor) else x for x in ps))
            else:
                sargs.append(a)
                vargs.append(a)
        sargs = tuple(sargs)
        if dtype is None:
            dtype = op.dtype(sargs, attrs) if op.dtype is not None else dispatch._first_dtype(sargs)
        if compute is None and op.cast_inputs:
            compute = dtype
        self._check_attrs(attrs)
        folded = self._fold(op, sargs, vargs, attrs, dtype, compute, given)
        if folded is not None:
            return folded
        try:
            kind, res = meta.infer(op, sargs, attrs, dtype, compute)
        except meta.DataDependentShape:
            f = user_frame(2)
            where = describe_frame(f) if f is not None else ""
            raise DataDependentError(
                f"the size of {op.name}'s result depends on the values of its inputs, but tracing sees only "
                f"shapes and dtypes:\n{where}\nMove this op out of the compiled function (or use a "
                "fixed-size formulation such as where/masked_fill).") from None
        loc = self.cur_loc if self.cur_loc is not None else user_loc(3)
        node = Node(op, tuple(vargs), dict(attrs), dtype, compute, given, loc=loc, phase=self.phase)
        outs = []
        for i, r in enumerate(res):
            if kind == "view":
                src = sargs[0]
                v = Value(self.names.new(), r.shape, src.dtype, _strides_of(r), node=node, index=i,
                          base=vargs[0], offset=(_ptr(r) - _ptr(src._data)) // max(r.itemsize, 1))
                ss = src._sym
                sym = Sym(v, ss.storage, False)
                t = make_symbolic(r, src.dtype, sym)
                t._base = src._base if src._base is not None else src
                t._vc = src._vc
            else:
                shape, strides = r
                dt = dtype[i] if isinstance(dtype, tuple) else dtype
                v = Value(self.names.new(), shape, dt, strides, node=node, index=i)
                arr = stand_in(shape, v.strides, dt.np)
                self.standin_roots.add(id(_root(arr)))
                t = make_symbolic(arr, dt, Sym(v, Storage(v, arr), True))
            node.outputs.append(v)
            self.symbolic.append(t)
            outs.append(t)
        self.nodes.append(node)
        outs = tuple(outs)
        if _grad["enabled"] and op.vjp is not None:
            dispatch._record_grad(op, sargs, attrs, outs)
            fn = outs[0].grad_fn if outs else None
            if fn is not None and fn._vjp is op.vjp:
                fn._vjp = self._located(op.vjp, loc)
        for t in outs:
            t._sym.value.requires_grad = t._requires_grad
        return outs[0] if op.nout == 1 else outs

    def _fold(self, op, sargs, vargs, attrs, dtype, compute, given):
        """An op on constants only runs now: its result is a constant too (masks, index arrays)."""
        from .graph import iter_values, run_node
        from .passes.fold import MAX_FOLDED

        ins = list(iter_values(vargs))
        if not ins or any(v.kind != "const" or v.data is None for v in ins) or op.kind == "random":
            return None
        if any(isinstance(a, Tensor) and a._requires_grad for a in sargs):
            return None
        node = Node(op, tuple(vargs), dict(attrs), dtype, compute, given)
        probe = meta.infer(op, sargs, attrs, dtype, compute)
        biggest = max(v.numel() for v in ins)
        sizes = [r.size if probe[0] == "view" else int(np.prod(r[0])) for r in probe[1]]
        if any(n > max(biggest, MAX_FOLDED) for n in sizes):
            return None
        dts = dtype if isinstance(dtype, tuple) else None
        for i in range(len(probe[1])):
            src = sargs[0] if op.kind == "view" else None
            dt = src.dtype if src is not None else (dts[i] if dts else dtype)
            node.outputs.append(Value("", (), dt))
        arrays = run_node(node, [v.data for v in ins])
        outs = []
        for arr, o in zip(arrays, node.outputs):
            v = Value(self.names.new("c"), arr.shape, o.dtype, _strides_of(arr), kind="const", data=arr)
            if op.kind == "view":  # a view of a constant shares its memory: writes must reach both
                src = sargs[0]
                t = make_symbolic(arr, o.dtype, Sym(v, src._sym.storage, False))
                t._base = src._base if src._base is not None else src
                t._vc = src._vc
            else:
                t = make_symbolic(arr, o.dtype, Sym(v, Storage(v, arr), True))
            self.symbolic.append(t)
            outs.append(t)
        return outs[0] if op.nout == 1 else tuple(outs)

    def _located(self, vjp, loc):
        def run(ctx, saved, *grads):
            prev = self.cur_loc
            self.cur_loc = loc
            try:
                return vjp(ctx, saved, *grads)
            finally:
                self.cur_loc = prev

        return run

    def _check_attrs(self, attrs) -> None:
        for a in attrs.values():
            self._check_attr(a)

    def _check_attr(self, a) -> None:
        if isinstance(a, np.ndarray):
            fill = SENTINEL.get(a.dtype)
            if id(_root(a)) in self.standin_roots or (fill is not None and a.size and (a == fill).any()):
                f = user_frame(2)
                where = describe_frame(f) if f is not None else ""
                raise DataDependentError(
                    "indexing with a traced tensor (a mask or integer index) needs its values, but tracing sees "
                    f"only shapes and dtypes:\n{where}\nUse gather/index_select/where with the tensor instead, "
                    "or move this indexing out of the compiled function.")
        elif type(a) is tuple or type(a) is list:
            for x in a:
                self._check_attr(x)

    # ---- in-place writes (called by ops.inplace._write) -----------------------------------------
    def write(self, dst: Tensor, r: Tensor) -> None:
        from ..ops import movement as M, index as I
        from ..ops.pointwise import to_dtype

        p = self.proxy(dst)
        if p._sym.frozen or p._sym.storage is None:
            # a snapshot or an adopted value: give it memory of its own from now on
            st = Storage(self.value_of(p), p._data)
            p._sym = Sym(p._sym.value, st, True)
        with grad_mode.no_grad():
            new = self.proxy(r) if isinstance(r, Tensor) else r
            if new.dtype is not p.dtype:
                new = to_dtype(new, p.dtype)
            if tuple(new.shape) != tuple(p.shape):
                new = M.expand(new, tuple(p.shape))
            newval = self.value_of(new)
            st = p._sym.storage
            if p._sym.is_base:
                st.value = newval
            else:
                pos = _positions(st.array, p._data)
                base = self._tensor_for(self._storage_value(st), st.array)
                flat = M.reshape(base, (-1,))
                upd = I.index_put(flat, (pos.reshape(-1),), M.reshape(new, (-1,)))
                st.value = self.value_of(M.reshape(upd, st.base_shape))
            st.version += 1
            st.mutated = True
            p._sym.value = newval
            p._sym.version = st.version
        p._vc[0] += 1

    def _storage_value(self, st: Storage) -> Value:
        return st.value

    # ---- .grad (called by autograd's accumulation and Tensor.grad's setter) ------------------------
    def touch_grad(self, t: Tensor) -> None:
        if id(t) not in self.grad_touched:
            self.grad_touched[id(t)] = (t, t._grad)

    def accumulate(self, var: Tensor, g: Tensor, create_graph: bool) -> None:
        """AccumulateGrad while tracing: the leaf's .grad becomes a traced value."""
        if var._sym is not None and var._sym.storage is not None and var.grad_fn is not None:
            raise NotImplementedError("backward() inside a compiled function reached a tensor computed outside "
                                      "it; compile the whole computation or call backward outside")
        self.touch_grad(var)
        old = var._grad
        if old is None:
            if g.dtype is not var.dtype:
                g = g.to(var.dtype)
            if create_graph:
                var._grad = g
            else:
                with grad_mode.no_grad():
                    var._grad = g.detach().clone()
        elif create_graph or old._requires_grad:
            var._grad = old + g
        else:
            with grad_mode.no_grad():
                old.add_(g.to(old.dtype) if g.dtype is not old.dtype else g)

    def made(self, t: Tensor) -> None:
        """A factory made `t` while tracing: it is a constant of the graph."""
        self.fresh[id(t)] = t

    def random_used(self) -> None:
        f = user_frame(3)
        where = describe_frame(f) if f is not None else ""
        raise DataDependentError(
            "random numbers (rand, randn, dropout in training mode, ...) inside a traced function would be drawn "
            f"once and frozen into the graph:\n{where}\nDraw them outside and pass them in, or call model.eval().")


def _positions(base: np.ndarray, view: np.ndarray) -> np.ndarray:
    """For each element of `view`, its flat (row-major) index in `base` (same memory)."""
    item = base.itemsize
    start = (_ptr(view) - _ptr(base)) // item

    def offsets(a, first):
        pos = np.full(a.shape, first, dtype=np.int64)
        for d, (n, s) in enumerate(zip(a.shape, a.strides)):
            shape = [1] * a.ndim
            shape[d] = n
            pos = pos + (np.arange(n, dtype=np.int64) * (s // item)).reshape(shape)
        return pos

    bpos = offsets(base, 0).reshape(-1)
    vpos = offsets(view, start)
    order = np.argsort(bpos, kind="stable")
    return order[np.searchsorted(bpos[order], vpos)]


# ==================================================================================================
# capture: trace a call, build the joint forward+backward graph and the list of effects
# ==================================================================================================
class Capture:
    """The result of tracing one call.

    graph      the joint graph: inputs are the primal inputs then the tangents (one per
               output that requires grad); outputs are, in order, the user's output
               values, the effect values, then the gradients of `grad_inputs`.
    sources    per graph input where its tensor comes from at call time.
    outputs    per leaf of the function's result: ("value", k) graph output k,
               ("arg", i) the i-th argument itself, or ("object", x) a Python object
               (a tensor from outside included) returned as is.
    effects    what the call does besides returning: ("write", source, k) copies output
               k into a tensor from outside; ("grad", source, k|None) sets its .grad;
               ("grad_obj", source, obj); ("realize", obj, k) makes a leaked symbolic
               tensor real.
    """

    def __init__(self):
        self.graph: Graph | None = None
        self.sources: list = []
        self.out_spec = None
        self.outputs: list = []
        self.n_user = 0
        self.out_requires_grad: list = []
        # per output value: None, or for an alias of an input (x.detach(), x.data) whether it shares the
        # input's version counter: the call returns a new tensor over the input's memory, not the input
        self.out_alias: list = []
        self.effects: list = []
        self.n_effect_values = 0
        self.grad_inputs: list[int] = []  # indices into graph.inputs
        self.grad_present: list[bool] = []
        self.tangent_of: list[int] = []  # per tangent: which user output value it is the grad of
        self.backward_error: str | None = None
        self.cacheable = True
        self.leaked: list = []
        self.n_primals = 0


def capture(fn: Callable, args: tuple, kwargs: dict, *, backward: bool = True, arg_names=None,
            capture_names: dict | None = None, name: str = "forward") -> Capture:
    """Trace `fn(*args, **kwargs)`. With `backward`, also trace the gradient of every output
    that requires grad (w.r.t. every input that does)."""
    tr = Tracer(capture_names)
    cap = Capture()
    prev = dispatch.TRACER[0]
    dispatch.TRACER[0] = tr
    try:
        out_vals, out_tensors = _run_forward(tr, cap, fn, args, kwargs, arg_names)
        cap.n_primals = len(tr.inputs)
        grads: list = []
        tangents: list = []
        if backward and _grad["enabled"] and any(cap.out_requires_grad):
            grads, tangents = _trace_backward(tr, cap, out_tensors)
        effects, effect_vals = _finish_effects(tr, cap)
    except BaseException:
        for t, orig in tr.grad_touched.values():  # a failed trace leaves real tensors' .grad as it found them
            if t._sym is None:
                t._grad = orig
        raise
    finally:
        dispatch.TRACER[0] = prev
    cap.n_user = len(out_vals)
    cap.sources = list(tr.sources)
    for t in _find_leaks(tr, out_tensors, tangents):
        effects.append(("realize", t, len(effect_vals)))
        effect_vals.append(t._sym.value)
        cap.leaked.append(t)
        cap.cacheable = False
    cap.effects = effects
    cap.n_effect_values = len(effect_vals)
    grad_vals = [v for v in grads if v is not None]
    cap.grad_present = [v is not None for v in grads]
    g = Graph(name, list(tr.inputs), list(tr.nodes), out_vals + effect_vals + grad_vals)
    g.output_names = ([f"out{i}" for i in range(len(out_vals))] + [f"effect{i}" for i in range(len(effect_vals))]
                      + [f"grad_{tr.inputs[i].name}" for i, v in zip(cap.grad_inputs, grads) if v is not None])
    cap.graph = g
    return cap


def _run_forward(tr: Tracer, cap: Capture, fn, args, kwargs, arg_names):
    """Call fn on proxies of its tensor arguments; returns the output values and tensors."""
    leaves, spec = pytree.flatten((tuple(args), dict(kwargs)))
    names = _arg_names(fn, args, kwargs, leaves) if arg_names is None else arg_names
    sym_leaves = []
    seen: dict = {}  # the same tensor passed twice is one input (a write through one shows in the other)
    for i, x in enumerate(leaves):
        if isinstance(x, Tensor):
            if x._sym is not None:
                raise RuntimeError("tracegrad.trace: an argument is already a traced tensor")
            if id(x) not in seen:
                seen[id(x)] = tr.add_input(x, ("arg", i), names[i])
            sym_leaves.append(seen[id(x)])
        else:
            sym_leaves.append(x)
    sargs, skwargs = pytree.unflatten(spec, sym_leaves)
    out_leaves, cap.out_spec = pytree.flatten(fn(*sargs, **skwargs))
    out_vals: list = []
    out_tensors: list = []
    index_of: dict = {}
    arg_of = {}  # id(proxy) -> the first argument position it stands for
    for i, x in enumerate(leaves):
        if isinstance(x, Tensor) and id(seen[id(x)]) not in arg_of:
            arg_of[id(seen[id(x)])] = i
    for x in out_leaves:
        if isinstance(x, Tensor) and id(x) in arg_of:  # an argument returned (perhaps changed in place): itself
            cap.outputs.append(("arg", arg_of[id(x)]))
        elif isinstance(x, Tensor) and x._sym is None and id(x) not in tr.fresh:  # a tensor from outside: itself
            cap.outputs.append(("object", x))
        elif isinstance(x, Tensor):
            p = tr.proxy(x)
            if id(p) not in index_of:
                index_of[id(p)] = len(out_vals)
                v = tr.value_of(p)
                out_vals.append(v)
                out_tensors.append(p)
                own = tr.own_proxy.get(id(v)) if v.kind == "input" else None
                cap.out_alias.append(None if own is None or own[0] == id(p) else p._vc is own[1])
            cap.outputs.append(("value", index_of[id(p)]))
        else:
            cap.outputs.append(("object", x))
    cap.out_requires_grad = [t._requires_grad for t in out_tensors]
    return out_vals, out_tensors


def _arg_names(fn, args, kwargs, leaves) -> list:
    """A readable name for each flattened argument: the parameter names of fn when possible."""
    names = []
    target = getattr(fn, "module", fn)  # compile(model) traces a wrapper of the module's call
    if _is_module(target):
        target = target.forward
    try:
        params = list(inspect.signature(target).parameters.values())
    except (TypeError, ValueError):
        params = []
    pos_names = [p.name for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    var = next((p.name for p in params if p.kind is p.VAR_POSITIONAL), "arg")
    for i, a in enumerate(args):
        base = pos_names[i] if i < len(pos_names) else f"{var}{i}"
        n = len(pytree.flatten(a)[0])
        names += [base] if n == 1 else [f"{base}_{k}" for k in range(n)]
    for k, a in kwargs.items():
        n = len(pytree.flatten(a)[0])
        names += [k] if n == 1 else [f"{k}_{j}" for j in range(n)]
    return names


def _trace_backward(tr: Tracer, cap: Capture, out_tensors: list):
    """Run the autograd engine on the symbolic outputs: the vjps record the backward graph."""
    from ..autograd import engine

    tr.phase = "backward"
    diff = [i for i, r in enumerate(cap.out_requires_grad) if r]
    roots = [out_tensors[i] for i in diff]
    tangents = []
    for k, i in enumerate(diff):
        o = roots[k]
        v = Value(tr.names.user(f"grad_out{i}"), o.shape, o.dtype, contiguous_strides(o.shape), kind="input")
        tr.inputs.append(v)
        tr.sources.append(("tangent", k))
        arr = stand_in(v.shape, v.strides, o._data.dtype)
        tr.standin_roots.add(id(_root(arr)))
        t = make_symbolic(arr, o.dtype, Sym(v, Storage(v, arr), True))
        tr.symbolic.append(t)
        tangents.append(t)
    cap.tangent_of = diff
    grad_inputs = [i for i in range(cap.n_primals) if tr.inputs[i].requires_grad
                   and tr.sources[i][0] in ("arg", "capture")]
    leaves = []
    for i in grad_inputs:
        src = tr.sources[i]
        if src[0] == "arg":
            leaves.append(tr.input_proxy[i])
        else:
            leaves.append(tr.real[id(src[1])][1])
    cap.grad_inputs = grad_inputs
    if not leaves:
        return [], tangents
    try:
        res = engine.run_backward(roots, tangents, retain_graph=True, create_graph=False, inputs=leaves,
                                  allow_unused=True)
    except (RuntimeError, NotImplementedError) as e:
        # eagerly this error would come from backward(), not from the call: keep it for then
        cap.backward_error = (type(e), e.args)  # not the exception: its traceback holds the trace's frames
        cap.grad_inputs = []
        return [], tangents
    finally:
        tr.phase = "forward"
    return [tr.value_of(g) if g is not None else None for g in res], tangents


def _finish_effects(tr: Tracer, cap: Capture):
    """Undo the trace's changes to real tensors' .grad and list what the call must do instead."""
    effects, vals = [], []

    def target_of(t):
        s = t._sym
        if s is not None:
            st = s.storage
            if st is not None and s.is_base and st.owner is not None and st.owner[0] in ("arg", "arg_grad"):
                return st.owner
            return None
        return ("capture", t)

    for t, orig in list(tr.grad_touched.values()):
        final = t._grad
        if t._sym is None:
            t._grad = orig  # the trace must leave real tensors as it found them
        tgt = target_of(t)
        if tgt is None or final is orig:
            continue
        if final is None:
            effects.append(("grad", tgt, None))
        elif final._sym is not None:
            effects.append(("grad", tgt, len(vals)))
            vals.append(tr.value_of(final))
        else:
            effects.append(("grad_obj", tgt, final))
    for st in tr.storages:
        if not st.mutated:
            continue
        owner = st.owner
        if owner[0] == "fresh":
            obj = owner[1]()
            if obj is None:
                continue
            effects.append(("write", ("capture", obj), len(vals)))
            cap.cacheable = False  # the function made a tensor that outlives it: Python state changed
        else:
            effects.append(("write", owner, len(vals)))
        vals.append(st.value)
    return effects, vals


def _find_leaks(tr: Tracer, out_tensors, tangents) -> list:
    """Symbolic tensors still referenced after the trace were stored somewhere by the function
    (an optimizer's new state, a cache): they are returned so the call can make them real."""
    # the autograd nodes of the trace hold symbolic tensors (and some hold themselves): take them apart
    stack = [t.grad_fn for t in tr.symbolic if t.grad_fn is not None]
    stack += [t._accum for t in tr.symbolic if t._accum is not None]
    seen: set = set()
    while stack:
        n = stack.pop()
        if n is None or id(n) in seen:
            continue
        seen.add(id(n))
        stack.extend(e[0] for e in getattr(n, "_edges", None) or getattr(n, "next_functions", ()) or ())
        for attr in ("_saved", "_saved_src", "_edges", "next_functions"):
            if hasattr(n, attr):
                setattr(n, attr, ())
        n.ctx = None
        n._vjp = None
        if isinstance(n, AccumulateGrad):
            n.variable = None
    refs = []
    for t in tr.symbolic:
        t.grad_fn = None  # break the cycles tensor <-> node, so only outside references keep one alive
        t._accum = None
        t._grad = None
        t._base = None
        refs.append(weakref.ref(t))
    # the loop variable would keep the last symbolic tensor alive (a false leak, when that is an input
    # returned as is: `lambda x: x` was traced again at every call)
    t = None
    tr.symbolic.clear()
    tr.real.clear()
    tr.input_proxy.clear()
    tr.fresh.clear()
    tr.real_by_mem.clear()
    tr.grad_touched.clear()
    out_tensors.clear()
    tangents.clear()
    leaked = []
    for r in refs:
        t = r()
        if t is not None:
            leaked.append(t)
    return leaked


# ==================================================================================================
# tracegrad.trace
# ==================================================================================================
def trace(fn: Callable, *example_inputs, **kwargs) -> Graph:
    """Trace `fn` on symbolic stand-ins of `example_inputs`; returns the forward Graph.

    The graph prints as a Python program; `graph.as_function()` runs it. Module
    calls trace through (their parameters become graph inputs, named after the
    parameters). When inputs require grad, the backward graph is in
    `graph.meta["backward"]`. This is the graph as traced (before optimisation);
    `tracegrad.explain` shows the optimised, partitioned and fused stages."""
    from .partition import split_joint

    names = None
    if _is_module(fn):
        names = {id(p): n for n, p in fn.named_parameters()}
        if hasattr(fn, "named_buffers"):
            names.update({id(b): n for n, b in fn.named_buffers()})
    cap = capture(fn, example_inputs, kwargs, backward=True, capture_names=names,
                  name=getattr(fn, "__name__", type(fn).__name__))
    fwd, bwd = split_joint(cap, optimize=False)
    if bwd is not None:
        fwd.meta["backward"] = bwd
    return fwd


def _is_module(obj) -> bool:
    return callable(obj) and hasattr(obj, "named_parameters") and hasattr(obj, "forward")
