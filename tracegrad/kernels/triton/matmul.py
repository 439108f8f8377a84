"""The matmul template: one BLOCK_M x BLOCK_N output tile per program, a K loop of
`tl.dot`, and the spec's body as the epilogue on the float32 accumulator.

    pid_m, pid_n   from program_id(0), in groups of GROUP_M rows of tiles so that
                   neighbouring programs reuse the same B columns from L2
    batch          program_id(1), split into the batch coordinates (each operand
                   has its own batch strides; 0 where it broadcasts)
    acc            float32 (float64 for float64 inputs); float16/bfloat16 inputs
                   multiply on tensor cores and accumulate in float32, as torch's
                   cuBLAS calls do; float32 uses TF32 only when allow_tf32 is set
    epilogue       bias, activation, residual... are body steps over `acc` and
                   loads indexed by (batch, m, n); stores are masked to the edges

Rows past M and columns past N are read from row M-1 wrapped (rm % M): every
load stays unmasked along M and N, only a ragged K needs a mask.
"""
from __future__ import annotations

from ... import dtypes as D
from . import indexing as IX
from .lowering import TL, LoweringError
from .render import Renderer, KernelSource, cdiv, next_pow2

_DOT_DTYPES = (D.float16, D.bfloat16, D.float32, D.float64)


def default_tiles(dtype: D.DType, M: int, N: int, K: int, tf32: bool = False, b_k_contiguous: bool = False) -> dict:
    """Tile sizes: big tiles for big problems, shrunk (never below 16, tl.dot's minimum) for small ones.

    Tensor-core dots (float16/bfloat16, TF32) take 128x128 tiles; exact float32 and
    float64 dots run on the FMA units, whose operands live in registers, so their
    tiles are smaller (64x64x16 compiles for sm_90 with no spills, 90/126 registers).
    An exact float32 dot reading b K-contiguous (x @ w.T, linear's layout) spills at
    64x64 (ptxas stops at 96 registers), so it takes 64x32 (about 72, none spilled)."""
    if dtype in (D.float16, D.bfloat16):
        bm, bn, bk, warps, stages = 128, 128, 64, 8, 3
    elif dtype is D.float32 and tf32:
        bm, bn, bk, warps, stages = 128, 128, 32, 8, 3
    elif dtype is D.float32 and b_k_contiguous:
        bm, bn, bk, warps, stages = 64, 32, 16, 4, 2
    else:
        bm, bn, bk, warps, stages = 64, 64, 16, 4, 2
    fit = lambda b, n: max(16, min(b, next_pow2(n)))  # noqa: E731
    bm, bn, bk = fit(bm, M), fit(bn, N), fit(bk, K)
    if bm * bn <= 64 * 64:
        warps = 4
    return {"BLOCK_M": bm, "BLOCK_N": bn, "BLOCK_K": bk, "GROUP_M": 8, "num_warps": warps, "num_stages": stages}


class MatmulRenderer(Renderer):
    def render(self) -> KernelSource:
        spec, mm = self.spec, self.spec.matmul
        a, b = spec.load(mm.a), spec.load(mm.b)
        if a.dtype not in _DOT_DTYPES:
            raise LoweringError(f"matmul of {a.dtype.name} has no Triton kernel (tl.dot takes floating point)")
        batch = spec.shape[:-2]
        M, N = spec.shape[-2:]
        K = a.shape[-1]
        b_k_contiguous = b.strides is not None and len(b.strides) >= 2 and b.strides[-2] == 1 and N > 1
        tiles = default_tiles(a.dtype, M, N, K, mm.allow_tf32, b_k_contiguous)
        tiles.update({k: v for k, v in spec.options.items() if k in tiles})
        bm, bn, bk, gm = tiles["BLOCK_M"], tiles["BLOCK_N"], tiles["BLOCK_K"], tiles["GROUP_M"]

        # operands over (batch..., M, N): epilogue loads and stores
        kshape = spec.shape
        operands = []
        for ld in spec.loads:
            if ld.name in self.live and ld.name not in (mm.a, mm.b):
                operands.append((("load", ld.name), IX.align(kshape, ld.shape, ld.strides), ld.offset))
        for st in spec.stores:
            operands.append((("store", st.name), IX.align(kshape, st.shape, st.strides), st.offset))
        # a and b as (batch..., M, N)-shaped walks: a moves along batch and M, b along batch and N
        a_str = self._operand_strides(a)
        b_str = self._operand_strides(b)
        a_walk = IX.align(batch, a.shape[:-2], a_str[:-2]) + (a_str[-2], 0)
        b_walk = IX.align(batch, b.shape[:-2], b_str[:-2]) + (0, b_str[-1])
        all_ops = operands + [(("a", mm.a), a_walk, a.offset), (("b", mm.b), b_walk, b.offset)]
        shapes, strides = IX.coalesce(kshape, [o[1] for o in all_ops], [len(batch), 1, 1])
        bshape = shapes[0]
        wide = any(IX.max_offset(kshape, o[1], o[2]) + K * 8 >= 2 ** 31 for o in all_ops)

        bidx = IX.LinearIndex("bid", bshape, "b")
        midx = IX.LinearIndex("rm", shapes[1], "m")
        nidx = IX.LinearIndex("rn", shapes[2], "n")
        offsets, moves = {}, {}
        for (key, aligned, off), (bs, ms, ns) in zip(operands, strides):  # the epilogue's operands
            offsets[key] = IX.join_offsets([bidx.expr(bs), midx.expr(ms), nidx.expr(ns)], off)
            moves[key] = (any(ms), any(ns))
            if key[0] == "store":
                self.check_store(self.stores[key[1]], aligned, range(len(kshape)))
                # an output one row or one column wide (M or N is 1): the pointer still needs the
                # tile's shape, or Triton refuses to store the tile through it
                pad = [z for z, moved in (("rm * 0", any(ms)), ("rn * 0", any(ns))) if not moved]
                if pad:
                    offsets[key] = IX.join_offsets([" + ".join(pad), offsets[key] or None], 0)

        even_m, even_n, even_k = M % bm == 0, N % bn == 0, K % bk == 0
        sak, sbk = a_str[-1], b_str[-2]
        acc_t = D.float64 if a.dtype is D.float64 else D.float32
        body = [
            "pid = tl.program_id(0)",
            "bid = tl.program_id(1)" + (".to(tl.int64)" if wide else ""),
            f"num_pid_m = {cdiv(M, bm)}",
            f"num_pid_n = {cdiv(N, bn)}",
            "group = GROUP_M * num_pid_n",
            "first_m = (pid // group) * GROUP_M",
            "group_m = tl.minimum(num_pid_m - first_m, GROUP_M)",
            "pid_m = first_m + (pid % group) % group_m",
            "pid_n = (pid % group) // group_m",
            "rm = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)[:, None]",
            "rn = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)[None, :]",
            "rk = tl.arange(0, BLOCK_K)",
        ]
        if wide:
            body[-3:-1] = [body[-3].replace("pid_m *", "pid_m.to(tl.int64) *"),
                           body[-2].replace("pid_n *", "pid_n.to(tl.int64) *")]
        body += bidx.lines()
        # A and B pointers at k = 0; rows past M (columns past N) wrap onto valid ones
        ram = "rm" if even_m else f"rm % {M}"
        rbn = "rn" if even_n else f"rn % {N}"
        body.append(f"ram = {ram}")
        body.append(f"rbn = {rbn}")
        a_mn = self._walk_expr(bidx, strides[-2][0], a_str[-2], "ram", a.offset, shapes[1])
        b_mn = self._walk_expr(bidx, strides[-1][0], b_str[-1], "rbn", b.offset, shapes[2])
        body.append(f"a_ptrs = {self.ptr[('load', mm.a)]} + {a_mn} + rk[None, :]{_times(sak)}")
        body.append(f"b_ptrs = {self.ptr[('load', mm.b)]} + {b_mn} + rk[:, None]{_times(sbk)}")
        body.append(f"acc = tl.full([BLOCK_M, BLOCK_N], 0.0, {TL[acc_t]})")
        body.append(f"for k in range(0, {K}, BLOCK_K):")
        if even_k:
            body.append("    a_tile = tl.load(a_ptrs)")
            body.append("    b_tile = tl.load(b_ptrs)")
        else:
            body.append(f"    a_tile = tl.load(a_ptrs, mask=rk[None, :] < {K} - k, other=0.0)")
            body.append(f"    b_tile = tl.load(b_ptrs, mask=rk[:, None] < {K} - k, other=0.0)")
        if a.dtype in (D.float32, D.float64):
            dot = "dot_tf32" if (a.dtype is D.float32 and mm.allow_tf32) else "dot_ieee"
        else:
            dot = "dot"
        self.helpers.add(dot)
        body.append(f"    acc = _tg_{dot}(a_tile, b_tile, acc)")
        body.append(f"    a_ptrs += BLOCK_K{_times(sak)}")
        body.append(f"    b_ptrs += BLOCK_K{_times(sbk)}")
        body += midx.lines() + nidx.lines()
        body.append(f"{self.var[mm.out]} = acc")
        # the epilogue: body steps over acc and (m, n)-indexed loads; output edges masked
        mmask = None if even_m else "mmask"
        nmask = None if even_n else "nmask"
        if mmask:
            body.append(f"mmask = rm < {M}")
        if nmask:
            body.append(f"nmask = rn < {N}")
        if mmask and nmask:
            body.append("mask = mmask & nmask")

        def mask_for(key) -> str | None:
            on_m, on_n = moves[key]
            if key[0] == "store":
                on_m = on_n = True  # every output element is written once
            m, n = mmask if on_m else None, nmask if on_n else None
            return "mask" if (m and n) else (m or n)

        casts: dict = {}
        for name in [n for n in [ld.name for ld in spec.loads] + [st.out for st in spec.body] if n in self.live]:
            if name in (mm.a, mm.b):
                continue
            if name in self.loads:
                key = ("load", name)
                body.append(self.load_line(self.loads[name], offsets[key], mask_for(key)))
            else:
                body += self.step_lines(self.steps[name], casts)
        for st in spec.stores:
            if st.value in (mm.a, mm.b):
                raise LoweringError("a matmul kernel stores its epilogue's values, not its operands")
            key = ("store", st.name)
            body.append(self.store_line(st, offsets[key], mask_for(key)))
        constexprs = {"BLOCK_M": bm, "BLOCK_N": bn, "BLOCK_K": bk, "GROUP_M": gm}
        grid = (cdiv(M, bm) * cdiv(N, bn), max(1, _prod(batch)))
        if grid[1] > 65535:  # CUDA's limit on gridDim.y
            raise LoweringError(f"a batch of {grid[1]} matrices exceeds the grid's second dimension")
        return self.source("matmul", constexprs, grid, tiles["num_warps"], tiles["num_stages"], body)

    @staticmethod
    def _operand_strides(ld) -> tuple[int, ...]:
        return ld.strides if ld.strides is not None else IX.contiguous_strides(ld.shape)

    @staticmethod
    def _walk_expr(bidx, bstrides, stride: int, var: str, offset: int, mshape) -> str:
        """batch offset + var * stride (+ offset): one operand's start of row/column `var`."""
        parts = [bidx.expr(bstrides), f"{var}{_times(stride)}" if stride else None]
        return IX.join_offsets(parts, offset) or "0"


def _times(stride: int) -> str:
    if stride == 1:
        return ""
    return f" * {stride}" if stride >= 0 else f" * ({stride})"


def _prod(shape) -> int:
    out = 1
    for n in shape:
        out *= n
    return out
