"""KernelSpec -> Triton source text.

`render(spec)` picks the template for the spec's kind:

    pointwise   one flat block of XBLOCK elements per program (render.py)
    reduction   ROWS rows per program, reduced over the last axes (reduction.py)
    matmul      a BLOCK_M x BLOCK_N tile per program with a K loop and the
                body as its epilogue (matmul.py)

All three share what is here: naming, loads with the dtype they compute in, the
body's steps as expressions from the op table, casts, stores. The result is a
`KernelSource`: the text plus everything a launcher or `triton.compile` needs
(argument order, constexprs, grid, num_warps). Rendering needs no Triton.
"""
from __future__ import annotations

import keyword
import math
import re
from dataclasses import dataclass, field
from typing import Mapping, Sequence

from ... import dtypes as D
from . import indexing as IX
from .lowering import (TL, PTR_SIG, Constants, HELPERS, LoweringError, Reduction, arith_ctype, compute_dtype,
                       format_expr, input_dtypes, needs_result_cast, resolve)
from .spec import KernelSpec, Load, Step, Store, infer_dtypes, step_args, uses

# names the templates use themselves; spec names that collide get a suffix
RESERVED = {"tl", "triton", "libdevice", "pid", "bid", "offs", "mask", "rows", "cols", "rmask", "cmask", "roff",
            "XBLOCK", "ROWS", "RBLOCK", "BLOCK_M", "BLOCK_N", "BLOCK_K", "GROUP_M", "acc", "rm", "rn", "rk", "k",
            "a_ptrs", "b_ptrs", "a_tile", "b_tile", "ram", "rbn", "mmask", "nmask", "num_pid_m", "num_pid_n",
            "group", "first_m", "group_m", "pid_m", "pid_n", "float", "int", "range", "min", "max"}


# coordinates (x0, r1, c0, b2...), constants (cst0...) and accumulators (acc0...) the templates generate
_GENERATED = re.compile(r"^(x|r|c|b|cst|acc)\d+$")


@dataclass(frozen=True)
class Param:
    """One pointer argument of the kernel: the spec buffer it carries."""

    arg: str        # the name in the kernel's signature
    buffer: str     # the spec's load name (for reads) or store name (for writes)
    dtype: D.DType
    role: str       # "load" or "store"


@dataclass(frozen=True)
class KernelSource:
    """Generated Triton source and how to launch it.

    params are the pointer arguments in signature order, then the constexprs
    (block sizes) follow as keyword arguments; grid is the launch grid."""

    name: str
    text: str
    params: tuple[Param, ...]
    constexprs: Mapping[str, int]
    grid: tuple[int, int, int]
    num_warps: int
    num_stages: int
    spec: KernelSpec = field(repr=False)

    def signature(self) -> dict[str, str]:
        """The `signature` triton.compile's ASTSource takes."""
        sig = {p.arg: PTR_SIG[p.dtype] for p in self.params}
        sig.update({k: "constexpr" for k in self.constexprs})
        return sig

    def __str__(self) -> str:
        return self.text


def render(spec: KernelSpec) -> KernelSource:
    """Triton source for `spec` (raises LoweringError for what Triton cannot run)."""
    kind = spec.kind
    if kind == "pointwise":
        return PointwiseRenderer(spec).render()
    if kind == "reduction":
        from .reduction import ReductionRenderer

        return ReductionRenderer(spec).render()
    from .matmul import MatmulRenderer

    return MatmulRenderer(spec).render()


def next_pow2(n: int) -> int:
    return 1 if n <= 1 else 1 << (int(n) - 1).bit_length()


def cdiv(a: int, b: int) -> int:
    return -(-a // b)


def _identifier(name: str) -> str:
    s = re.sub(r"\W", "_", name)
    if not s or s[0].isdigit():
        s = "v_" + s
    return s


class Renderer:
    """What every template shares. Subclasses fill `self.lines` between header and end."""

    def __init__(self, spec: KernelSpec):
        self.spec = spec
        self.dtypes = infer_dtypes(spec)
        self.consts = Constants()
        self.helpers: set[str] = set()
        self.taken: set[str] = set(RESERVED)
        self.var: dict[str, str] = {}
        self.params: list[Param] = []
        self.lines: list[str] = []
        self.deps = uses(spec)
        self.steps = {st.out: st for st in spec.body}
        self.loads = {ld.name: ld for ld in spec.loads}
        self.stores = {st.name: st for st in spec.stores}
        for name in self.dtypes:
            self.var[name] = self._take(_identifier(name))
        self.ptr: dict[tuple[str, str], str] = {}
        for ld in spec.loads:
            if ld.name in self.live:
                self._param(ld.name, ld.dtype, "load")
        for st in spec.stores:
            self._param(st.name, self.store_dtype(st), "store")

    # ---- names -------------------------------------------------------------------------
    def _take(self, base: str) -> str:
        name, i = base, 1
        while name in self.taken or keyword.iskeyword(name) or _GENERATED.match(name):
            name = f"{base}_{i}"
            i += 1
        self.taken.add(name)
        return name

    def _param(self, buffer: str, dtype: D.DType, role: str) -> None:
        base = _identifier(buffer) + "_ptr"
        if role == "store" and base in self.taken:  # in-place: the same buffer is loaded and stored
            base = _identifier(buffer) + "_out_ptr"
        arg = self._take(base)
        self.ptr[(role, buffer)] = arg
        self.params.append(Param(arg, buffer, dtype, role))

    def ctype(self, value: str) -> D.DType:
        return compute_dtype(self.dtypes[value])

    def store_dtype(self, st: Store) -> D.DType:
        return st.dtype if st.dtype is not None else self.dtypes[st.value]

    # ---- which values matter -----------------------------------------------------------
    @property
    def live(self) -> set[str]:
        """Values some store depends on (dead loads and steps are not emitted)."""
        cached = getattr(self, "_live", None)
        if cached is not None:
            return cached
        live: set[str] = set()
        todo = [st.value for st in self.spec.stores] + [v for st in self.spec.stores for v, _ in st.index]
        while todo:
            v = todo.pop()
            if v in live:
                continue
            live.add(v)
            todo.extend(self.deps.get(v, ()))
        self._live = live
        return live

    # ---- emitting values ---------------------------------------------------------------
    def indexed(self, offset_expr: str, index) -> str:
        """The offset plus each index term (value * stride, in 64-bit: an index times a stride
        may pass 2^31 where the block's own offsets do not)."""
        terms = [offset_expr] if offset_expr else []
        for v, stride in index:
            t = f"{self.var[v]}.to(tl.int64)"
            terms.append(t if stride == 1 else f"{t} * {stride}" if stride > 0 else f"{t} * ({stride})")
        return " + ".join(f"({t})" if " + " in t else t for t in terms) if len(terms) > 1 else "".join(terms)

    def load_line(self, ld: Load, offset_expr: str, mask: str | None) -> str:
        ptr = self.ptr[("load", ld.name)]
        offset_expr = self.indexed(offset_expr, ld.index)
        addr = f"{ptr} + {offset_expr}" if offset_expr else ptr
        m = f", mask={mask}" if mask else ""
        text = f"tl.load({addr}{m})"
        ct = compute_dtype(ld.dtype)
        if ct is not ld.dtype:
            text += f".to({TL[ct]})"
        return f"{self.var[ld.name]} = {text}"

    def check_store(self, st: Store, aligned, dims) -> None:
        """A store must give each element its own address along `dims` (a stride of 0 would be a race);
        an indexed store's addresses come from its index, whose duplicates are the caller's to allow."""
        if st.index:
            return
        for d in dims:
            if self.spec.shape[d] > 1 and aligned[d] == 0:
                raise LoweringError(f"store {st.name!r} has stride 0 along dim {d} of {self.spec.shape}: "
                                    "every element would write the same address")

    def store_line(self, st: Store, offset_expr: str, mask: str | None) -> str:
        ptr = self.ptr[("store", st.name)]
        offset_expr = self.indexed(offset_expr, st.index)
        addr = f"{ptr} + {offset_expr}" if offset_expr else ptr
        value = self.var[st.value]
        want = self.store_dtype(st)
        if want is not self.ctype(st.value):  # float16 held as float32, or a store in another dtype
            value = f"{value}.to({TL[want]})"
        m = f", mask={mask}" if mask else ""
        if st.accumulate:  # repeated indices must all land: an atomic add (no ordering needed)
            return f"tl.atomic_add({addr}, {value}{m}, sem=\"relaxed\")"
        return f"tl.store({addr}, {value}{m})"

    def step_lines(self, step: Step, casts: dict) -> list[str]:
        """`out = <expression>` for a pointwise step, with the casts its inputs need.

        casts caches `x.to(T)` conversions within one scope (a loop body, the kernel)."""
        op = step.primitive
        out_dt = self.dtypes[step.out]
        targets = input_dtypes(op, step_args(step, self.dtypes), out_dt, step.compute)
        wants: list[D.DType | None] = []
        for a, tgt in zip(step.args, targets):
            if tgt is not None:
                wants.append(arith_ctype(tgt) if op.cast_inputs else compute_dtype(tgt))
            else:
                wants.append(self.ctype(a) if isinstance(a, str) else None)
        # the dtype the op computes in: picks the lowering's form and types its constants
        # (where's condition and masked_fill's mask are bools whatever the op computes in)
        value_pos = {"where": (1, 2), "masked_fill": (0, 2)}.get(op.name, range(len(wants)))
        key_ct = next((wants[i] for i in value_pos if wants[i] is not None), None) or arith_ctype(out_dt)
        lines: list[str] = []
        exprs: list[str] = []
        for a, want in zip(step.args, wants):
            if isinstance(a, str):
                exprs.append(self._cast(a, want, casts, lines))
            else:
                exprs.append(self.consts(a, want or key_ct))
        template = resolve(op, step.attrs, key_ct)
        if not isinstance(template, str):
            raise LoweringError(f"op {op.name!r} is not pointwise")
        expr = format_expr(template, exprs, step.attrs, key_ct, self.consts)
        out_ct = compute_dtype(out_dt)
        if out_dt is D.bool_ and not op.cast_inputs:
            natural = D.bool_
        elif op.name == "to_copy":
            natural = step.attrs["dtype"]  # the lowering converts to the target's own type
        else:
            natural = key_ct
        if needs_result_cast(op, natural, out_ct):
            expr = f"({expr}).to({TL[out_ct]})"
        if "libdevice." in expr:
            self.uses_libdevice = True
        lines.append(f"{self.var[step.out]} = {expr}")
        return lines

    def _cast(self, value: str, want: D.DType, casts: dict, lines: list[str]) -> str:
        v = self.var[value]
        if self.ctype(value) is want:
            return v
        key = (value, want)
        if key not in casts:
            name = self._take(f"{v}_{want.name.replace('float', 'f').replace('int', 'i')}")
            lines.append(f"{name} = {v}.to({TL[want]})")
            casts[key] = name
        return casts[key]

    def reduction(self, step: Step) -> Reduction:
        return Reduction(step.primitive, step.attrs, self.ctype(step.out))

    # ---- assembling the module ------------------------------------------------------------
    uses_libdevice = False

    def module(self, name: str, constexprs: Mapping[str, int], body: Sequence[str]) -> str:
        head = ["import triton", "import triton.language as tl"]
        if self.uses_libdevice or any("libdevice." in line for line in body):
            head.append("from triton.language.extra import libdevice")
        out = head + ["", ""]
        for h in sorted(self.helpers):
            out += [HELPERS[h], ""]
        args = [p.arg for p in self.params] + [f"{k}: tl.constexpr" for k in constexprs]
        out.append("@triton.jit")
        out.append(f"def {name}({', '.join(args)}):")
        out += ["    " + line if line else "" for line in list(self.consts.lines) + list(body)]
        return "\n".join(out) + "\n"

    def kernel_name(self, kind: str) -> str:
        base = _identifier(self.spec.name) if self.spec.name else kind
        shape = "x".join(str(n) for n in self.spec.shape) or "scalar"
        return f"tg_{kind}_{base}_{shape}"[:120]

    def source(self, kind: str, constexprs: dict, grid, num_warps: int, num_stages: int,
               body: Sequence[str]) -> KernelSource:
        name = self.kernel_name(kind)
        opts = self.spec.options
        num_warps = int(opts.get("num_warps", num_warps))
        num_stages = int(opts.get("num_stages", num_stages))
        text = self.module(name, constexprs, body)
        g = tuple(grid) + (1,) * (3 - len(grid))
        return KernelSource(name, text, tuple(self.params), dict(constexprs), g, num_warps, num_stages, self.spec)


class PointwiseRenderer(Renderer):
    """Elementwise kernels over one flat index.

        offs = pid * XBLOCK + arange(XBLOCK)       the linear index over the coalesced shape
        x = tl.load(x_ptr + offs, mask)           contiguous operands: offs itself (vector loads)
        y = tl.load(y_ptr + x1 * 5 + x0 * 40)     others: coordinates peeled off offs
    """

    def render(self) -> KernelSource:
        spec = self.spec
        numel = spec.numel
        operands = self._operands()
        order = self._memory_order(operands)
        shapes, strides = IX.coalesce([spec.shape[d] for d in order], [[o[1][d] for d in order] for o in operands],
                                      [len(spec.shape)])
        shape = shapes[0]
        wide = numel >= 2 ** 31 or any(IX.max_offset(shape, s[0], o[2]) >= 2 ** 31
                                        for s, o in zip(strides, operands))
        # at least 4 elements per thread (one 128-bit access of float32), 8 in big blocks
        xblock = int(spec.options.get("XBLOCK", min(1024, max(128, next_pow2(numel)))))
        num_warps = max(1, min(4, xblock // 256))
        idx = IX.LinearIndex("offs", shape, "x")
        parts = [idx.expr(s[0]) for s in strides]
        exprs = [IX.join_offsets([p], o[2]) for p, o in zip(parts, operands)]
        # an operand that does not move with the index (a 0-dim tensor) is one scalar load, unmasked;
        # an indexed one moves with its index
        indexed = {("load", ld.name) for ld in spec.loads if ld.index} | \
            {("store", st.name) for st in spec.stores if st.index}
        moves = {o[0]: p is not None or o[0] in indexed for p, o in zip(parts, operands)}
        for i, (key, aligned, off) in enumerate(operands):
            if key in indexed and parts[i] is None:  # (a one-element index is a scalar: keep the block's shape)
                exprs[i] = IX.join_offsets(["offs * 0"], off)
            if key[0] == "store":
                self.check_store(self.stores[key[1]], aligned, range(len(spec.shape)))
                if not moves[key]:  # one element: the pointer still needs the block's shape
                    exprs[i] = IX.join_offsets(["offs * 0"], off)
        body = ["pid = tl.program_id(0)" + (".to(tl.int64)" if wide else ""),
                "offs = pid * XBLOCK + tl.arange(0, XBLOCK)"]
        mask = None
        if numel % xblock:
            body.append(f"mask = offs < {numel}")
            mask = "mask"
        body += idx.lines()
        expr_of = {o[0]: e for o, e in zip(operands, exprs)}
        casts: dict = {}
        for name in self._order():
            if name in self.loads:
                key = ("load", name)
                body.append(self.load_line(self.loads[name], expr_of[key], mask if moves[key] else None))
            else:
                body += self.step_lines(self.steps[name], casts)
            # store a value as soon as it exists: it need not stay in registers until the end
            for st in spec.stores:
                if st.value == name:
                    body.append(self.store_line(st, expr_of[("store", st.name)], mask))
        return self.source("pointwise", {"XBLOCK": xblock}, (cdiv(numel, xblock),), num_warps, 1, body)

    def step_lines(self, step: Step, casts: dict) -> list[str]:
        if step.primitive.kind == "random":
            return self._random_lines(step)
        return super().step_lines(step, casts)

    def _random_lines(self, step: Step) -> list[str]:
        """Philox 4x32-10 of the counter (element index, stream) under the seed: Philox is a
        bijection of its 128-bit counter, so distinct (element, stream) pairs never share numbers.
        A uniform is the top 24 bits of the first word over 2^24 (in [0, 1), every value exact in
        float32; float64 ones take 53 bits of two words); a normal is Box-Muller of two uniforms."""
        self.helpers.add("philox")
        seed, stream = (self.var[a] for a in step.args)
        out = self.var[step.out]
        c, z = self._take(f"{out}_ctr"), self._take(f"{out}_zero")
        w = [self._take(f"{out}_w{i}") for i in range(4)]
        lines = [f"{c} = offs.to(tl.uint32)", f"{z} = {c} * 0",
                 f"{', '.join(w)} = _tg_philox({seed}, {c}, {z} + ({stream} & 0xFFFFFFFF).to(tl.uint32), "
                 f"{z} + ((({stream}) >> 32) & 0xFFFFFFFF).to(tl.uint32), {z})"]
        # as many random bits as the stored dtype's significand holds, so that rounding to it can
        # never reach 1.0 (torch's uniforms lie in [0, 1) in every dtype)
        bits = {D.float16: 11, D.bfloat16: 8}.get(self.dtypes[step.out], 24)
        if self.dtypes[step.out] is D.float64:  # 53 bits from two words: float64's full resolution
            return lines + self._random_float64(step.op, out, w)
        if step.op == "rand_uniform":
            expr = f"({w[0]} >> {32 - bits}).to(tl.float32) * {2.0 ** -bits!r}"
        else:
            u1 = self._take(f"{out}_u1")
            lines.append(f"{u1} = (({w[0]} >> 8).to(tl.float32) + 1.0) * 5.960464477539063e-08")  # (0, 1]: log is finite
            expr = (f"tl.sqrt(-2.0 * tl.log({u1})) * "
                    f"tl.cos(6.283185307179586 * ({w[1]} >> 8).to(tl.float32) * 5.960464477539063e-08)")
        ct = self.ctype(step.out)
        if ct is not D.float32:
            expr = f"({expr}).to({TL[ct]})"
        return lines + [f"{out} = {expr}"]

    def _random_float64(self, op: str, out: str, w: list[str]) -> list[str]:
        """Uniforms of 53 random bits (two Philox words each), and Box-Muller on two of them."""
        def u53(hi: str, lo: str) -> str:
            return f"((({hi}.to(tl.uint64) << 21) | ({lo} >> 11).to(tl.uint64)).to(tl.float64) * {2.0 ** -53!r})"

        if op == "rand_uniform":
            return [f"{out} = {u53(w[0], w[1])}"]
        u1 = self._take(f"{out}_u1")
        return [f"{u1} = {u53(w[0], w[1])} + {2.0 ** -53!r}",  # (0, 1]: log is finite
                f"{out} = tl.sqrt(-2.0 * tl.log({u1})) * tl.cos(6.283185307179586 * {u53(w[2], w[3])})"]

    def _memory_order(self, operands) -> list[int]:
        """The kernel's dims, outermost first, in the order the stores (then the loads) walk memory.

        An elementwise kernel may visit its elements in any order; visiting them in memory order
        lets a transposed (or channels-last) tensor coalesce to one flat contiguous dim, the same
        128-bit loads as a row-major one. Stores lead, as in torch's TensorIterator."""
        nd = len(self.spec.shape)
        ranked = [o for o in operands if o[0][0] == "store"] + [o for o in operands if o[0][0] == "load"]
        # descending by each operand's stride in turn; ties keep the logical order
        return sorted(range(nd), key=lambda d: tuple(-abs(o[1][d]) for o in ranked))

    def _order(self) -> list[str]:
        """Plain loads, then loads through an index (their index must be loaded first), then the body."""
        loads = sorted(self.loads, key=lambda n: bool(self.loads[n].index))
        return [n for n in loads + [st.out for st in self.spec.body] if n in self.live]

    def _operands(self):
        """((role, name), aligned strides, offset) for live loads and all stores."""
        spec = self.spec
        ops = []
        for ld in spec.loads:
            if ld.name in self.live:
                ops.append((("load", ld.name), IX.align(spec.shape, ld.shape, ld.strides), ld.offset))
        for st in spec.stores:
            ops.append((("store", st.name), IX.align(spec.shape, st.shape, st.strides), st.offset))
        return ops
