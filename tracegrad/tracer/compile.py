"""tracegrad.compile: trace once per input signature, run generated programs after.

    step = tracegrad.compile(step)          # or @tracegrad.compile, or compile(model)
    loss = step(x, y)                       # traced, optimised, fused, generated, run
    loss = step(x2, y2)                     # same signature: the cached program runs

The cache key of a call is its signature: grad mode, and for every tensor
argument its dtype, shape, strides (None when contiguous), requires_grad,
whether its .grad is set, and device; other arguments by value. Tensors the function
reaches without being passed (parameters, closures) are guarded the same way.
A new signature is traced again (TRACEGRAD_DEBUG says which part changed); an
entry is never used for another signature.

A cached entry holds a forward program and, when the outputs need gradients, a
backward program. Running the forward gives the outputs one grad_fn,
`CompiledFunctionBackward`, which runs the backward program on the values the
forward saved, so `loss.backward()` joins eager autograd there.

What a traced function may do, and what tracing cannot see:
  - Python control flow on shapes, dtypes and other Python values is fine and is
    specialised (a new value of a non-tensor argument is a new signature). Control
    flow on tensor *values* raises DataDependentError naming the line.
  - In-place writes into arguments, into tensors it reaches (parameters, an
    optimizer's buffers) and their `.grad`, and `backward()` inside the function,
    are replayed by every call. Tensors over the same memory (`w.data`,
    `w.detach()`) are one value; partial views of an outside tensor taken outside
    the function are separate values.
  - A tensor the function makes and keeps (an optimizer's first-step state) is
    made real after the call, and that call is not cached: the next call traces
    again, now that the state exists. Python state that is not a tensor (a step
    counter kept as an int) is frozen at its traced value.
  - rand, randn and dropout draw at every call, from the default generator, the
    numbers eager mode draws; other random functions are an error (they would be
    frozen into the graph).
  - A program reuses its scratch buffers from call to call: one compiled function
    must not run in two threads at once.

Backends: a backend turns (graph, fusion plan) into a callable on arrays with
`.kernels`. `BACKENDS` maps a name to a module with
`compile_graph(graph, plan, *, debug, name) -> Program`; "numpy" is built in,
"triton" is looked up in `tracegrad.kernels.triton` when asked for.
"""
from __future__ import annotations

import functools
import importlib
import warnings
from typing import Callable

import numpy as np

from .. import dtypes as D
from ..autograd import grad_mode
from ..autograd.engine import _accumulator
from ..autograd.node import Node
from ..tensor import Tensor
from .. import dispatch
from . import debug, pytree
from .partition import partition
from .passes.fusion import fuse
from .trace import capture

_grad = grad_mode._state

BACKENDS: dict = {"numpy": "tracegrad.kernels.numpy_backend", "triton": "tracegrad.kernels.triton.backend"}


def get_backend(name: str):
    if name in ("inductor", "default", None):
        name = "numpy"
    mod = BACKENDS.get(name)
    if mod is None:
        raise ValueError(f"tracegrad.compile: unknown backend {name!r}; known: {', '.join(BACKENDS)}")
    if isinstance(mod, str):
        try:
            mod = importlib.import_module(mod)
        except ImportError as e:
            raise RuntimeError(f"tracegrad.compile: backend {name!r} is not available ({e})") from None
    return mod


# ---- the backward node ---------------------------------------------------------------------------
class CompiledFunctionBackward(Node):
    """The one autograd node of a compiled call: runs the compiled backward program."""

    __slots__ = ()
    _plain = False  # its own release(): the engine must call it, to drop the saved arrays

    def release(self):
        Node.release(self)
        if self.ctx is not None and self.ctx[1]:
            self._freed = True
            self.ctx = (self.ctx[0], ())


def _backward_vjp(ctx, saved, *grads):
    entry, arrays = ctx
    if entry.bwd is None and entry.backward_error is not None:
        kind, args = entry.backward_error
        raise kind(*args)
    if _grad["enabled"]:
        raise RuntimeError("tracegrad.compile: double backward (create_graph=True) through a compiled function "
                           "is not supported; call the function without compile to differentiate twice")
    by_output = dict(zip(entry.node_outputs, grads))
    gs = []
    for k, (shape, dt) in zip(entry.tangent_of, entry.tangent_meta):
        g = by_output.get(k)
        if g is None:  # an output whose gradient never arrived (or an input returned as is)
            gs.append(np.zeros(shape, dt.np))
            continue
        if g.dtype is not dt:
            g = g.to(dt)
        gs.append(g._data)
    res = entry.bwd(*arrays, *gs)
    return tuple(Tensor._make(r, dt) for r, dt in zip(res, entry.grad_dtypes))


def _edge(t: Tensor):
    if not t._requires_grad:
        return (None, 0)
    if t.grad_fn is not None:
        return (t.grad_fn, t._output_nr)
    return (_accumulator(t), 0)


# ---- one compiled signature ------------------------------------------------------------------------
class EagerFallback(RuntimeError):
    """A call the generated programs cannot reproduce; compile() runs the function eagerly for
    that signature instead (and says why, once), explain() raises it."""


class _EagerEntry:
    """The cache entry of a signature that runs eagerly (see EagerFallback)."""

    guards = ()

    def __init__(self, reason: str):
        self.reason = reason


def _overlapping(t) -> bool:
    """Whether several elements of t share one memory location (an expand()ed tensor)."""
    d = t._data
    return d.size > 1 and any(s == 0 and n > 1 for n, s in zip(d.shape, d.strides))


def _eager_reason(cap, args, kwargs) -> str | None:
    """Why the programs for this capture would give other results than eager mode, if they would."""
    leaves = None
    for kind, target, _ in cap.effects:
        if kind != "write":
            continue
        if target[0] == "capture":
            t = target[1]
        elif target[0] == "arg":
            if leaves is None:
                leaves = pytree.flatten((tuple(args), dict(kwargs)))[0]
            t = leaves[target[1]]
        else:
            continue
        if _overlapping(t):
            # tracing sees each element of an expanded input as its own value; a write into part of it
            # changes every element over that memory location eagerly, which the write-back cannot
            return (f"it writes in place into an input whose elements share memory (shape {tuple(t.shape)}, "
                    f"strides {t.stride()}: an expand()ed tensor)")
    return None


class Entry:
    """The programs and bookkeeping for one input signature."""

    def __init__(self, cap, split, fwd, bwd, backend_name: str):
        self.cap = cap
        self.split = split
        self.fwd = fwd
        self.bwd = bwd
        self.backend = backend_name
        F = split.forward
        # forward program parameters: the primal inputs it reads, by where they come from
        idx = {id(v): i for i, v in enumerate(cap.graph.inputs)}
        self.fwd_sources = [cap.sources[idx[id(v)]] for v in F.inputs]
        self.n_user = cap.n_user
        self.n_eff = cap.n_effect_values
        self.out_values = F.outputs[: cap.n_user]
        self.out_dtypes = [v.dtype for v in self.out_values]
        self.out_input = []  # per user output: the input source it *is* (returned unchanged), or None
        self.out_alias = list(cap.out_alias)  # per user output: None, or it is x.detach()/x.data of that input
        self.out_base = []  # per user output: the input source whose memory it views, or None
        in_src = {id(v): s for v, s in zip(F.inputs, self.fwd_sources)}
        roots = _view_roots(F)
        for v in self.out_values:
            self.out_input.append(in_src.get(id(v)))
            r = roots.get(id(v))
            self.out_base.append(in_src.get(id(r)) if r is not None and r is not v else None)
        self.effects = cap.effects
        self.guards = _guards(cap.sources)
        self.backward_error = cap.backward_error
        self.requires_grad = list(cap.out_requires_grad)
        # the outputs that get the node (an input returned as is keeps its own history)
        self.node_outputs = [k for k, r in enumerate(self.requires_grad) if r and self.out_input[k] is None]
        self.node_meta = [(self.out_values[k].shape, self.out_dtypes[k]) for k in self.node_outputs]
        self.tangent_of = list(cap.tangent_of)
        B = split.backward
        if B is not None:
            n_saved = len(split.saved)
            self.tangent_meta = [(v.shape, v.dtype) for v in B.inputs[n_saved:]]
            self.grad_dtypes = [v.dtype for v in B.outputs]
            present = [i for i, p in zip(cap.grad_inputs, cap.grad_present) if p]
            self.grad_sources = [cap.sources[i] for i in present]
            # saved values that are (views of) inputs: the node checks those inputs' versions
            saved_in = []
            written = {_source_key(t) for kind, t, _ in cap.effects if kind == "write"}
            self.saved_copy = []  # saved values over the memory of an input this very call writes into
            for j, v in enumerate(split.saved):
                r = roots.get(id(v), v)
                s = in_src.get(id(r))
                if s is not None and _source_key(s) in written:
                    # the write-back replaces that memory after the forward: keep a copy of the value read
                    # (eagerly nothing saved it, so this call's own write must not fail the backward)
                    self.saved_copy.append(j)
                elif s is not None and s not in saved_in:
                    saved_in.append(s)
            self.saved_inputs = saved_in
            # outputs whose memory is saved too: an in-place change to one must fail at backward, as eagerly
            out_roots = {id(roots.get(id(v), v)): k for k, v in enumerate(self.out_values)}
            self.saved_outputs = sorted({out_roots[id(roots.get(id(v), v))] for v in split.saved
                                         if id(roots.get(id(v), v)) in out_roots})
            self.n_saved = n_saved
        else:
            self.tangent_meta = []
            self.grad_sources = []
            self.saved_inputs = []
            self.saved_outputs = []
            self.saved_copy = []
            self.n_saved = 0

    def guards_ok(self) -> bool:
        for t, dt, shape, strides, rg, gn in self.guards:
            d = t._data
            if d.shape != shape or t.dtype is not dt or (None if d.flags.c_contiguous else d.strides) != strides \
                    or t._requires_grad != rg or (t._grad is None) != gn:
                return False
        return True

    def run(self, leaves: list) -> list:
        def resolve(src):
            k = src[0]
            if k == "arg":
                return leaves[src[1]]
            if k == "capture":
                return src[1]
            if k == "arg_grad":
                return leaves[src[1]]._grad
            raise AssertionError(src)

        arrays = [resolve(s)._data for s in self.fwd_sources]
        outs = self.fwd(*arrays)
        n_user, n_eff = self.n_user, self.n_eff
        results = []
        seen = set()
        for k in range(n_user):
            src = self.out_input[k]
            if src is not None:
                t = resolve(src)
                share = self.out_alias[k]
                if share is not None:  # x.detach() / x.data: a new tensor over x's memory, as eagerly
                    a = Tensor._make(t._data, t.dtype)
                    if share:
                        a._vc = t._vc
                    t = a
                results.append(t)
                continue
            arr = outs[k]
            if id(arr) in seen:
                arr = arr.copy()
            seen.add(id(arr))
            t = Tensor._make(arr, self.out_dtypes[k])
            b = self.out_base[k]
            if b is not None:
                base = resolve(b)
                t._base = base._base if base._base is not None else base
                t._vc = base._vc
            results.append(t)
        if self.requires_grad and _grad["enabled"] and any(self.requires_grad):
            # before the effects: the node records the versions of the inputs it reads, so a write
            # into one of them (an effect of this very call) is caught at backward, as eagerly
            saved = outs[n_user + n_eff:]
            if self.saved_copy:
                saved = list(saved)
                for j in self.saved_copy:
                    saved[j] = np.array(saved[j], copy=True)
            self._attach(results, saved, resolve)
        if self.effects:
            self._apply_effects(outs[n_user:n_user + n_eff], resolve)
        return results

    def _apply_effects(self, vals, resolve) -> None:
        for kind, target, k in self.effects:
            if kind == "write":
                t = resolve(target)
                arr = vals[k]
                if arr is t._data:  # the program computed it in place
                    pass
                elif t._data.shape == arr.shape:
                    t._data[...] = arr
                else:
                    t._data = np.array(arr, copy=True)
                t._vc[0] += 1
            elif kind == "grad":
                t = resolve(target)
                t._grad = None if k is None else Tensor._make(vals[k], t.dtype)
            elif kind == "grad_obj":
                resolve(target)._grad = k
            elif kind == "realize":
                obj = target
                arr = vals[k]
                obj.__class__ = Tensor
                obj._data = arr
                obj._sym = None
                obj.grad_fn = None
                obj._requires_grad = False

    def _attach(self, results, saved_arrays, resolve) -> None:
        need = self.node_outputs
        if not need:
            return
        if self.bwd is None:
            if self.backward_error is None:
                return
            # tracing the backward failed the way backward() would fail eagerly: fail then
            node = CompiledFunctionBackward(_backward_vjp, (), (), (self, ()), len(need))
        else:
            edges = tuple(_edge(resolve(s)) for s in self.grad_sources)
            saved_t = tuple(resolve(s) for s in self.saved_inputs) + tuple(results[k] for k in self.saved_outputs)
            node = CompiledFunctionBackward(_backward_vjp, edges, saved_t, (self, tuple(saved_arrays)), len(need))
        if len(need) > 1:
            node._out_meta = self.node_meta
        for j, k in enumerate(need):
            t = results[k]
            t.grad_fn = node
            t._output_nr = j
            t._requires_grad = True


def _view_roots(g) -> dict:
    roots = {}
    for v in g.inputs:
        roots[id(v)] = v
    for n in g.nodes:
        src = next(n.inputs(), None) if n.op.kind == "view" else None
        for o in n.outputs:
            roots[id(o)] = roots.get(id(src), src) if src is not None else o
    return roots


def _guards(sources) -> list:
    out = []
    for s in sources:
        if s[0] == "capture":
            t = s[1]
            d = t._data
            out.append((t, t.dtype, d.shape, None if d.flags.c_contiguous else d.strides, t._requires_grad,
                        t._grad is None))
    return out


# ---- the compiled callable -----------------------------------------------------------------------
def _static_key(a):
    t = type(a)
    if t is int or t is float or t is bool or t is str or a is None:
        return ("s", t.__name__, a)
    if isinstance(a, Tensor):
        d = a._data
        return (a.dtype, d.shape, None if d.flags.c_contiguous else d.strides, a._requires_grad, a._grad is None,
                a.device)
    if t is tuple or t is list:
        return ("seq", t.__name__) + tuple(_static_key(x) for x in a)
    if t is dict:
        return ("dict",) + tuple((k, _static_key(v)) for k, v in a.items())
    if isinstance(a, D.DType):
        return ("dtype", a.name)
    if isinstance(a, (np.integer, np.floating, np.bool_)):
        return ("s", type(a).__name__, a.item())
    return ("obj", id(a))


class CompiledFunction:
    """What tracegrad.compile returns for a function."""

    def __init__(self, fn: Callable, backend: str = "numpy", *, module=None, capture_names=None):
        self.fn = fn
        self.backend = backend
        self.module = module
        self.capture_names = capture_names
        self.cache: dict = {}
        self.recompiles = 0
        self._last_key = None
        self._free = _free_variables(fn)
        self._warned = False
        functools.update_wrapper(self, fn, updated=())

    def __get__(self, obj, objtype=None):
        if obj is None:
            return self
        return functools.partial(self.__call__, obj)

    def _key(self, args, kwargs) -> tuple:
        key = [_grad["enabled"]]
        for a in args:
            if isinstance(a, Tensor):
                d = a._data
                key.append((a.dtype, d.shape, None if d.flags.c_contiguous else d.strides, a._requires_grad,
                            a._grad is None, a.device))
            else:
                key.append(_static_key(a))
        if kwargs:
            for k in sorted(kwargs):
                key.append((k, _static_key(kwargs[k])))
        ids = [id(a) for a in args if isinstance(a, Tensor)]
        if len(set(ids)) != len(ids):  # the same tensor twice is traced as one input: another signature
            key.append(("same", tuple(ids.index(i) for i in ids)))
        if self.module is not None:
            key.append(("training", getattr(self.module, "training", None)))
        if self._free:
            # the tensors the function's closure cells and globals name now: rebinding one (w = w - lr * g)
            # is another signature, not the tensor captured by the last trace
            key.append(("free", tuple(id(v) if isinstance(v, Tensor) else None for v in _free_values(self._free))))
        return tuple(key)

    def __call__(self, *args, **kwargs):
        if dispatch.TRACER[0] is not None:  # inside another trace: trace through
            return self.fn(*args, **kwargs)
        key = self._key(args, kwargs)
        entries = self.cache.get(key)
        entry = None
        if entries is not None:
            for e in entries:
                if not e.guards or e.guards_ok():
                    entry = e
                    break
        if entry is None:
            entry = self._build(args, kwargs, key)
        if type(entry) is _EagerEntry:
            return self.fn(*args, **kwargs)
        if not kwargs and all(type(a) is not list and type(a) is not tuple and type(a) is not dict for a in args):
            leaves = args
        else:
            leaves = pytree.flatten((tuple(args), dict(kwargs)))[0]
        results = entry.run(leaves)
        out = [results[x] if kind == "value" else leaves[x] if kind == "arg" else x for kind, x in entry.cap.outputs]
        return pytree.unflatten(entry.cap.out_spec, out)

    def _build(self, args, kwargs, key) -> Entry:
        lvl = debug.level()
        name = getattr(self.fn, "__name__", type(self.fn).__name__)
        if self.cache or self._last_key is not None:
            self.recompiles += 1
            names = _arg_labels(self.fn, args)
            change = debug.describe_change(self._last_key, key, names)
            if lvl >= 1:
                debug.log(f"recompiling {name} (recompile #{self.recompiles}): {change}")
            if self.recompiles >= debug.RECOMPILE_LIMIT and not self._warned:
                self._warned = True
                warnings.warn(f"tracegrad.compile: {name} has been recompiled {self.recompiles} times; the last "
                              f"change: {change}. Each new input signature traces and compiles again.",
                              UserWarning, stacklevel=3)
        elif lvl >= 1:
            debug.log(f"compiling {name}")
        self._last_key = key
        try:
            entry = build_entry(self.fn, args, kwargs, backend=self.backend, capture_names=self.capture_names,
                                debug_level=lvl, name=name)
        except EagerFallback as e:
            # the trace ran the function's Python once on symbolic tensors only (its writes were undone),
            # so running it eagerly now is its one real run
            warnings.warn(f"tracegrad.compile: {name} runs eagerly for this input signature: {e}", UserWarning,
                          stacklevel=3)
            entry = _EagerEntry(str(e))
            self.cache.setdefault(key, []).append(entry)
            return entry
        if entry.cap.cacheable:
            if self._free:  # entries for tensors since rebound would only keep them alive: drop them
                for k in [k for k in self.cache if k[:-1] == key[:-1]]:
                    del self.cache[k]
            self.cache.setdefault(key, []).append(entry)
        return entry


def _free_variables(fn) -> list:
    """Where fn's code looks up names outside its arguments: (closure cell) or (globals dict, name)."""
    code = getattr(fn, "__code__", None)
    if code is None:
        return []
    out = [("cell", c) for c in (getattr(fn, "__closure__", None) or ())]
    g = getattr(fn, "__globals__", None)
    if g is not None:
        out += [("global", g, n) for n in code.co_names]  # (attribute names too: they hold no tensor)
    return out


def _free_values(free) -> list:
    vals = []
    for f in free:
        if f[0] == "cell":
            try:
                vals.append(f[1].cell_contents)
            except ValueError:  # an empty cell (a name assigned later)
                vals.append(None)
        else:
            vals.append(f[1].get(f[2]))
    return vals


def build_entry(fn, args, kwargs, *, backend: str = "numpy", capture_names=None, debug_level: int = 0,
                name: str = "fn") -> Entry:
    """Trace, optimise, partition, fuse and generate the programs for one call."""
    cap = capture(fn, args, kwargs, backward=True, capture_names=capture_names, name=name)
    reason = _eager_reason(cap, args, kwargs)
    if reason is not None:
        raise EagerFallback(f"the compiled program would not match eager mode: {reason}")
    split = partition(cap)
    be = get_backend(backend)
    F = split.forward
    # which outputs are written back into which inputs: a backend may compute them in place
    src_of = {}
    idx = {id(v): i for i, v in enumerate(cap.graph.inputs)}
    for v in F.inputs:
        src_of[_source_key(cap.sources[idx[id(v)]])] = v
    targets = {}
    for kind, target, k in cap.effects:
        if kind == "write" and _source_key(target) in src_of:
            v = F.outputs[cap.n_user + k]
            targets[id(v)] = (v, src_of[_source_key(target)])
    F.meta["write_targets"] = targets
    fplan = fuse(F)
    fwd = be.compile_graph(F, fplan, debug=debug_level, name="forward")
    bwd = bplan = None
    if split.backward is not None:
        B = split.backward
        bplan = fuse(B)
        bwd = be.compile_graph(B, bplan, debug=debug_level, name="backward")
    if debug_level >= 2:
        debug.log(f"generated forward program for {name}:\n{fwd.source}")
        if bwd is not None:
            debug.log(f"generated backward program for {name}:\n{bwd.source}")
    entry = Entry(cap, split, fwd, bwd, backend)
    entry.plans = (fplan, bplan)
    return entry


def _source_key(src):
    return (src[0], id(src[1])) if src[0] == "capture" else tuple(src)


def _arg_labels(fn, args) -> list:
    import inspect

    try:
        params = [p.name for p in inspect.signature(fn).parameters.values()]
    except (TypeError, ValueError):
        params = []
    return [params[i] if i < len(params) else f"argument {i}" for i in range(len(args))]


class CompiledModule:
    """compile(model): calls go through the compiled forward; everything else is the model's."""

    def __init__(self, module, backend: str):
        object.__setattr__(self, "_orig_mod", module)
        names = {id(p): n for n, p in module.named_parameters()}
        if hasattr(module, "named_buffers"):
            names.update({id(b): n for n, b in module.named_buffers()})
        fn = _ModuleCall(module)
        object.__setattr__(self, "_compiled", CompiledFunction(fn, backend, module=module, capture_names=names))

    def __call__(self, *args, **kwargs):
        return self._compiled(*args, **kwargs)

    def forward(self, *args, **kwargs):
        return self._compiled(*args, **kwargs)

    def __getattr__(self, name):
        return getattr(object.__getattribute__(self, "_orig_mod"), name)

    def __setattr__(self, name, value):
        setattr(self._orig_mod, name, value)

    def __repr__(self) -> str:
        return f"CompiledModule({self._orig_mod!r})"


class _ModuleCall:
    """The callable traced for compile(model): the module's __call__, with a readable name."""

    def __init__(self, module):
        self.module = module
        self.__name__ = type(module).__name__

    def __call__(self, *args, **kwargs):
        return self.module(*args, **kwargs)


def compile(model: Callable | None = None, *, backend: str = "numpy", fullgraph: bool = False, dynamic=None,
            mode=None, options=None, disable: bool = False):
    """Compile a function or module (also usable as `@compile` and `@compile(backend=...)`)."""
    if backend in (None, "inductor", "default"):
        backend = "numpy"
    if model is None:
        return lambda fn: compile(fn, backend=backend, fullgraph=fullgraph, dynamic=dynamic, mode=mode,
                                  options=options, disable=disable)
    if disable:
        return model
    get_backend(backend)  # fail now for an unknown backend
    if hasattr(model, "named_parameters") and hasattr(model, "forward") and callable(model):
        return CompiledModule(model, backend)
    if not callable(model):
        raise TypeError(f"tracegrad.compile expects a function or a module, got {type(model).__name__}")
    return CompiledFunction(model, backend)
