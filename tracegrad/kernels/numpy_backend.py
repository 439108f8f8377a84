"""The NumPy backend: a fusion plan becomes one generated Python program.

Each launching group of the plan becomes one Python function (a "kernel")
that calls NumPy; the program calls the kernels in order. What makes it faster
than eager mode, on the same NumPy calls:

  - no dispatch, no autograd bookkeeping, no Tensor objects: arrays only;
  - results are written with `out=` into buffers chosen ahead of time;
  - a fused chain runs in place: an elementwise op writes into the buffer of an
    input that dies there, so `exp(x) * 2 + 1` uses one buffer;
  - buffers of values that never leave the program are allocated once, when the
    program is built, and shared by values whose lifetimes do not overlap
    (liveness); only outputs are allocated per call;
  - a large pointwise group runs in cache-sized chunks: every op of the chain
    on the first rows, then the next rows, so memory is read and written once
    (that is the point of a fused kernel);
  - reductions and matmuls write into their buffer and their epilogue runs in
    place on it.

Ops without an `out=` form call their NumPy implementation from the op table
exactly as `dispatch.apply` would (same casts, same bfloat16 widening, same
conversion of the result), so a compiled graph gives eager mode's numbers.
Every kernel's source is kept: `explain()` prints it and TRACEGRAD_DEBUG=2
logs it.
"""
from __future__ import annotations

import sys
import time
from typing import Callable

import numpy as np

from .. import dtypes as D
from ..dispatch import bf16_to_f32, to_storage
from ..ops.shape_util import is_non_overlapping_and_dense
from ..tracer.graph import Graph, Node, Value, np_attrs, _Printer

CHUNK_ELEMS = 1 << 15  # elements per array per chunk of a chunked pointwise kernel
CHUNK_MIN = 1 << 18  # pointwise groups with fewer elements run whole


# ---- helpers the generated code calls ----------------------------------------------------------
def _fix(r, dt: D.DType):
    """A generic op's result in the storage dtype of `dt` (what dispatch._wrap does)."""
    if type(r) is not np.ndarray:
        r = np.asarray(r)
    if dt is D.bfloat16 or r.dtype != dt.np:
        r = to_storage(r, dt)
    return r


def _own(r):
    """r, or a copy of it if it views memory it does not own (a generic op may hand back a view of its
    input, and a value leaving the program must not share memory with a buffer reused next call)."""
    return r if r.base is None else r.copy()


def _empty(shape, dtype, strides=None):
    """An uninitialised array with these element strides (any non-negative strides: the buffer
    covers every element they reach)."""
    if strides is None:
        return np.empty(shape, dtype)
    if any(n == 0 for n in shape):
        return np.empty(shape, dtype)
    span = 1 + sum((n - 1) * s for n, s in zip(shape, strides))
    item = np.dtype(dtype).itemsize
    buf = np.empty(max(span, 1), dtype)
    return np.lib.stride_tricks.as_strided(buf, shape, tuple(s * item for s in strides))


def _layout(r, strides):
    """r laid out with these element strides (a copy only if it is not already)."""
    item = r.itemsize
    if tuple(s // item for s in r.strides) == strides or r.size <= 1:
        return r
    out = _empty(r.shape, r.dtype, strides)
    out[...] = r
    return out


class Kernel:
    """One launched kernel: what explain() and TRACEGRAD_DEBUG show."""

    def __init__(self, name: str, kind: str, source: str, nbytes: int, flops: int, ops: list, locs: list,
                 group=None):
        self.name = name
        self.kind = kind
        self.source = source
        self.bytes = nbytes
        self.flops = flops
        self.ops = ops  # op names, in order
        self.locs = locs  # the user's lines these ops came from
        self.group = group

    def ir(self, stage: str) -> str:
        raise RuntimeError(
            f"kernel {self.name} runs on the NumPy backend, which has no {stage!r}: Triton IR (ttir, ttgir, llir, "
            "ptx) exists only for kernels of the Triton backend; use backend='triton'")

    def __repr__(self) -> str:
        return f"<Kernel {self.name}: {self.bytes} bytes, {self.flops} flops>"


class Program:
    """A compiled graph: `fn(*input_arrays) -> tuple of output arrays`."""

    def __init__(self, fn: Callable, source: str, kernels: list, graph: Graph):
        self.fn = fn
        self.source = source
        self.kernels = kernels
        self.graph = graph

    def __call__(self, *arrays):
        return self.fn(*arrays)


# ---- out= forms ---------------------------------------------------------------------------------
def _ufunc_form(node: Node, args: list, out: str) -> list:
    return [f"_u_{node.op.name}({', '.join(args)}, out={out})"]


def _natural_dtype(node: Node, vals) -> np.dtype | None:
    try:
        with np.errstate(all="ignore"):
            r = node.op.numpy(*vals)
        return np.asarray(r).dtype
    except Exception:  # noqa: BLE001
        return None


class _Forms:
    """Which nodes can write into a given buffer, and how."""

    SIMPLE = {
        # name: (lines(args, attrs, out), input positions the output may share memory with)
        "relu": (lambda a, k, o: [f"np.maximum({a[0]}, 0, out={o})"], (0,)),
        "rsqrt": (lambda a, k, o: [f"np.sqrt({a[0]}, out={o})", f"np.divide(1, {o}, out={o})"], (0,)),
        "clone": (lambda a, k, o: [f"np.copyto({o}, {a[0]})"], (0,)),
        "contiguous": (lambda a, k, o: [f"np.copyto({o}, {a[0]})"], (0,)),
        "to_copy": (lambda a, k, o: [f"np.copyto({o}, {a[0]}, casting='unsafe')"], (0,)),
        "where": (lambda a, k, o: [f"np.copyto({o}, {a[2]})", f"np.copyto({o}, {a[1]}, where={a[0]})"], (2,)),
        "copy": (lambda a, k, o: [f"np.copyto({o}, {a[1]}, casting='unsafe')"], (0, 1)),
        "masked_fill": (lambda a, k, o: [f"np.copyto({o}, {a[0]})",
                                         f"np.copyto({o}, {a[2]}, where={a[1]}, casting='unsafe')"], (0,)),
    }

    @staticmethod
    def clamp(a, attrs, o):
        lines = []
        src = a[0]
        if attrs.get("lo") is not None:
            lines.append(f"np.maximum({src}, {attrs['lo']!r}, out={o})")
            src = o
        if attrs.get("hi") is not None:
            lines.append(f"np.minimum({src}, {attrs['hi']!r}, out={o})")
            src = o
        if not lines:
            lines.append(f"np.copyto({o}, {a[0]})")
        return lines


def out_form(node: Node):
    """(emit(args, out) -> lines, alias_ok positions) if the node can write into a buffer, else None.

    A ufunc called with `out=` computes what it computes without it, so ufunc forms are used as is.
    The other forms (relu as maximum, rsqrt as sqrt and divide, sum as add.reduce, matmul, ...)
    restate an op-table implementation that its owners may change; each is checked, once per op,
    dtypes and shape, against the implementation itself on random data, and used only if the two
    agree bit for bit."""
    f = _out_form(node)
    if f is None or isinstance(node.op.numpy, np.ufunc):
        return f
    return f if _verified(node, f) else None


_VERIFIED: dict = {}
_VERIFY_MAX = 1 << 20  # elements: a larger node is checked on no data and runs the generic way


def _verified(node: Node, form) -> bool:
    from ..tracer.graph import attr_key, run_node

    ins = list(node.inputs())
    o = node.outputs[0]
    elementwise = node.op.kind in ("pointwise", "movement") and node.op.name != "copy"
    linalg = node.op.kind == "linalg"
    if elementwise or linalg:
        # an elementwise op does to each element what it does to three: check it on a few; a matmul
        # is the same BLAS call at any size: check it on at most 64 along each dim (sizes shrink
        # consistently, so the operands still fit and broadcast as the real ones do)
        cap = 3 if elementwise else 64
        shapes = [tuple(min(n, cap) if n > 1 else n for n in v.shape) for v in ins]
        if elementwise:
            try:
                oshape = tuple(np.broadcast_shapes(*shapes)) if shapes else ()
            except ValueError:
                return False
        else:
            oshape = tuple(min(n, cap) if n > 1 else n for n in o.shape)
        ostrides = None
        elementwise = True  # (probe with these small contiguous shapes)
    else:
        if o.numel() > _VERIFY_MAX or any(v.numel() > _VERIFY_MAX for v in ins):
            return False
        shapes = [v.shape for v in ins]
        oshape, ostrides = o.shape, (None if o.is_contiguous() else o.strides)
    key = (node.op.name, tuple((v.dtype.name, shp, elementwise or v.strides) for v, shp in zip(ins, shapes)),
           o.dtype.name, oshape, ostrides, attr_key(node.attrs), attr_key(node.compute),
           tuple(type(a).__name__ for a in node.args))
    hit = _VERIFIED.get(key)
    if hit is not None:
        return hit
    ok = False
    try:
        rng = np.random.default_rng(0)
        arrays = [_probe(v, rng, shp if elementwise else None) for v, shp in zip(ins, shapes)]
        with np.errstate(all="ignore"):
            (want,) = run_node(node, arrays)
            names = [f"a{i}" for i in range(len(ins))]
            it = iter(names)
            args = [next(it) if isinstance(a, Value) else repr(a) for a in node.args]
            out = _empty(oshape, o.dtype.np, ostrides)
            ns = {"np": np, "out": out, "inf": np.inf, "nan": np.nan, **dict(zip(names, arrays))}
            emit, _ = form
            exec("\n".join(emit(args, "out")), ns)
        ok = out.dtype == want.dtype and out.shape == want.shape and np.array_equal(out, want, equal_nan=True)
    except Exception:  # noqa: BLE001 - anything odd: the generic call
        ok = False
    _VERIFIED[key] = ok
    return ok


def _probe(v: Value, rng, shape=None) -> np.ndarray:
    """Random values for a value of this dtype and layout (mostly positive, so logs and roots are
    defined); with `shape`, a small contiguous stand-in of that shape instead."""
    shp = v.shape if shape is None else shape
    if v.dtype is D.bool_:
        a = rng.random(shp) < 0.5
    elif v.dtype.is_floating_point:
        a = rng.uniform(0.5, 2.0, shp) * np.where(rng.random(shp) < 0.3, -1, 1)
    else:
        a = rng.integers(1, 5, shp)
    a = np.asarray(a).astype(v.dtype.np)
    if shape is not None:
        return a
    return a if v.is_contiguous() else _layout(np.ascontiguousarray(a), v.strides)


def _out_form(node: Node):
    op = node.op
    outs = node.outputs
    if len(outs) != 1:
        return None
    o = outs[0]
    if o.dtype is D.bfloat16 or any(v.dtype is D.bfloat16 for v in node.inputs()):
        return None
    if any(type(a) is list or type(a) is tuple for a in node.args):
        return None
    kind = op.kind
    name = op.name
    if kind == "pointwise" or (kind == "movement" and (op.lowering == "{0}" or name == "copy")):
        if isinstance(op.numpy, np.ufunc):
            vals = []
            for a in node.args:
                if isinstance(a, Value):
                    dt = D.compute_np(node.compute) if node.compute is not None else a.dtype.np
                    vals.append(np.zeros(1, dt))
                else:
                    vals.append(a)
            if _natural_dtype(node, vals) != o.dtype.np:
                return None
            return (lambda a, o_: _ufunc_form(node, a, o_)), tuple(range(len(node.args)))
        if name == "round" and o.dtype.is_floating_point:
            return (lambda a, o_: [f"np.rint({a[0]}, out={o_})"]), (0,)
        if name == "clamp":
            if not isinstance(node.attrs.get("lo"), (int, float, type(None))) or \
                    not isinstance(node.attrs.get("hi"), (int, float, type(None))):
                return None
            return (lambda a, o_: _Forms.clamp(a, node.attrs, o_)), (0,)
        f = _Forms.SIMPLE.get(name)
        if f is not None:
            if node.compute is not None and any(v.dtype is not node.compute for v in node.inputs()):
                return None  # inputs would need a cast first: leave it to the generic path
            if name in ("relu", "clone", "contiguous") and o.dtype.np != next(node.inputs()).dtype.np:
                return None
            fn, ok = f
            return (lambda a, o_: fn(a, node.attrs, o_)), ok
        return None
    if name == "matmul" and kind == "linalg":
        ins = list(node.inputs())
        if len(ins) == 2 and ins[0].dtype is ins[1].dtype is o.dtype and o.is_contiguous() and o.ndim >= 1:
            return (lambda a, o_: [f"np.matmul({a[0]}, {a[1]}, out={o_})"]), ()
        return None
    if name == "addmm" and kind == "linalg":
        ins = list(node.inputs())
        if len(ins) == 3 and all(v.dtype is o.dtype for v in ins) and o.is_contiguous() and \
                all(not isinstance(node.attrs.get(k, 1), bool) for k in ("alpha", "beta")):
            alpha, beta = node.attrs.get("alpha", 1), node.attrs.get("beta", 1)

            def emit(a, o_):
                lines = [f"np.matmul({a[1]}, {a[2]}, out={o_})"]
                if alpha != 1:
                    lines.append(f"np.multiply({o_}, {alpha!r}, out={o_})")
                lines.append(f"np.add({o_}, {a[0]}, out={o_})" if beta == 1 else
                             f"np.add({o_}, {a[0]} * {beta!r}, out={o_})")
                return lines

            return emit, ()
        return None
    if kind == "reduce" and name in ("sum", "mean", "amax"):
        x = next(node.inputs(), None)
        if x is None or x.numel() == 0 or not o.is_contiguous():
            return None
        dims = node.attrs.get("dims")
        keep = bool(node.attrs.get("keepdim"))
        if name == "sum":
            dt = node.attrs.get("dtype")
            dts = "" if dt is None else f", dtype=np.{np.dtype(D.compute_np(dt)).name}"
            if o.dtype.np != (np.dtype(D.compute_np(dt)) if dt is not None else np.add.reduce(
                    np.zeros(1, x.dtype.np)).dtype):
                return None
            return (lambda a, o_: [f"np.add.reduce({a[0]}, axis={dims!r}, keepdims={keep}{dts}, out={o_})"]), ()
        if name == "mean":
            if x.dtype is not o.dtype:
                return None
            return (lambda a, o_: [f"np.mean({a[0]}, axis={dims!r}, keepdims={keep}, dtype={a[0]}.dtype, "
                                   f"out={o_})"]), ()
        if name == "amax":
            f = "maximum" if node.attrs.get("is_max", True) else "minimum"
            if x.dtype is not o.dtype:
                return None
            return (lambda a, o_: [f"np.{f}.reduce({a[0]}, axis={dims!r}, keepdims={keep}, out={o_})"]), ()
    return None


# ---- program construction ---------------------------------------------------------------------------
class _Ctx:
    """Names and globals shared by the kernels of one program."""

    def __init__(self, graph: Graph):
        self.ns: dict = {"np": np, "_fix": _fix, "_own": _own, "_empty": _empty, "_layout": _layout, "_bf16": bf16_to_f32,
                         "_to_storage": to_storage, "D": D, "inf": np.inf, "nan": np.nan}
        import tracegrad

        self.ns["tracegrad"] = tracegrad
        self.printer = _Printer(graph, False)
        self.nconst = 0

    def const(self, obj, prefix="g") -> str:
        name = f"_{prefix}{self.nconst}"
        self.nconst += 1
        self.ns[name] = obj
        return name

    def fmt(self, a) -> str:
        s = self.printer.fmt(a)
        for k, v in list(self.printer.extra.items()):
            self.ns[k] = v
        return s


def _dt_name(dt: D.DType) -> str:
    return f"D.{'bool_' if dt is D.bool_ else dt.name}"


def compile_graph(graph: Graph, plan, *, debug: int = 0, name: str = "program") -> Program:
    """Generate, exec and return the program for `graph` run as `plan` says."""
    return _Builder(graph, plan, debug, name).build()


class _Builder:
    def __init__(self, graph: Graph, plan, debug: int, name: str):
        self.g = graph
        self.plan = plan
        self.debug = debug
        self.name = name
        self.ctx = _Ctx(graph)
        self.var: dict = {}  # id(Value) -> Python name in the program
        nodes = []
        for grp in plan.groups:
            nodes.extend(grp.nodes)
        self.pos = {}  # id(node) -> first position in program order
        for i, n in enumerate(nodes):
            self.pos.setdefault(id(n), i)
        self.seq = nodes
        for n in nodes:
            if isinstance(n.op.numpy, np.ufunc):
                self.ctx.ns[f"_u_{n.op.name}"] = n.op.numpy
        self._analyse()

    # ---- analysis: aliases, lifetimes, buffers ---------------------------------------------------
    def _analyse(self) -> None:
        g = self.g
        self.root: dict = {}  # id(value) -> root value (views share their source's memory)
        for v in g.inputs:
            self.root[id(v)] = v
        for n in self.seq:
            for o in n.outputs:
                if n.op.kind == "view":
                    src = next(n.inputs(), None)
                    self.root[id(o)] = self.root.get(id(src), src) if src is not None else o
                else:
                    self.root[id(o)] = o
        for v in g.constants():
            self.root[id(v)] = v
        end = len(self.seq)
        self.last: dict = {}  # id(root) -> last position its memory is read
        for i, n in enumerate(self.seq):
            for v in n.inputs():
                r = self.root.get(id(v), v)
                self.last[id(r)] = max(self.last.get(id(r), -1), i)
        self.escapes: set = set()
        for v in g.outputs:
            r = self.root.get(id(v), v)
            self.escapes.add(id(r))
            self.last[id(r)] = end
        # coalescing: an out= node may write into the buffer of an input dying there
        self.form: dict = {}
        self.cls: dict = {}  # id(value) -> class id
        self.members: dict = {}  # class id -> [values]
        group_of = {}
        for grp in self.plan.groups:
            for n in grp.nodes:
                group_of.setdefault(id(n), grp)
        prod = {id(o): n for n in self.seq for o in n.outputs}
        self.targets = {id(v): tin for v, tin in (self.g.meta.get("write_targets") or {}).values()}
        self.into_pending: dict = {}
        self.taken_inputs: set = set()
        for i, n in enumerate(self.seq):
            if n.op.kind == "view" or not group_of[id(n)].launches:
                continue
            f = out_form(n)
            if f is None or not is_non_overlapping_and_dense(n.outputs[0].shape, n.outputs[0].strides):
                continue
            self.form[id(n)] = f
            o = n.outputs[0]
            joined = None
            emit, ok = f
            tin = self._into_input(o, n, i, ok)
            if tin is not None:  # computed straight into the input it updates (a class of its own)
                c = len(self.members)
                self.members[c] = [o]
                self.cls[id(o)] = c
                self.into_pending[c] = tin
                self.last[id(o)] = max(self.last.get(id(o), -1), i)
                continue
            for pos, a in enumerate(n.args):
                if pos not in ok or not isinstance(a, Value):
                    continue
                if id(a) not in self.cls or self.root.get(id(a)) is not a:
                    continue
                pn = prod.get(id(a))
                if pn is None or group_of.get(id(pn)) is not group_of[id(n)]:
                    continue
                if a.shape == o.shape and a.strides == o.strides and a.dtype.np == o.dtype.np and \
                        self.last.get(id(a), -1) == i and id(a) not in self.escapes:
                    joined = self.cls[id(a)]
                    break
            if joined is None:
                joined = len(self.members)
                self.members[joined] = []
            self.cls[id(o)] = joined
            self.members[joined].append(o)
            self.last[id(o)] = max(self.last.get(id(o), -1), i)
        # class lifetimes and whether a class leaves the program
        self.cls_fresh: dict = {}
        self.cls_span: dict = {}
        for c, vs in self.members.items():
            start = min(self.pos[id(prod[id(v)])] for v in vs)
            stop = max(self.last.get(id(v), start) for v in vs)
            self.cls_span[c] = (start, stop)
            self.cls_fresh[c] = any(id(v) in self.escapes for v in vs)
        self.cls_into: dict = dict(self.into_pending)  # class -> the input whose memory it is

    def _into_input(self, o: Value, n: Node, i: int, ok) -> Value | None:
        """The input `o` is written back into (an in-place update of a parameter or a .grad), if `o`
        can be computed straight into that input's memory: nothing reads the input's old value after
        node i, and node i reads it only where its out= form allows the output to share memory."""
        tin = self.targets.get(id(o))
        if tin is None or id(tin) in self.taken_inputs or id(tin) in self.escapes:
            return None
        if tin.kind != "input" or tin.shape != o.shape or tin.strides != o.strides or tin.dtype.np != o.dtype.np:
            return None
        last = self.last.get(id(tin), -1)
        if last > i:
            return None
        for k, a in enumerate(n.args):
            if isinstance(a, Value) and self.root.get(id(a), a) is tin and (a is not tin or k not in ok):
                return None
        self.taken_inputs.add(id(tin))
        return tin

    def _assign_persistent(self, chunked_scratch: dict) -> None:
        """Give every class that never leaves the program a buffer, shared by lifetimes."""
        self.cls_buf: dict = {}
        pool: list = []  # [nbytes, free_after, array]
        items = []
        for c, vs in self.members.items():
            if self.cls_fresh[c]:
                continue
            v = vs[0]
            shape = chunked_scratch.get(c, v.shape)
            n = 1
            for s in shape:
                n *= s
            items.append((self.cls_span[c], c, n * v.dtype.itemsize))
        items.sort()
        for (start, stop), c, nbytes in items:
            best = None
            for slot in pool:
                if slot[1] < start and slot[0] >= nbytes and (best is None or slot[0] < best[0]):
                    best = slot
            if best is None:
                best = [nbytes, stop, np.empty(max(nbytes, 1), np.uint8)]
                pool.append(best)
            best[1] = stop
            self.cls_buf[c] = best[2]
        self.pool_bytes = sum(s[0] for s in pool)

    def _buffer_view(self, c: int, shape, strides=None) -> str:
        v = self.members[c][0]
        raw = self.cls_buf[c]
        n = 1
        for s in shape:
            n *= s
        arr = raw[: n * v.dtype.itemsize].view(v.dtype.np)
        if strides is None or strides == _contig(shape):
            arr = arr.reshape(shape)
        else:
            arr = np.lib.stride_tricks.as_strided(arr, shape, tuple(s * v.dtype.itemsize for s in strides))
        return self.ctx.const(arr, "B")

    # ---- code ------------------------------------------------------------------------------------
    def build(self) -> Program:
        g = self.g
        ctx = self.ctx
        chunk_plans = {}
        chunk_scratch = {}
        for grp in self.plan.groups:
            cp = self._chunk_plan(grp) if grp.kind == "pointwise" else None
            if cp is not None:
                chunk_plans[id(grp)] = cp
                rows, inner = cp["rows"], cp["inner"]
                for n in grp.nodes:
                    c = self.cls.get(id(n.outputs[0]))
                    if c is not None and not self.cls_fresh[c]:
                        chunk_scratch[c] = (rows,) + inner
        self._assign_persistent(chunk_scratch)
        for v in g.inputs:
            self.var[id(v)] = _pyname(v.name)
        for v in g.constants():
            self.var[id(v)] = ctx.const(v.data, "c")
        kernels = []
        body = []
        ksrc = []
        for grp in self.plan.groups:
            if not grp.launches:
                for n in grp.nodes:
                    body += self._emit_node(n, {}, None)
                continue
            k = len(kernels)
            kname = f"{'b' if self.name == 'backward' else ''}k{k}_{grp.name}"  # bk0_...: a backward kernel
            src, call = self._kernel(grp, kname, chunk_plans.get(id(grp)))
            ksrc.append(src)
            kernels.append(self._kernel_info(grp, kname, src))
            if self.debug:
                body.append("_t0 = _pc()")
                body.append(call)
                body.append(f"_log({k}, _pc() - _t0)")
            else:
                body.append(call)
        outs = []
        for v in g.outputs:
            name = self.var[id(v)]
            if v.kind == "const" or self.root.get(id(v), v).kind == "const":
                name = f"np.array({name}, copy=True)"
            outs.append(name)
        params = ", ".join(self.var[id(v)] for v in g.inputs)
        lines = [f"def {self.name}({params}):", "    _old = _seterr(all='ignore')", "    try:"]
        lines += ["        " + b for b in body] or ["        pass"]
        lines += ["    finally:", "        _seterr(**_old)",
                  f"    return ({', '.join(outs)}{',' if len(outs) == 1 else ''})"]
        main = "\n".join(lines) + "\n"
        source = "\n".join(ksrc) + ("\n" if ksrc else "") + main
        ctx.ns["_seterr"] = np.seterr
        if self.debug:
            ctx.ns["_pc"] = time.perf_counter
            ctx.ns["_log"] = _Logger(kernels)
        code = compile(source, f"<tracegrad numpy program {self.name}>", "exec")
        exec(code, ctx.ns)
        fn = ctx.ns[self.name]
        return Program(fn, source, kernels, g)

    def _kernel_info(self, grp, kname, src) -> Kernel:
        nbytes = sum(v.nbytes for v in grp.inputs if v.kind != "const") + sum(v.nbytes for v in grp.outputs)
        nbytes += sum(v.nbytes for v in grp.inputs if v.kind == "const")
        flops = 0
        for n in grp.compute_nodes():
            if n.op.kind == "linalg":
                d = 1
                for s in _mm_dims(n):
                    d *= s
                flops += 2 * d
                if n.op.name == "addmm":
                    flops += n.outputs[0].numel()
            elif n.op.kind == "reduce":
                flops += max(v.numel() for v in n.inputs()) if list(n.inputs()) else 0
            elif n.op.kind in ("pointwise",):
                flops += n.outputs[0].numel()
        ops = [n.op.name for n in grp.compute_nodes()]
        locs = []
        for n in grp.compute_nodes():
            loc = n.loc if n.phase == "forward" else (f"grad of {n.loc}" if n.loc else "backward")
            if loc and loc not in locs:
                locs.append(loc)
        return Kernel(kname, grp.kind, src, nbytes, flops, ops, locs, grp)

    def _chunk_plan(self, grp):
        """Rows per chunk if this pointwise group can run chunk by chunk, else None."""
        dom = tuple(grp.domain)
        n = 1
        for s in dom:
            n *= s
        if n < CHUNK_MIN or not dom:
            return None
        for node in grp.nodes:
            if id(node) not in self.form or node.op.kind == "view":
                return None
            o = node.outputs[0]
            if o.shape != dom or not o.is_contiguous():
                return None
        made = {id(o) for node in grp.nodes for o in node.outputs}
        for v in grp.inputs:
            if id(v) in made:
                continue
            if v.ndim == len(dom) and v.shape[0] == dom[0] and dom[0] > 1:
                continue  # sliced along dim 0
            if v.ndim < len(dom) or (v.ndim == len(dom) and v.shape[0] == 1):
                continue  # broadcast along dim 0: read whole
            return None
        inner = dom[1:]
        per_row = 1
        for s in inner:
            per_row *= s
        rows = max(1, CHUNK_ELEMS // max(per_row, 1))
        if rows >= dom[0]:
            return None
        return {"rows": rows, "inner": inner}

    def _kernel(self, grp, kname: str, chunk) -> tuple:
        made = {id(o) for n in grp.nodes for o in n.outputs}
        params = []
        local: dict = {}
        for v in grp.inputs:
            nm = self.var[id(v)]
            if v.kind == "const":
                local[id(v)] = nm
                continue
            params.append(nm)
            local[id(v)] = nm
        for n in grp.nodes:  # inputs this group writes into (their memory is the output's buffer)
            c = self.cls.get(id(n.outputs[0])) if n.outputs else None
            tin = self.cls_into.get(c) if c is not None else None
            if tin is not None and self.var[id(tin)] not in params:
                params.append(self.var[id(tin)])
        lines = [f"def {kname}({', '.join(params)}):"]
        outs = [local_name(v) for v in grp.outputs]
        if chunk is None:
            body = []
            for n in grp.nodes:
                body += self._emit_node(n, local, grp)
            lines += ["    " + b for b in body]
        else:
            lines += ["    " + b for b in self._chunked(grp, local, chunk, made)]
        lines.append(f"    return ({', '.join(outs)}{',' if len(outs) == 1 else ''})")
        for v in grp.outputs:
            self.var[id(v)] = local_name(v)
        ret = ", ".join(local_name(v) for v in grp.outputs)
        call_args = ", ".join(params)
        call = f"{ret}{',' if len(grp.outputs) == 1 else ''} = {kname}({call_args})" if grp.outputs else \
            f"{kname}({call_args})"
        return "\n".join(lines) + "\n", call

    def _fresh(self, c: int, o: Value) -> str:
        """The buffer of a class that leaves the program: new memory, or the input it updates."""
        tin = self.cls_into.get(c)
        return self.var[id(tin)] if tin is not None else self._alloc(o)

    def _alloc(self, o: Value) -> str:
        """The statement-free expression of a fresh buffer for value o."""
        strides = None if o.is_contiguous() else o.strides
        dt = f"np.{o.dtype.np.name}" if o.dtype.np.name != "bool" else "np.bool_"
        if strides is None:
            return f"np.empty({tuple(o.shape)!r}, {dt})"
        return f"_empty({tuple(o.shape)!r}, {dt}, {strides!r})"

    def _target(self, o: Value, local: dict, first_of_class: dict) -> tuple:
        """(setup lines, buffer expression) for node output o."""
        c = self.cls[id(o)]
        name = local_name(o)
        prev = first_of_class.get(c)
        if prev is not None:
            return [f"{name} = {prev}"], name
        first_of_class[c] = name
        if self.cls_fresh[c]:
            return [f"{name} = {self._fresh(c, o)}"], name
        buf = self._buffer_view(c, o.shape, None if o.is_contiguous() else o.strides)
        return [f"{name} = {buf}"], name

    def _args(self, n: Node, local: dict, widen: bool = True) -> list:
        """Argument expressions for node n, with the casts apply() makes."""
        out = []
        for a in n.args:
            if isinstance(a, Value):
                out.append(self._conv(n, a, self._ref(a, local)))
            elif type(a) is list or type(a) is tuple:
                items = []
                for x in a:
                    if isinstance(x, Value):
                        r = self._ref(x, local)
                        items.append(f"_bf16({r})" if x.dtype is D.bfloat16 else r)
                    else:
                        items.append(self.ctx.fmt(x))
                out.append("[" + ", ".join(items) + "]")
            else:
                out.append(self.ctx.fmt(a))
        return out

    def _ref(self, v: Value, local: dict) -> str:
        if id(v) in local:
            return local[id(v)]
        return self.var.get(id(v)) or local_name(v)

    def _conv(self, n: Node, v: Value, expr: str) -> str:
        comp = n.compute
        if comp is not None and v.dtype is not comp:
            src = f"_bf16({expr})" if v.dtype is D.bfloat16 else expr
            return f"{src}.astype(np.{np.dtype(D.compute_np(comp)).name})"
        if v.dtype is D.bfloat16 and n.op.kind != "view":
            return f"_bf16({expr})"
        return expr

    def _emit_node(self, n: Node, local: dict, grp, first_of_class: dict | None = None) -> list:
        if first_of_class is None:
            first_of_class = self.__dict__.setdefault("_foc", {})
        args = self._args(n, local)
        names = [local_name(o) for o in n.outputs]
        for o, nm in zip(n.outputs, names):
            local[id(o)] = nm
            if grp is None:
                self.var[id(o)] = nm
        if n.op.kind == "view":
            call = self._generic_call(n, args)
            lhs = names[0] if n.op.nout == 1 else ", ".join(names) + ("," if len(names) == 1 else "")
            return [f"{lhs} = {call}"]
        f = self.form.get(id(n))
        if f is not None and id(n.outputs[0]) in self.cls:
            setup, buf = self._target(n.outputs[0], local, first_of_class)
            emit, _ = f
            return setup + emit(args, buf)
        call = self._generic_call(n, args)
        lines = []
        if n.op.nout == 1:
            o = n.outputs[0]
            lines.append(f"{names[0]} = _fix({call}, {_dt_name(o.dtype)})")
            if o.ndim >= 2 and not o.is_contiguous():
                lines.append(f"{names[0]} = _layout({names[0]}, {o.strides!r})")
        else:
            lines.append(f"{', '.join(names)}{',' if len(names) == 1 else ''} = {call}")
            for o, nm in zip(n.outputs, names):
                lines.append(f"{nm} = _fix({nm}, {_dt_name(o.dtype)})")
        for o, nm in zip(n.outputs, names):
            if id(o) in self.escapes:
                lines.append(f"{nm} = _own({nm})")
        return lines

    def _generic_call(self, n: Node, args: list) -> str:
        fname = f"_f_{n.op.name}"
        self.ctx.ns[fname] = n.op.numpy
        if isinstance(n.op.numpy, np.ufunc):
            self.ctx.ns[f"_u_{n.op.name}"] = n.op.numpy
        kw = [f"{k}={self.ctx.fmt(v)}" for k, v in np_attrs(n.op, n.attrs).items()]
        return f"{fname}({', '.join(args + kw)})"

    def _chunked(self, grp, local: dict, chunk, made) -> list:
        rows = chunk["rows"]
        dom = tuple(grp.domain)
        lines = []
        full = {}  # id(value) -> full-size name
        first_of_class: dict = {}
        # full-size buffers of the outputs, allocated (or taken) before the loop
        for n in grp.nodes:
            o = n.outputs[0]
            c = self.cls[id(o)]
            if self.cls_fresh[c] and c not in first_of_class:
                nm = local_name(o)
                lines.append(f"{nm} = {self._fresh(c, o)}")
                first_of_class[c] = nm
            elif self.cls_fresh[c]:
                lines.append(f"{local_name(o)} = {first_of_class[c]}")
            full[id(o)] = local_name(o)
        lines.append(f"for _i in range(0, {dom[0]}, {rows}):")
        lines.append(f"    _j = _i + {rows}")
        body = []
        sl: dict = {}
        for v in grp.inputs:
            nm = local[id(v)]
            if v.ndim == len(dom) and v.shape[0] == dom[0] and dom[0] > 1:
                body.append(f"{nm}_ = {nm}[_i:_j]")
                sl[id(v)] = f"{nm}_"
            else:
                sl[id(v)] = nm
        scratch_first: dict = {}
        for n in grp.nodes:
            o = n.outputs[0]
            c = self.cls[id(o)]
            nm = local_name(o)
            if self.cls_fresh[c] and c not in scratch_first:
                body.append(f"{nm}_ = {full[id(o)]}[_i:_j]")
                scratch_first[c] = f"{nm}_"
            elif c in scratch_first:
                body.append(f"{nm}_ = {scratch_first[c]}")
            else:
                buf = self._buffer_view(c, (rows,) + tuple(dom[1:]))
                body.append(f"{nm}_ = {buf} if _j <= {dom[0]} else {buf}[:{dom[0]} - _i]")
                scratch_first[c] = f"{nm}_"
            args = []
            for a in n.args:
                if isinstance(a, Value):
                    ref = sl.get(id(a)) if id(a) in sl else f"{local_name(a)}_"
                    args.append(self._conv(n, a, ref))
                else:
                    args.append(self.ctx.fmt(a))
            emit, _ = self.form[id(n)]
            body += emit(args, f"{nm}_")
            sl[id(o)] = f"{nm}_"
        lines += ["    " + b for b in body]
        for v in grp.outputs:
            local[id(v)] = full.get(id(v), local_name(v))
        return lines


def _contig(shape) -> tuple:
    st, acc = [], 1
    for n in reversed(tuple(shape)):
        st.append(acc)
        acc *= max(n, 1)
    return tuple(reversed(st))


def _mm_dims(n: Node):
    ins = list(n.inputs())
    o = n.outputs[0]
    if n.op.name == "addmm":
        ins = ins[1:]
    k = ins[0].shape[-1] if ins and ins[0].ndim else 1
    return tuple(o.shape) + (k,)


def _pyname(name: str) -> str:
    return name if name.isidentifier() else "_" + "".join(c if c.isalnum() else "_" for c in name)


def local_name(v: Value) -> str:
    return _pyname(v.name)


class _Logger:
    """TRACEGRAD_DEBUG=1: one line per kernel launch."""

    def __init__(self, kernels):
        self.kernels = kernels

    def __call__(self, k: int, seconds: float) -> None:
        kern = self.kernels[k]
        us = seconds * 1e6
        gbs = kern.bytes / seconds / 1e9 if seconds > 0 else 0.0
        gfl = kern.flops / seconds / 1e9 if seconds > 0 else 0.0
        fused = ", ".join(kern.ops[:8]) + (" ..." if len(kern.ops) > 8 else "")
        where = "; ".join(kern.locs[:4])
        print(f"[tracegrad] {kern.name}: {us:9.1f} us  {gbs:7.2f} GB/s  {gfl:7.2f} GFLOP/s  fused: {fused}"
              + (f"  ({where})" if where else ""), file=sys.stderr)


def run_graph(graph: Graph, arrays: list) -> list:
    """Interpret a graph on arrays node by node (a reference for tests and constant folding)."""
    from ..tracer.graph import run_node

    env = {id(v): a for v, a in zip(graph.inputs, arrays)}
    for v in graph.constants():
        env[id(v)] = v.data
    for n in graph.nodes:
        outs = run_node(n, [env[id(v)] for v in n.inputs()])
        for o, a in zip(n.outputs, outs):
            env[id(o)] = a
    return [env[id(v)] for v in graph.outputs]
