"""KernelSpecs built from a traced graph's nodes (what the fusion planner hands the codegen)."""
from __future__ import annotations

import pytest

import triton  # noqa: F401  (the test extra installs it: these tests must fail, not skip, without it)
import triton_cases as C
from tracegrad.kernels.triton import LoweringError
from tracegrad.kernels.triton.spec import from_nodes

CASES = C.graph_cases()


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_group_from_nodes(case, seed):
    C.check(case, seed)


def test_shapes_and_kinds_come_from_the_nodes():
    softmax, linear, chain = (c.spec for c in CASES[:3])
    assert (softmax.kind, softmax.shape, softmax.reduce_ndim) == ("reduction", (6, 24), 1)
    assert [ld.name for ld in softmax.loads] == ["x"]
    assert (linear.kind, linear.matmul.a, linear.matmul.b) == ("matmul", "a", "wt")
    assert linear.load("wt").strides == (1, 16)
    assert chain.kind == "pointwise" and chain.body[0].compute.name == "float16"


def test_view_nodes_become_strided_loads():
    spec = next(c for c in CASES if c.id == "graph-views").spec
    assert {ld.name: ld.strides for ld in spec.loads} == {"rt": (1, 5), "p": (8, 1), "qe": (0, 1)}
    assert [st.op for st in spec.body] == ["exp", "mul", "add"]


def test_a_view_of_a_register_value_is_refused():
    a, t, tt = C.GValue("a", (4, 6)), C.GValue("t", (4, 6)), C.GValue("tt", (6, 4), strides=(1, 6))
    with pytest.raises(LoweringError, match="computed in registers"):
        from_nodes("bad", [C.GNode("neg", [a], t), C.GNode("permute", [t], tt, {"dims": (1, 0)})], [tt])


def test_reducing_a_leading_dim_is_refused():
    x, s = C.GValue("x", (4, 5)), C.GValue("s", (1, 5))
    with pytest.raises(LoweringError, match="only trailing dims"):
        from_nodes("bad", [C.GNode("sum", [x], s, {"dims": (0,), "keepdim": True})], [s])


def test_matmul_must_open_the_group():
    a, b = C.GValue("a", (4, 4)), C.GValue("b", (4, 4))
    t, mm = C.GValue("t", (4, 4)), C.GValue("mm", (4, 4))
    with pytest.raises(LoweringError, match="open its fusion group"):
        from_nodes("bad", [C.GNode("neg", [a], t), C.GNode("matmul", [t, b], mm)], [mm])


def test_indexed_loads_and_stores_are_checked():
    """An index is a plain integer load, and only pointwise kernels read or write through one."""
    from tracegrad.kernels.triton.render import render
    from tracegrad.kernels.triton.spec import KernelSpec, Load, Step, Store

    idx, x = Load("i", "int64", (3, 4)), Load("x", "float32", (3, 4), (5, 0), 0, (("i", 1),))
    src = render(KernelSpec("gather", (3, 4), (x, idx), (), (Store("out", "x"),))).text
    # the index is loaded before the load that reads through it, whatever the spec's order
    assert src.index("i = tl.load(") < src.index("x = tl.load(x_ptr + x0 * 5 + i.to(tl.int64)")
    add = Store("out", "x", "float32", (3, 4), (5, 0), 0, (("i", 1),), True)
    assert "tl.atomic_add(out_ptr + x0 * 5 + i.to(tl.int64), x" in render(
        KernelSpec("sadd", (3, 4), (idx, Load("x", "float32", (3, 4))), (), (add,))).text
    with pytest.raises(ValueError, match="not an integer load"):
        KernelSpec("bad", (3, 4), (Load("f", "float32", (3, 4)), Load("x", "float32", (3, 4), (5, 0), 0,
                                                                     (("f", 1),))), (), (Store("out", "x"),))
    with pytest.raises(ValueError, match="only pointwise kernels"):
        KernelSpec("bad", (3, 4), (idx, x), (Step("s", "sum", ("x",), {"dims": (1,), "keepdim": True}),),
                   (Store("out", "s"),), reduce_ndim=1)


def test_a_scan_runs_along_the_rows_of_a_row_kernel():
    from tracegrad.kernels.triton.render import render
    from tracegrad.kernels.triton.spec import KernelSpec, Load, Step, Store

    scan = Step("y", "cumsum", ("x",), {"dim": 1, "dtype": "float32"}, "float32")
    spec = KernelSpec("cs", (3, 7), (Load("x", "float32", (3, 7)),), (scan,), (Store("out", "y"),), 1)
    assert spec.kind == "reduction" and "tl.associative_scan(" in render(spec).text
    with pytest.raises(ValueError, match="reduces exactly one trailing axis"):
        KernelSpec("cs", (3, 7), (Load("x", "float32", (3, 7)),), (scan,), (Store("out", "y"),))
