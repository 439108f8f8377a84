"""The reduction template: row kernels over the last `reduce_ndim` axes.

The iteration space (rows..., reduced...) is seen as R rows of N elements. A
program owns ROWS rows and walks their N elements RBLOCK at a time:

    rows = pid * ROWS + arange(ROWS)[:, None]     # [ROWS, 1]
    cols = arange(RBLOCK)[None, :]                # [1, RBLOCK]

Every value has a rank: *full* values vary along the row ([ROWS, RBLOCK]),
*row* values do not ([ROWS, 1]: reduction results, per-row loads, and what is
computed from them only). Reductions keep their axis (keep_dims), so row values
broadcast against full ones with no reshaping: softmax is just

    m = max(x); e = exp(x - m); s = sum(e); y = e / s

Two shapes of kernel:

* persistent, when a whole row fits one block (N <= max_persistent): the body is
  straight-line code, each value computed once, each reduction a tree reduction.
* looped, otherwise: reductions are grouped by *level* (how many reductions feed
  their input: max is level 0 in softmax, sum level 1). Each level is one pass
  over the row that accumulates into [ROWS, RBLOCK] accumulators and reduces them
  at the end; the full values a pass needs are recomputed from the loads in it
  (memory traffic is cheaper than keeping rows that do not fit). Full stores go
  in the pass of their value's level.

Scans (cumsum, cumprod) are full values at their input's level: one tl.cumsum /
tl.cumprod along the row in a persistent kernel; in a looped one each block's
scan is combined with a per-row carry (the total of the blocks before it).
"""
from __future__ import annotations

import math

from ... import dtypes as D
from . import indexing as IX
from .lowering import TL, LoweringError, _py
from .render import Renderer, KernelSource, cdiv, next_pow2
from .spec import SORTS, is_row_op


class ReductionRenderer(Renderer):
    def render(self) -> KernelSource:
        spec = self.spec
        rows_shape, red_shape = spec.rows_shape, spec.reduced_shape
        R, N = math.prod(rows_shape), math.prod(red_shape)
        operands = self._operands()
        shapes, strides = IX.coalesce(spec.shape, [o[1] for o in operands], [len(rows_shape), spec.reduce_ndim])
        rshape, cshape = shapes
        full_shape = tuple(rshape) + tuple(cshape)
        wide = spec.numel >= 2 ** 31 or any(
            IX.max_offset(full_shape, s[0] + s[1], o[2]) >= 2 ** 31 for s, o in zip(strides, operands))

        opts = spec.options
        max_persistent = int(opts.get("max_persistent", 4096))
        # a whole row per block when it fits, else blocks of at most 1024 along the row
        rblock = int(opts.get("RBLOCK", next_pow2(N) if next_pow2(N) <= max_persistent
                              else min(1024, 1 << (max_persistent.bit_length() - 1))))
        persistent = rblock >= N
        rows_block = int(opts.get("ROWS", max(1, min(next_pow2(R), max(1, 4096 // rblock), 64))))
        num_warps = max(1, min(8, rows_block * rblock // 256))

        self.ridx = IX.LinearIndex("rows", rshape, "r")
        self.cidx = IX.LinearIndex("cols", cshape, "c")
        self.offsets, self.has_r, self.has_c = {}, {}, {}
        for (key, _, off), (rs, cs) in zip(operands, strides):
            self.offsets[key] = IX.join_offsets([self.ridx.expr(rs), self.cidx.expr(cs)], off)
            self.has_r[key] = any(s != 0 for s in rs)
            self.has_c[key] = any(s != 0 for s in cs)
        self._ranks()
        nrows = len(rows_shape)
        for key, aligned, off in operands:
            if key[0] != "store":
                continue
            st = self.stores[key[1]]
            full = self.full[st.value]
            self.check_store(st, aligned, range(len(spec.shape)) if full else range(nrows))
            if not self.has_r[key] and not (full and self.has_c[key]):
                # one row (and a row value): the pointer still needs the block's [ROWS, 1] shape
                self.offsets[key] = IX.join_offsets(["rows * 0", self.offsets[key] or None], 0)
        self.rmask = "rmask" if R % rows_block else None
        self.cmask = "cmask" if N % rblock else None
        self.N = N
        self.rows_block, self.rblock = rows_block, rblock

        body = ["pid = tl.program_id(0)" + (".to(tl.int64)" if wide else ""),
                "rows = pid * ROWS + tl.arange(0, ROWS)[:, None]"]
        if self.rmask:
            body.append(f"rmask = rows < {R}")
        body += self.ridx.lines()
        self._persistent_rows = persistent
        if persistent:
            body += self._persistent()
        else:
            body += self._looped()
        consts = {"ROWS": rows_block, "RBLOCK": rblock}
        return self.source("reduction", consts, (cdiv(R, rows_block),), num_warps, 1, body)

    # ---- ranks and levels --------------------------------------------------------------
    def _operands(self):
        spec = self.spec
        ops = []
        for ld in spec.loads:
            if ld.name in self.live:
                ops.append((("load", ld.name), IX.align(spec.shape, ld.shape, ld.strides), ld.offset))
        nred = spec.reduce_ndim
        for st in spec.stores:
            shape = st.shape
            if self._reduced_value(st.value):
                if shape is None:
                    shape = spec.rows_shape + (1,) * nred
                elif len(shape) == len(spec.shape) - nred:  # keepdim=False layout
                    strides = st.strides if st.strides is not None else IX.contiguous_strides(shape)
                    shape, st_strides = shape + (1,) * nred, tuple(strides) + (0,) * nred
                    ops.append((("store", st.name), IX.align(spec.shape, shape, st_strides), st.offset))
                    continue
            ops.append((("store", st.name), IX.align(spec.shape, shape, st.strides), st.offset))
        return ops

    def _reduced_value(self, value: str) -> bool:
        """Whether `value` is computed from a reduction and nothing that varies along the row."""
        return not self._full_value(value)

    def _full_value(self, value: str) -> bool:
        # ranks are not known yet while operands are collected: walk the graph
        if value in self.loads:
            ld = self.loads[value]
            aligned = IX.align(self.spec.shape, ld.shape, ld.strides)
            return any(s != 0 for s in aligned[len(self.spec.rows_shape):])
        st = self.steps[value]
        if st.is_reduction:
            return False
        return any(self._full_value(a) for a in st.args if isinstance(a, str))

    def _ranks(self) -> None:
        """full[v]: varies along the row; level[v]: how many reductions deep v is."""
        self.full: dict[str, bool] = {}
        self.level: dict[str, int] = {}
        for ld in self.spec.loads:
            key = ("load", ld.name)
            self.full[ld.name] = self.has_c.get(key, False)
            self.level[ld.name] = 0
        for st in self.spec.body:
            args = [a for a in st.args if isinstance(a, str)]
            lvl = max((self.level[a] for a in args), default=0)
            if st.is_reduction:
                self.full[st.out] = False
                self.level[st.out] = lvl + 1
            elif is_row_op(st):
                self.full[st.out] = True
                self.level[st.out] = lvl
            else:
                self.full[st.out] = any(self.full[a] for a in args)
                self.level[st.out] = lvl

    # ---- masks ---------------------------------------------------------------------------
    def _mask(self, r: bool, c: bool) -> str | None:
        parts = [m for m, use in ((self.rmask, r), (self.cmask, c)) if m and use]
        if len(parts) == 2:
            return "mask"
        return parts[0] if parts else None

    def _col_lines(self, start: str | None) -> list[str]:
        base = "tl.arange(0, RBLOCK)[None, :]"
        out = [f"cols = {start} + {base}" if start else f"cols = {base}"]
        if self.cmask:
            out.append(f"cmask = cols < {self.N}")
            if self.rmask:
                out.append("mask = rmask & cmask")
        return out + self.cidx.lines()

    # ---- emitting values -------------------------------------------------------------------
    def _value_lines(self, name: str, casts: dict) -> list[str]:
        if name in self.loads:
            key = ("load", name)
            return [self.load_line(self.loads[name], self.offsets[key],
                                   self._mask(self.has_r[key], self.has_c[key]))]
        st = self.steps[name]
        if st.op in SORTS:
            return self._sort_lines(st, casts)
        if st.primitive.kind == "scan":
            return self._scan_lines(st, casts)
        return self.step_lines(st, casts)

    def _sort_lines(self, st, casts: dict) -> list[str]:
        """argsort along the row, stable, NaN above every number (torch's order), in one tl.sort.

        Each element becomes a 64-bit key: 32 bits that order as its value does, then its
        column. Sorting the keys sorts by value, ties by column (stable; also when descending,
        as torch keeps ties in index order then); the low 32 bits of the sorted keys are the
        order. Only values of at most 32 bits fit (int64 ones when the caller checked that they
        lie in int32's range: attrs["fits32"]); the row must fit one block."""
        if not self._persistent_rows:
            raise LoweringError("argsort of a row longer than one block")
        src_name = st.args[0]
        dt = self.dtypes[src_name]
        x = self.var[src_name]
        if not self.full[src_name]:
            x = f"tl.broadcast_to({x}, [ROWS, RBLOCK])"
        out = self.var[st.out]
        key, k64 = self._take(f"{out}_key"), self._take(f"{out}_k64")
        if dt.category == D._FLOAT and dt is not D.float64:
            u = self._take(f"{out}_bits")
            xf = x if dt is D.float32 else f"{x}.to(tl.float32)"
            lines = [f"{u} = {xf}.to(tl.uint32, bitcast=True)",
                     # negative floats: every bit flipped; others: the sign bit set; NaN as one positive NaN
                     f"{key} = tl.where(({u} >> 31) != 0, ~{u}, {u} | 0x80000000)",
                     f"{key} = tl.where({xf} != {xf}, 0xFFC00000, {key})",
                     f"{key} = tl.where({xf} == 0, 0x80000000, {key})"]  # -0.0 ties with 0.0, as in torch
        elif dt.category != D._FLOAT and (dt.itemsize <= 4 or st.attrs.get("fits32")):
            lines = [f"{key} = ({x}.to(tl.int64) + 2147483648).to(tl.uint32)"]
        else:
            raise LoweringError(f"argsort of {dt.name}: keys of more than 32 bits")
        if st.attrs.get("descending"):
            lines.append(f"{key} = ~{key}")
        if self.cmask:  # padding sorts after everything, NaN included
            lines.append(f"{key} = tl.where(cmask, {key}, 0xFFFFFFFF)")
        lines.append(f"{k64} = ({key}.to(tl.uint64) << 32) | cols.to(tl.uint64)")
        self.helpers.add("sort_rows")
        return lines + [f"{out} = (_tg_sort_rows({k64}) & 0xFFFFFFFF).to(tl.int64)"]

    # scan -> (combine helper, operator, identity); tl.associative_scan with our own combine
    # function, rather than tl.cumsum, so that the interpreter runs it as well
    _SCANS = {"cumsum": ("add", "+", 0), "cumprod": ("mul", "*", 1)}
    _carry: dict | None = None  # scan value -> its per-row carry variable, inside a looped pass

    def _scan_lines(self, st, casts: dict) -> list[str]:
        """out = scan(x) along the row; padding past the row's end is the identity (it is never
        stored, and in a looped kernel it must not change the carry)."""
        if st.op not in self._SCANS:
            raise LoweringError(f"scan {st.op!r} has no Triton form")
        helper, combine, identity = self._SCANS[st.op]
        self.helpers.add(helper)
        ct = self.ctype(st.out)
        lines: list[str] = []
        src = self._cast(st.args[0], ct, casts, lines)
        if not self.full[st.args[0]]:
            src = f"tl.broadcast_to({src}, [ROWS, RBLOCK])"
        if self.cmask:
            src = f"tl.where(cmask, {src}, {self.consts(identity, ct)})"
        out = self.var[st.out]
        carry = None if self._carry is None else self._carry.get(st.out)
        if carry is None:
            return lines + [f"{out} = tl.associative_scan({src}, 1, _tg_{helper})"]
        blk = self._take(f"{out}_in")
        lines.append(f"{blk} = {src}")
        lines.append(f"{out} = tl.associative_scan({blk}, 1, _tg_{helper}) {combine} {carry}")
        return lines + [f"{carry} = {carry} {combine} _tg_reduce_{helper}({blk}, 1)"]

    def _reduce_input(self, st, casts: dict, lines: list[str]) -> tuple:
        """The reduction's input as a [ROWS, RBLOCK] block in the result's type, padding = identity."""
        red = self.reduction(st)
        self.helpers.add(red.helper)
        src = self._cast(st.args[0], self.ctype(st.out), casts, lines)
        if not self.full[st.args[0]]:
            src = f"tl.broadcast_to({src}, [ROWS, RBLOCK])"
        if self.cmask:
            src = f"tl.where(cmask, {src}, {self.consts(red.identity, self.ctype(st.out))})"
        return red, src

    def _post(self, st, red) -> list[str]:
        if red.post is None:
            return []
        from .lowering import format_expr

        n = self.N
        attrs = {"n": n, "inv_n": 1.0 / n if n else math.nan}
        v = self.var[st.out]
        return [f"{v} = {format_expr(red.post, [v], attrs, self.ctype(st.out), self.consts)}"]

    def _store_lines(self, st) -> list[str]:
        key = ("store", st.name)
        return [self.store_line(st, self.offsets[key], self._mask(self.has_r[key], self.has_c[key]))]

    # ---- persistent: the whole row in one block -----------------------------------------------
    def _persistent(self) -> list[str]:
        body = self._col_lines(None)
        casts: dict = {}
        for name in self._order():
            st = self.steps.get(name)
            if st is not None and st.is_reduction:
                red, src = self._reduce_input(st, casts, body)
                body.append(f"{self.var[name]} = {red.tree(src, 1)}")
                body += self._post(st, red)
            else:
                body += self._value_lines(name, casts)
            for st in self.spec.stores:  # stored as soon as computed
                if st.value == name:
                    body += self._store_lines(st)
        return body

    def _order(self) -> list[str]:
        return [n for n in list(self.loads) + [st.out for st in self.spec.body] if n in self.live]

    # ---- looped: one pass over the row per reduction level --------------------------------------
    def _looped(self) -> list[str]:
        body: list[str] = []
        order = self._order()
        outer_casts: dict = {}
        emitted: set[str] = set()

        def emit_rows(level: int) -> None:
            for name in order:
                if name in emitted or self.full[name] or self.level[name] != level:
                    continue
                st = self.steps.get(name)
                if st is not None and st.is_reduction:
                    continue
                body.extend(self._value_lines(name, outer_casts))
                emitted.add(name)

        emit_rows(0)
        top = max((self.level[n] for n in order), default=0)
        for lvl in range(top + 1):
            reds = [self.steps[n] for n in order
                    if n in self.steps and self.steps[n].is_reduction and self.level[n] == lvl + 1]
            stores = [st for st in self.spec.stores if self.full[st.value] and self.level[st.value] == lvl]
            if reds or stores:
                body += self._pass(reds, stores, order)
                emitted.update(st.out for st in reds)
            emit_rows(lvl + 1)
        for st in self.spec.stores:
            if not self.full[st.value]:
                body += self._store_lines(st)
        return body

    def _pass(self, reds, stores, order) -> list[str]:
        lines: list[str] = []
        accs = {}
        for st in reds:
            red = self.reduction(st)
            ct = self.ctype(st.out)
            acc = self._take(f"acc_{self.var[st.out]}")
            accs[st.out] = (acc, red)
            lines.append(f"{acc} = tl.full([ROWS, RBLOCK], {_py(_typed(red.identity, ct))}, {TL[ct]})")
        lines.append(f"for roff in range(0, {self.N}, RBLOCK):")
        inner = self._col_lines("roff")
        # the full values this pass needs, recomputed from the loads
        need: set[str] = set()
        todo = [st.args[0] for st in reds] + [st.value for st in stores]
        while todo:
            v = todo.pop()
            if v in need or not self.full[v]:
                continue
            need.add(v)
            todo.extend(self.deps.get(v, ()))
        casts: dict = {}
        self._carry = {}
        for name in order:  # a scan this pass computes carries its row total from block to block
            st = self.steps.get(name)
            if name in need and st is not None and st.primitive.kind == "scan":
                ct = self.ctype(name)
                carry = self._take(f"carry_{self.var[name]}")
                self._carry[name] = carry
                ident = self._SCANS.get(st.op, (None, None, 0))[2]
                lines.insert(0, f"{carry} = tl.full([ROWS, 1], {_py(_typed(ident, ct))}, {TL[ct]})")
        for name in order:
            if name in need:
                inner += self._value_lines(name, casts)
        self._carry = None
        for st in reds:
            acc, _ = accs[st.out]
            red, src = self._reduce_input(st, casts, inner)
            inner.append(f"{acc} = {red.accumulate(acc, src)}")
        for st in stores:
            inner += self._store_lines(st)
        lines += ["    " + line for line in inner]
        for st in reds:
            acc, red = accs[st.out]
            lines.append(f"{self.var[st.out]} = {red.tree(acc, 1)}")
            lines += self._post(st, red)
        return lines


def _typed(value, ct: D.DType):
    return float(value) if ct.category == D._FLOAT else int(value) if ct is not D.bool_ else bool(value)
