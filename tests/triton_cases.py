"""The Triton kernels the tests generate, and how to check one against torch.

Each `Case` is a KernelSpec, the value domain of each input, and a torch function
computing what every store should hold. `check(case, seed)` fills the inputs'
storages with random data (laid out as the spec's strides and offsets say), runs
the kernel under Triton's interpreter on that NumPy memory, and compares each
output with torch on the same inputs: dtype, shape and values. Float results
that differ from torch beyond its default tolerance still pass when they are no
farther from a float64 reference than torch's own result is (DESIGN.md's rule;
a fused float16 chain keeps float32 intermediates, torch rounds after each op).

The case lists at the bottom are what test_triton_*.py run and what
test_aot_sm90.py compiles for sm_90, so every kernel the tests generate is also
compiled ahead of time. torch is only the reference: tracegrad never imports it.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from tracegrad import dtypes as D
from tracegrad.dispatch import f32_to_bf16
from tracegrad.kernels.triton import KernelSpec, Load, MatMul, Step, Store
from tracegrad.kernels.triton.interpret import run
from tracegrad.kernels.triton.spec import contiguous_strides

FLOATS = ["float32", "float16", "bfloat16", "float64"]
INTS = ["int32", "int64", "int8", "uint8"]

# ---- layouts ---------------------------------------------------------------------------------


def layout(shape, kind: str = "contiguous"):
    """(strides, offset) of a tensor of `shape` stored as `kind` inside its storage.

    contiguous, offset (starts 5 elements in), transposed (last two dims swapped in
    memory), strided (every other element along the last dim), flipped (last dim
    reversed: a negative stride)."""
    shape = tuple(shape)
    if kind == "contiguous":
        return contiguous_strides(shape), 0
    if kind == "offset":
        return contiguous_strides(shape), 5
    if kind == "transposed":
        mem = shape[:-2] + (shape[-1], shape[-2])
        s = list(contiguous_strides(mem))
        s[-1], s[-2] = s[-2], s[-1]
        return tuple(s), 0
    if kind == "strided":
        s = contiguous_strides(shape[:-1] + (2 * shape[-1],))
        return s[:-1] + (2,), 1
    if kind == "flipped":
        s = list(contiguous_strides(shape))
        s[-1] = -1
        return tuple(s), shape[-1] - 1
    raise ValueError(kind)


def storage_size(shape, strides, offset) -> int:
    if any(n == 0 for n in shape):
        return max(offset, 1)
    return offset + sum((n - 1) * s for n, s in zip(shape, strides) if s > 0) + 1


# ---- data ----------------------------------------------------------------------------------------
def _floats(n, domain, rng) -> np.ndarray:
    if domain == "any":
        return rng.uniform(-3, 3, n)
    if domain == "pos":
        return rng.uniform(0.25, 4, n)
    if domain == "unit":
        return rng.uniform(-0.9, 0.9, n)
    if domain == "nonzero":
        return rng.choice([-1.0, 1.0], n) * rng.uniform(0.5, 3, n)
    if domain == "halves":  # ties for round(), and values on both sides of integers
        return rng.integers(-8, 9, n) / 2 + rng.choice([0.0, 0.0, 0.3, -0.3], n)
    if domain == "special":
        vals = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, 1.5, -2.5, 0.25, 3.0, -1.0])
        return rng.choice(vals, n)
    if domain == "exp":  # exponents for pow
        return rng.uniform(-2, 2, n)
    if domain == "near1":  # products of many of these neither vanish nor blow up
        return rng.uniform(0.8, 1.25, n)
    raise ValueError(domain)


def _ints(n, domain, dtype: str, rng) -> np.ndarray:
    lo = 0 if dtype == "uint8" else None
    if domain in ("pos", "nonzero"):
        v = rng.integers(1, 8, n)
        if domain == "nonzero" and lo is None:
            v = v * rng.choice([-1, 1], n)
        return v
    if domain == "unit":
        return rng.integers(0 if lo == 0 else -1, 2, n)
    if domain == "exp":
        return rng.integers(0, 4, n)
    if domain == "small":
        return rng.integers(0 if lo == 0 else -3, 4, n)
    return rng.integers(0 if lo == 0 else -20, 21, n)


def fill(size: int, dtype: D.DType, domain: str, rng) -> np.ndarray:
    """A storage of `size` elements of `dtype` with values from `domain`."""
    if dtype is D.bool_:
        return rng.integers(0, 2, size).astype(np.bool_)
    if dtype.category == D._INT:
        return _ints(size, domain, dtype.name, rng).astype(dtype.np)
    vals = _floats(size, domain, rng)
    if dtype is D.bfloat16:
        return f32_to_bf16(vals.astype(np.float32))
    return vals.astype(dtype.np)


def sentinel(size: int, dtype: D.DType) -> np.ndarray:
    """Output storage before the kernel runs: values a missed write cannot pass for."""
    if dtype is D.bool_:
        return np.ones(size, np.bool_)
    if dtype is D.bfloat16:
        return np.full(size, 0x7FC0, np.uint16)  # NaN
    if dtype.category == D._FLOAT:
        return np.full(size, np.nan, dtype.np)
    return np.full(size, 77, dtype.np)


def torch_view(storage: np.ndarray, dtype: D.DType, shape, strides, offset) -> torch.Tensor:
    """A torch tensor over a copy of `storage` with the given view (negative strides via flip)."""
    if dtype is D.bfloat16:
        base = torch.from_numpy(storage.view(np.int16).copy()).view(torch.bfloat16)
    else:
        base = torch.from_numpy(storage.copy())
    flips = [d for d, s in enumerate(strides) if s < 0]
    start = offset + sum((shape[d] - 1) * strides[d] for d in flips)
    view = torch.as_strided(base, tuple(shape), tuple(abs(s) for s in strides), start)
    return view.flip(flips) if flips else view


def tdtype(name: str) -> torch.dtype:
    return {"bool": torch.bool}.get(name) or getattr(torch, name)


# ---- cases ---------------------------------------------------------------------------------------
@dataclass
class Case:
    """A kernel and torch's answer for it.

    ref takes a dict of torch tensors (the loads, same values and layout) and
    returns a dict store name -> expected tensor (in the store's dtype)."""

    id: str
    spec: KernelSpec
    ref: Callable[[dict], dict]
    domains: dict = field(default_factory=dict)
    tol: dict = field(default_factory=dict)  # store name or "*" -> (rtol, atol)
    # optional rng -> ({load name: flat storage}, {extra name: torch tensor for ref}): inputs that must
    # be derived from one another (a backward op's saved output is f(x) of its x)
    make_inputs: Callable | None = None

    def __repr__(self) -> str:
        return f"Case({self.id})"


def _geometry(spec: KernelSpec, obj) -> tuple:
    shape = obj.shape if obj.shape is not None else spec.shape
    strides = obj.strides if obj.strides is not None else contiguous_strides(shape)
    return tuple(shape), tuple(strides), obj.offset


def execute(case: Case, seed: int):
    """Run the case's kernel under the interpreter; return (ours, torch inputs) as torch tensors."""
    rng = np.random.default_rng(seed)
    spec = case.spec
    storages, inputs = {}, {}
    given, extra = case.make_inputs(rng) if case.make_inputs is not None else ({}, {})
    for ld in spec.loads:
        shape, strides, off = _geometry(spec, ld)
        st = given.get(ld.name)
        if st is None:
            st = fill(storage_size(shape, strides, off), ld.dtype, case.domains.get(ld.name, "any"), rng)
        storages[ld.name] = st
        inputs[ld.name] = torch_view(st, ld.dtype, shape, strides, off)
    out_dtypes = {}
    from tracegrad.kernels.triton.spec import infer_dtypes

    dts = infer_dtypes(spec)
    for s in spec.stores:
        shape, strides, off = _geometry(spec, s)
        dt = s.dtype or dts[s.value]
        out_dtypes[s.name] = dt
        storages[s.name] = sentinel(storage_size(shape, strides, off), dt)
    run(spec, storages)
    inputs.update(extra)
    ours = {}
    for s in spec.stores:
        shape, strides, off = _geometry(spec, s)
        ours[s.name] = torch_view(storages[s.name], out_dtypes[s.name], shape, strides, off)
    return ours, inputs


_TOL = {torch.float32: (1.3e-6, 1e-5), torch.float16: (1e-3, 1e-5), torch.bfloat16: (1.6e-2, 1e-5),
        torch.float64: (1e-7, 1e-7)}


def describe(case: Case, seed: int) -> str:
    parts = [f"case {case.id} (seed {seed}), kernel shape {case.spec.shape}"]
    for ld in case.spec.loads:
        shape, strides, off = _geometry(case.spec, ld)
        parts.append(f"  load {ld.name}: {ld.dtype.name} {shape} strides {strides} offset {off}")
    parts.append("  body: " + "; ".join(f"{s.out}={s.op}{s.args}" for s in case.spec.body))
    return "\n".join(parts)


def check(case: Case, seed: int) -> None:
    """Assert the kernel's stores match torch on the same inputs."""
    ours, inputs = execute(case, seed)
    expected = case.ref(inputs)
    ref64 = None
    for name, got in ours.items():
        want = expected[name]
        where = f"store {name!r}\n{describe(case, seed)}"
        assert got.dtype == want.dtype, f"dtype {got.dtype} != torch's {want.dtype} for {where}"
        assert tuple(got.shape) == tuple(want.shape), f"shape {tuple(got.shape)} != {tuple(want.shape)} for {where}"
        if not got.is_floating_point():
            if not torch.equal(got, want):
                bad = (got != want).nonzero()[:5].tolist()
                raise AssertionError(f"values differ at {bad}: ours {got.flatten()[:8].tolist()} torch "
                                     f"{want.flatten()[:8].tolist()} for {where}")
            continue
        rtol, atol = case.tol.get(name, case.tol.get("*", _TOL[got.dtype]))
        try:
            torch.testing.assert_close(got, want, rtol=rtol, atol=atol, equal_nan=True)
            continue
        except AssertionError as e:
            first = str(e)
        # the float64-reference rule: as close to the exact answer as torch's own result is
        if ref64 is None:
            ref64 = case.ref({k: v.double() if v.is_floating_point() else v for k, v in inputs.items()})
        exact = ref64[name].double()
        g, w = got.double(), want.double()
        assert torch.equal(torch.isnan(g), torch.isnan(w)), f"NaN positions differ for {where}\n{first}"
        ok = ~torch.isnan(g)
        err_ours = (g - exact).abs()[ok]
        err_torch = (w - exact).abs()[ok]
        # pointwise: element by element; a reduction (matmul's K loop, a row sum) adds in another
        # order than torch, which moves the rounding to other elements, so there torch's worst error
        # over the store is the bound
        reduces = case.spec.matmul is not None or case.spec.reduce_ndim > 0
        bound = err_torch.max() if reduces and err_torch.numel() else err_torch
        allowed = bound + atol + rtol * exact.abs()[ok]
        if not bool((err_ours <= allowed).all()):
            raise AssertionError(f"farther from the float64 answer than torch: max error ours "
                                 f"{err_ours.max().item():.3g} vs torch {err_torch.max().item():.3g} "
                                 f"for {where}\n{first}")


# ---- 1. every pointwise op of the op table ----------------------------------------------------------------
def _tdiv_trunc(a, b):
    return torch.div(a, b, rounding_mode="trunc")


# op -> (torch function, domains of its tensor inputs, dtypes)
UNARY = {
    "exp": (torch.exp, ("any",), FLOATS + ["int32"]),
    "exp2": (torch.exp2, ("any",), FLOATS),
    "expm1": (torch.expm1, ("any",), FLOATS),
    "log": (torch.log, ("pos",), FLOATS + ["int64"]),
    "log2": (torch.log2, ("pos",), FLOATS),
    "log10": (torch.log10, ("pos",), FLOATS),
    "log1p": (torch.log1p, ("pos",), FLOATS),
    "sqrt": (torch.sqrt, ("pos",), FLOATS + ["uint8"]),
    "rsqrt": (torch.rsqrt, ("pos",), FLOATS),
    "sin": (torch.sin, ("any",), FLOATS),
    "cos": (torch.cos, ("any",), FLOATS),
    "tan": (torch.tan, ("unit",), FLOATS),
    "asin": (torch.asin, ("unit",), FLOATS),
    "acos": (torch.acos, ("unit",), FLOATS),
    "atan": (torch.atan, ("any",), FLOATS),
    "sinh": (torch.sinh, ("any",), FLOATS),
    "cosh": (torch.cosh, ("any",), FLOATS),
    "tanh": (torch.tanh, ("any",), FLOATS + ["int8"]),
    "sigmoid": (torch.sigmoid, ("any",), FLOATS),
    "reciprocal": (torch.reciprocal, ("nonzero",), FLOATS),
    "erf": (torch.erf, ("any",), FLOATS),
    "neg": (torch.neg, ("any",), FLOATS + INTS),
    "abs": (torch.abs, ("any",), FLOATS + INTS),
    "sign": (torch.sign, ("special",), FLOATS + INTS),
    "relu": (torch.relu, ("special",), FLOATS + INTS),
    "floor": (torch.floor, ("halves",), FLOATS + INTS),
    "ceil": (torch.ceil, ("halves",), FLOATS + INTS),
    "trunc": (torch.trunc, ("halves",), FLOATS + INTS),
    "round": (torch.round, ("halves",), FLOATS + INTS),
    "logical_not": (torch.logical_not, ("special",), FLOATS + INTS + ["bool"]),
    "bitwise_not": (torch.bitwise_not, ("any",), INTS + ["bool"]),
    "isnan": (torch.isnan, ("special",), FLOATS + ["int32"]),
    "isinf": (torch.isinf, ("special",), FLOATS + ["int32"]),
    "isfinite": (torch.isfinite, ("special",), FLOATS + ["int32"]),
    # nn activations (tracegrad/ops/nn_ops.py)
    "gelu": (F.gelu, ("any",), FLOATS),
    "silu": (F.silu, ("any",), FLOATS),
}
# activations with attrs: op -> [(attrs, torch function)]
ACTIVATIONS = {
    "gelu": [({"approximate": "tanh"}, lambda x: F.gelu(x, approximate="tanh"))],
    "leaky_relu": [({"negative_slope": 0.2}, lambda x: F.leaky_relu(x, 0.2))],
    "elu": [({"alpha": 1.5}, lambda x: F.elu(x, 1.5))],
    "softplus": [({"beta": 2.0, "threshold": 3.0}, lambda x: F.softplus(x, 2.0, 3.0))],
    "hardtanh": [({"lo": -0.5, "hi": 2.0}, lambda x: F.hardtanh(x, -0.5, 2.0))],
}
_ARITH = FLOATS + INTS
BINARY = {
    "add": (torch.add, ("any", "any"), _ARITH + ["bool"]),
    "sub": (torch.sub, ("any", "any"), _ARITH),
    "mul": (torch.mul, ("any", "any"), _ARITH + ["bool"]),
    "div": (torch.div, ("any", "nonzero"), FLOATS + ["int32"]),
    "pow": (torch.pow, ("pos", "exp"), FLOATS + ["int32", "int64"]),
    "maximum": (torch.maximum, ("special", "any"), _ARITH + ["bool"]),
    "minimum": (torch.minimum, ("special", "any"), _ARITH + ["bool"]),
    "floor_divide": (torch.floor_divide, ("any", "nonzero"), _ARITH),
    "trunc_divide": (_tdiv_trunc, ("any", "nonzero"), _ARITH),
    "remainder": (torch.remainder, ("any", "nonzero"), _ARITH),
    "fmod": (torch.fmod, ("any", "nonzero"), _ARITH),
    "atan2": (torch.atan2, ("any", "any"), FLOATS),
    "eq": (torch.eq, ("halves", "halves"), _ARITH + ["bool"]),
    "ne": (torch.ne, ("halves", "halves"), _ARITH + ["bool"]),
    "lt": (torch.lt, ("halves", "halves"), _ARITH + ["bool"]),
    "le": (torch.le, ("halves", "halves"), _ARITH + ["bool"]),
    "gt": (torch.gt, ("halves", "halves"), _ARITH + ["bool"]),
    "ge": (torch.ge, ("halves", "halves"), _ARITH + ["bool"]),
    "logical_and": (torch.logical_and, ("special", "special"), _ARITH + ["bool"]),
    "logical_or": (torch.logical_or, ("special", "special"), _ARITH + ["bool"]),
    "logical_xor": (torch.logical_xor, ("special", "special"), _ARITH + ["bool"]),
    "bitwise_and": (torch.bitwise_and, ("any", "any"), INTS + ["bool"]),
    "bitwise_or": (torch.bitwise_or, ("any", "any"), INTS + ["bool"]),
    "bitwise_xor": (torch.bitwise_xor, ("any", "any"), INTS + ["bool"]),
}
# ops whose integer forms need small operands (pow overflows otherwise)
_INT_DOMAINS = {"pow": ("small", "exp")}
SHAPE = (6, 10)


def _op_case(op: str, ref_fn, domains, dtypes, attrs=None, suffix="") -> Case:
    """One kernel per op: each dtype is its own load -> step -> store chain in it."""
    loads, body, stores, doms = [], [], [], {}
    for dt in dtypes:
        args = []
        for i, dom in enumerate(domains):
            name = f"{'xyz'[i]}_{dt}"
            loads.append(Load(name, dt))
            if D._NAMES[dt].category != D._FLOAT and op in _INT_DOMAINS:
                dom = _INT_DOMAINS[op][i]
            doms[name] = dom
            args.append(name)
        body.append(Step(f"r_{dt}", op, tuple(args), attrs or {}))
        stores.append(Store(f"out_{dt}", f"r_{dt}"))

    def ref(t, dtypes=dtypes, n=len(domains)):
        return {f"out_{dt}": ref_fn(*[t[f"{'xyz'[i]}_{dt}"] for i in range(n)]) for dt in dtypes}

    return Case(f"op-{op}{suffix}", KernelSpec(f"op_{op}{suffix}", SHAPE, loads, body, stores), ref, doms)


def op_cases() -> list[Case]:
    cases = [_op_case(op, fn, doms, dts) for op, (fn, doms, dts) in UNARY.items()]
    cases += backward_cases()
    cases += [_op_case(op, fn, doms, dts) for op, (fn, doms, dts) in BINARY.items()]
    cases += [_op_case(op, fn, ("any",), FLOATS, attrs, f"-{i}") for op, variants in ACTIVATIONS.items()
              for i, (attrs, fn) in enumerate(variants)]
    # leaky_relu's backward, g where x > 0 else g * slope, against torch's own backward kernel
    cases.append(_op_case("leaky_relu_backward", lambda g, x: torch.ops.aten.leaky_relu_backward(g, x, 0.2, False),
                          ("any", "special"), FLOATS, {"negative_slope": 0.2}))
    # where: a bool condition picks between two tensors of each dtype
    loads, body, stores = [Load("c", "bool")], [], []
    wdts = FLOATS + INTS + ["bool"]
    for dt in wdts:
        loads += [Load(f"a_{dt}", dt), Load(f"b_{dt}", dt)]
        body.append(Step(f"y_{dt}", "where", ("c", f"a_{dt}", f"b_{dt}")))
        stores.append(Store(f"out_{dt}", f"y_{dt}"))
    cases.append(Case("op-where", KernelSpec("op_where", SHAPE, loads, body, stores),
                      lambda t: {f"out_{dt}": torch.where(t["c"], t[f"a_{dt}"], t[f"b_{dt}"]) for dt in wdts}))
    # masked_fill with a Python number
    loads, body, stores = [Load("m", "bool")], [], []
    mdts = FLOATS + INTS
    for dt in mdts:
        loads.append(Load(f"x_{dt}", dt))
        body.append(Step(f"y_{dt}", "masked_fill", (f"x_{dt}", "m", 2)))
        stores.append(Store(f"out_{dt}", f"y_{dt}"))
    cases.append(Case("op-masked_fill", KernelSpec("op_masked_fill", SHAPE, loads, body, stores),
                      lambda t: {f"out_{dt}": t[f"x_{dt}"].masked_fill(t["m"], 2) for dt in mdts}))
    # clamp: both bounds, only one, NaN kept
    for lo, hi, tag in [(-0.5, 1.25, "both"), (None, 0.5, "hi"), (-1.5, None, "lo")]:
        dts = FLOATS
        ilo = None if lo is None else int(math.floor(lo * 4))
        ihi = None if hi is None else int(math.ceil(hi * 4))
        loads, body, stores = [], [], []
        for dt in dts + ["int32", "int8"]:
            isint = dt in INTS
            b = {"lo": ilo if isint else lo, "hi": ihi if isint else hi}
            loads.append(Load(f"x_{dt}", dt))
            body.append(Step(f"y_{dt}", "clamp", (f"x_{dt}",), b))
            stores.append(Store(f"out_{dt}", f"y_{dt}"))

        def ref(t, lo=lo, hi=hi, ilo=ilo, ihi=ihi, dts=dts):
            out = {f"out_{dt}": torch.clamp(t[f"x_{dt}"], lo, hi) for dt in dts}
            out.update({f"out_{dt}": torch.clamp(t[f"x_{dt}"], ilo, ihi) for dt in ("int32", "int8")})
            return out

        cases.append(Case(f"op-clamp-{tag}", KernelSpec(f"op_clamp_{tag}", SHAPE, loads, body, stores), ref,
                          {f"x_{dt}": "special" for dt in dts}))
    cases.append(to_copy_case())
    return cases


def _to_storage(t: torch.Tensor) -> np.ndarray:
    """A contiguous torch tensor's values as a flat NumPy storage (bfloat16 as its bits)."""
    t = t.detach().contiguous().reshape(-1)
    if t.dtype == torch.bfloat16:
        return t.view(torch.int16).numpy().view(np.uint16).copy()
    return t.numpy().copy()


def backward_cases() -> list[Case]:
    """The fused backward primitives (`tanh_backward`, ...): g * f'(x or out), checked against
    torch.autograd.grad of the forward op on the same x and upstream gradient g."""
    from tracegrad.ops.pointwise import FUSED_BACKWARD
    from tracegrad.ops.table import OPS

    cases = []
    for fwd, bop in FUSED_BACKWARD.items():
        fn, (dom,), _ = UNARY[fwd]
        dom = "any" if dom == "special" else dom
        save = OPS[fwd].save
        uses_out = not callable(save) and "out" in save  # the kernel reads f(x) rather than x
        loads, body, stores = [], [], []
        for dt in FLOATS:
            loads += [Load(f"g_{dt}", dt), Load(f"s_{dt}", dt)]
            body.append(Step(f"r_{dt}", bop.name, (f"g_{dt}", f"s_{dt}")))
            stores.append(Store(f"out_{dt}", f"r_{dt}"))

        def make_inputs(rng, fn=fn, dom=dom, uses_out=uses_out):
            storages, extra = {}, {}
            n = math.prod(SHAPE)
            for dt in FLOATS:
                x = torch_view(fill(n, D._NAMES[dt], dom, rng), D._NAMES[dt], SHAPE, contiguous_strides(SHAPE), 0)
                storages[f"g_{dt}"] = fill(n, D._NAMES[dt], "any", rng)
                storages[f"s_{dt}"] = _to_storage(fn(x) if uses_out else x)
                extra[f"x_{dt}"] = x
            return storages, extra

        def ref(t, fn=fn):
            out = {}
            for dt in FLOATS:
                x = t[f"x_{dt}"].detach().requires_grad_()
                (gx,) = torch.autograd.grad(fn(x), x, t[f"g_{dt}"])
                out[f"out_{dt}"] = gx
            return out

        cases.append(Case(f"op-{bop.name}", KernelSpec(f"bwd_{fwd}", SHAPE, loads, body, stores), ref,
                          make_inputs=make_inputs))
    return cases


CASTS = [("float32", "float16"), ("float32", "bfloat16"), ("float32", "int32"), ("float32", "bool"),
         ("float64", "float32"), ("float16", "float64"), ("bfloat16", "float16"), ("int64", "float32"),
         ("int32", "int8"), ("uint8", "int32"), ("bool", "float32"), ("int8", "bool"), ("float16", "uint8")]


def to_copy_case() -> Case:
    loads, body, stores = [], [], []
    for i, (src, dst) in enumerate(CASTS):
        loads.append(Load(f"x{i}_{src}", src))
        body.append(Step(f"y{i}_{dst}", "to_copy", (f"x{i}_{src}",), {"dtype": D._NAMES[dst]}))
        stores.append(Store(f"out{i}", f"y{i}_{dst}"))
    doms = {f"x{i}_{src}": ("pos" if dst == "uint8" else "halves") for i, (src, dst) in enumerate(CASTS)}

    def ref(t):
        return {f"out{i}": t[f"x{i}_{src}"].to(tdtype(dst)) for i, (src, dst) in enumerate(CASTS)}

    return Case("op-to_copy", KernelSpec("op_to_copy", SHAPE, loads, body, stores), ref, doms)


# ---- 1b. promotion, scalars, fused chains, layouts -------------------------------------------------------------
PROMOTIONS = [("add", "int32", "float16"), ("mul", "uint8", "int8"), ("add", "float16", "bfloat16"),
              ("div", "int64", "int32"), ("lt", "int32", "float32"), ("maximum", "bool", "int8"),
              ("sub", "float64", "float32"), ("remainder", "int8", "float32"), ("eq", "uint8", "int64")]


def promotion_case() -> Case:
    """Mixed-dtype operands: the result dtype is inferred by the op table's rules, as torch's."""
    loads, body, stores = [], [], []
    for i, (op, a, b) in enumerate(PROMOTIONS):
        loads += [Load(f"a{i}", a), Load(f"b{i}", b)]
        body.append(Step(f"y{i}", op, (f"a{i}", f"b{i}")))
        stores.append(Store(f"out{i}", f"y{i}"))
    doms = {f"b{i}": "nonzero" for i, (op, a, b) in enumerate(PROMOTIONS) if op in ("div", "remainder")}
    fns = {"add": torch.add, "mul": torch.mul, "div": torch.div, "lt": torch.lt, "maximum": torch.maximum,
           "sub": torch.sub, "remainder": torch.remainder, "eq": torch.eq}

    def ref(t):
        return {f"out{i}": fns[op](t[f"a{i}"], t[f"b{i}"]) for i, (op, _, _) in enumerate(PROMOTIONS)}

    return Case("promotion", KernelSpec("promotion", SHAPE, loads, body, stores), ref, doms)


SCALARS = [("mul", "float64", (None, 0.1)), ("add", "int8", (None, 3)), ("add", "int32", (None, 2.5)),
           ("div", "int64", (None, 2)), ("pow", "float32", (None, 2)), ("lt", "int32", (None, 2.5)),
           ("sub", "float32", (1.5, None)), ("mul", "float16", (None, 1e-3)), ("add", "bfloat16", (None, 1)),
           ("maximum", "float32", (None, float("-inf"))), ("mul", "bool", (None, True)),
           ("remainder", "int32", (None, -3)), ("pow", "float64", (2.0, None))]


def scalar_case() -> Case:
    """Python numbers as operands: typed like torch's wrapped scalars (0.1 stays a double in float64)."""
    loads, body, stores = [], [], []
    for i, (op, dt, (l, r)) in enumerate(SCALARS):
        loads.append(Load(f"x{i}", dt))
        args = (l, f"x{i}") if l is not None else (f"x{i}", r)
        body.append(Step(f"y{i}", op, args))
        stores.append(Store(f"out{i}", f"y{i}"))
    fns = {"mul": torch.mul, "add": torch.add, "div": torch.div, "pow": torch.pow, "lt": torch.lt,
           "sub": torch.sub, "maximum": torch.clamp_min, "remainder": torch.remainder}

    def ref(t):
        out = {}
        for i, (op, dt, (l, r)) in enumerate(SCALARS):
            x = t[f"x{i}"]
            if l is not None:
                out[f"out{i}"] = (l - x) if op == "sub" else torch.pow(l, x)
            else:
                out[f"out{i}"] = fns[op](x, r)
        return out

    return Case("scalars", KernelSpec("scalars", SHAPE, loads, body, stores), ref, {"x12": "unit"})


def _gelu_steps(x: str, out: str) -> list[Step]:
    """gelu(x) = 0.5 * x * (1 + erf(x / sqrt(2))): the composite as primitives."""
    return [Step(f"{out}_s", "mul", (x, 0.7071067811865476)), Step(f"{out}_e", "erf", (f"{out}_s",)),
            Step(f"{out}_p", "add", (f"{out}_e", 1.0)), Step(f"{out}_h", "mul", (x, 0.5)),
            Step(out, "mul", (f"{out}_h", f"{out}_p"))]


def chain_cases() -> list[Case]:
    cases = []
    for dt in ("float32", "float16", "bfloat16"):
        body = _gelu_steps("x", "g") + [
            Step("sg", "sigmoid", ("x",)), Step("silu", "mul", ("x", "sg")),
            Step("pos", "gt", ("x", 0.0)), Step("em", "expm1", ("x",)), Step("elu", "where", ("pos", "x", "em")),
            Step("ex", "exp", ("x",)), Step("sp", "log1p", ("ex",)),
            Step("x3", "pow", ("x", 3)), Step("in1", "mul", ("x3", 0.044715)), Step("in2", "add", ("x", "in1")),
            Step("in3", "mul", ("in2", 0.7978845608028654)), Step("th", "tanh", ("in3",)),
            Step("th1", "add", ("th", 1.0)), Step("hx", "mul", ("x", 0.5)), Step("gt_", "mul", ("hx", "th1")),
        ]
        spec = KernelSpec(f"activations_{dt}", (8, 48), [Load("x", dt)], body,
                          [Store("gelu", "g"), Store("silu", "silu"), Store("elu", "elu"), Store("softplus", "sp"),
                           Store("gelu_tanh", "gt_")])
        cases.append(Case(f"chain-activations-{dt}", spec, lambda t: {
            "gelu": F.gelu(t["x"]), "silu": F.silu(t["x"]), "elu": F.elu(t["x"]),
            "softplus": torch.log1p(torch.exp(t["x"])), "gelu_tanh": F.gelu(t["x"], approximate="tanh")}))
    # integers: ((a * 3 + b) // 4) % 5, and a bool chain feeding a float select
    body = [Step("t0", "mul", ("a", 3)), Step("t1", "add", ("t0", "b")), Step("t2", "floor_divide", ("t1", 4)),
            Step("t3", "remainder", ("t2", 5)), Step("p", "gt", ("a", 0)), Step("q", "lt", ("b", 4)),
            Step("pq", "logical_and", ("p", "q")), Step("f", "where", ("pq", "a", -1.5))]
    spec = KernelSpec("int_chain", (5, 12), [Load("a", "int32"), Load("b", "int64")], body,
                      [Store("ints", "t3"), Store("sel", "f")])
    cases.append(Case("chain-ints", spec, lambda t: {
        "ints": torch.remainder(torch.floor_divide(t["a"] * 3 + t["b"], 4), 5),
        "sel": torch.where((t["a"] > 0) & (t["b"] < 4), t["a"], -1.5)}))
    # a contiguous float32 chain big enough for full vectors (the AOT test checks for 128-bit loads)
    body = [Step("t", "mul", ("x", "y")), Step("u", "add", ("t", 1.0)), Step("v", "relu", ("u",))]
    spec = KernelSpec("fma_relu_f32", (16, 64), [Load("x", "float32"), Load("y", "float32")], body,
                      [Store("out", "v")])
    cases.append(Case("chain-contiguous-f32", spec, lambda t: {"out": torch.relu(t["x"] * t["y"] + 1.0)}))
    # half precision: float16 math runs in float32 and is rounded once, at the store; mixed halves promote
    body = [Step("eh", "exp", ("h",)), Step("s", "add", ("h", "b")),
            Step("w", "to_copy", ("eh",), {"dtype": D.float32})]
    spec = KernelSpec("half_io", (4, 32), [Load("h", "float16"), Load("b", "bfloat16")], body,
                      [Store("half", "eh"), Store("wide", "w"), Store("sum", "s"),
                       Store("as_bf16", "s", dtype="bfloat16")])
    cases.append(Case("chain-half-io", spec, lambda t: {
        "half": torch.exp(t["h"]), "wide": torch.exp(t["h"]).float(), "sum": t["h"] + t["b"],
        "as_bf16": (t["h"] + t["b"]).to(torch.bfloat16)}))
    return cases


LAYOUTS = ["contiguous", "offset", "transposed", "strided", "flipped"]


def layout_cases() -> list[Case]:
    """relu(x * y + b) with x laid out every way, y broadcast along rows or columns, b a 0-dim tensor."""
    cases = []
    shape = (6, 20)
    for kind in LAYOUTS:
        xs, xo = layout(shape, kind)
        for yshape in [(1, 20), (6, 1), (20,)]:
            loads = [Load("x", "float32", shape, xs, xo), Load("y", "float32", yshape), Load("b", "float32", ())]
            body = [Step("t", "mul", ("x", "y")), Step("u", "add", ("t", "b")), Step("v", "relu", ("u",))]
            spec = KernelSpec(f"layout_{kind}", shape, loads, body, [Store("out", "v")])
            cases.append(Case(f"layout-{kind}-y{'x'.join(map(str, yshape))}", spec,
                              lambda t: {"out": torch.relu(t["x"] * t["y"] + t["b"])}))
    # 3-d permuted input, output written transposed into its storage
    ps = (4, 5, 6)
    xs = (1, 24, 4)  # x[i, j, k] at i + 24 j + 4 k: a permuted contiguous (5, 6, 4) tensor
    os_, oo = layout(ps, "transposed")
    spec = KernelSpec("permuted_3d", ps, [Load("x", "float16", ps, xs), Load("z", "float16", ps)],
                      [Step("s", "sub", ("x", "z")), Step("a", "abs", ("s",))],
                      [Store("out", "a", shape=ps, strides=os_, offset=oo)])
    cases.append(Case("layout-permuted-3d-out-transposed", spec, lambda t: {"out": torch.abs(t["x"] - t["z"])}))
    # 0-dim tensors only: a one-element kernel
    spec = KernelSpec("scalar_only", (), [Load("a", "float32", ()), Load("b", "float64", ())],
                      [Step("s", "mul", ("a", "b")), Step("t", "add", ("s", 1.0))], [Store("out", "t", shape=())])
    cases.append(Case("layout-zero-dim", spec, lambda t: {"out": t["a"] * t["b"] + 1.0}))
    return cases


# ---- 2. reductions ------------------------------------------------------------------------
def _red(x, op, keep=True, dims=(-1,)):
    if op == "sum":
        return x.sum(dims, keepdim=keep)
    if op == "mean":
        return x.mean(dims, keepdim=keep)
    if op == "prod":
        return x.prod(dims[0], keepdim=keep) if len(dims) == 1 else x.flatten(-len(dims)).prod(-1, keepdim=keep)
    if op == "amax":
        return x.amax(dims, keepdim=keep)
    return x.amin(dims, keepdim=keep)


def reduction_cases() -> list[Case]:
    cases = []
    R, N = 5, 50
    for looped in (False, True):
        opts = {"max_persistent": 16} if looped else {}
        tag = "looped" if looped else "persistent"
        for dt in ("float32", "float16", "bfloat16", "float64", "int32"):
            body = [Step("s", "sum", ("x",)), Step("mx", "amax", ("x",), {"is_max": True}),
                    Step("mn", "amax", ("x",), {"is_max": False})]
            stores = [Store("sum", "s", shape=(R, 1)), Store("max", "mx", shape=(R,)), Store("min", "mn", shape=(R, 1))]
            if dt != "int32":
                body.append(Step("m", "mean", ("x",)))
                stores.append(Store("mean", "m", shape=(R,)))
            spec = KernelSpec(f"rows_{dt}_{tag}", (R, N), [Load("x", dt)], body, stores, reduce_ndim=1, options=opts)

            def ref(t, dt=dt):
                x = t["x"]
                out = {"sum": _red(x, "sum"), "max": _red(x, "amax", False), "min": _red(x, "amin")}
                if dt != "int32":
                    out["mean"] = _red(x, "mean", False)
                return out

            cases.append(Case(f"reduce-rows-{dt}-{tag}", spec, ref))
        # prod of values near 1, and a reduction with a prologue and an epilogue: ||x|| = sqrt(sum(x*x))
        body = [Step("p", "prod", ("x",)), Step("sq", "mul", ("y", "y")), Step("ss", "sum", ("sq",)),
                Step("nrm", "sqrt", ("ss",))]
        spec = KernelSpec(f"prod_norm_{tag}", (R, 40), [Load("x", "float32"), Load("y", "float32")], body,
                          [Store("prod", "p", shape=(R, 1)), Store("norm", "nrm", shape=(R,))], reduce_ndim=1,
                          options=opts)
        cases.append(Case(f"reduce-prod-norm-{tag}", spec, lambda t: {
            "prod": t["x"].prod(-1, keepdim=True), "norm": torch.linalg.vector_norm(t["y"], dim=-1)},
            {"x": "near1"}))
        # NaN propagates through max, as in torch
        spec = KernelSpec(f"nan_max_{tag}", (R, 24), [Load("x", "float32")],
                          [Step("m", "amax", ("x",), {"is_max": True}), Step("n", "amax", ("x",), {"is_max": False})],
                          [Store("max", "m", shape=(R,)), Store("min", "n", shape=(R,))], reduce_ndim=1, options=opts)
        cases.append(Case(f"reduce-nan-{tag}", spec, lambda t: {"max": t["x"].amax(-1), "min": t["x"].amin(-1)},
                          {"x": "special"}))
        cases.append(softmax_case("float32", (7, 33), opts, tag))
        cases.append(layer_norm_case("float32", (6, 40), opts, tag))
    cases.append(softmax_case("float16", (4, 96), {}, "persistent"))
    cases.append(softmax_case("bfloat16", (3, 200), {"max_persistent": 64}, "looped"))
    cases.append(log_softmax_case())
    cases.append(layer_norm_case("float16", (5, 64), {}, "persistent"))
    # two trailing axes at once, and a column reduction (sum over dim 0, read through strides)
    spec = KernelSpec("sum_last2", (3, 4, 10), [Load("x", "float32")], [Step("s", "sum", ("x",))],
                      [Store("out", "s", shape=(3,))], reduce_ndim=2)
    cases.append(Case("reduce-last-two-dims", spec, lambda t: {"out": t["x"].sum((-2, -1))}))
    # every dim at once: one row, a 0-dim result (a loss), with a pointwise prologue
    spec = KernelSpec("sum_all", (7, 9), [Load("x", "float32")], [Step("sq", "mul", ("x", "x")),
                                                                   Step("s", "mean", ("sq",))],
                      [Store("loss", "s", shape=())], reduce_ndim=2)
    cases.append(Case("reduce-everything", spec, lambda t: {"loss": (t["x"] * t["x"]).mean()}))
    M, Nc = 30, 7
    spec = KernelSpec("column_sum", (Nc, M), [Load("x", "float32", (Nc, M), (1, Nc))],
                      [Step("s", "sum", ("x",)), Step("m", "amax", ("x",), {"is_max": True})],
                      [Store("sum", "s", shape=(Nc,)), Store("max", "m", shape=(Nc,))], reduce_ndim=1)
    cases.append(Case("reduce-columns", spec, lambda t: {"sum": t["x"].sum(-1), "max": t["x"].amax(-1)}))
    return cases


def softmax_case(dt, shape, opts, tag) -> Case:
    """softmax(x) = exp(x - max) / sum(exp(x - max)): one kernel."""
    body = [Step("m", "amax", ("x",), {"is_max": True}), Step("d", "sub", ("x", "m")), Step("e", "exp", ("d",)),
            Step("s", "sum", ("e",)), Step("y", "div", ("e", "s"))]
    spec = KernelSpec(f"softmax_{dt}_{tag}", shape, [Load("x", dt)], body, [Store("out", "y")], reduce_ndim=1,
                      options=opts)
    return Case(f"softmax-{dt}-{tag}", spec, lambda t: {"out": torch.softmax(t["x"], -1)})


def log_softmax_case() -> Case:
    body = [Step("m", "amax", ("x",), {"is_max": True}), Step("d", "sub", ("x", "m")), Step("e", "exp", ("d",)),
            Step("s", "sum", ("e",)), Step("ls", "log", ("s",)), Step("y", "sub", ("d", "ls"))]
    spec = KernelSpec("log_softmax", (6, 70), [Load("x", "float32")], body, [Store("out", "y")], reduce_ndim=1,
                      options={"max_persistent": 32})
    return Case("log-softmax-looped", spec, lambda t: {"out": torch.log_softmax(t["x"], -1)})


def layer_norm_case(dt, shape, opts, tag) -> Case:
    """layer_norm over the last dim with weight and bias; also stores mean and 1/std per row."""
    R, N = shape
    eps = 1e-5
    body = [Step("mu", "mean", ("x",)), Step("xc", "sub", ("x", "mu")), Step("sq", "mul", ("xc", "xc")),
            Step("var", "mean", ("sq",)), Step("ve", "add", ("var", eps)), Step("rstd", "rsqrt", ("ve",)),
            Step("xh", "mul", ("xc", "rstd")), Step("xw", "mul", ("xh", "w")), Step("y", "add", ("xw", "b"))]
    loads = [Load("x", dt), Load("w", dt, (N,)), Load("b", dt, (N,))]
    stores = [Store("out", "y"), Store("mean", "mu", shape=(R,)), Store("rstd", "rstd", shape=(R, 1))]
    spec = KernelSpec(f"layer_norm_{dt}_{tag}", shape, loads, body, stores, reduce_ndim=1, options=opts)

    def ref(t):
        x = t["x"]
        var, mean = torch.var_mean(x, -1, unbiased=False)
        return {"out": F.layer_norm(x, (N,), t["w"], t["b"], eps), "mean": mean,
                "rstd": torch.rsqrt(var + eps).unsqueeze(-1)}

    return Case(f"layer-norm-{dt}-{tag}", spec, ref, {}, {"rstd": (1e-5, 1e-5)})


# ---- 3. matmul -----------------------------------------------------------------------------------
def matmul_cases() -> list[Case]:
    cases = []
    M, K, N = 40, 24, 36
    # linear + bias + relu, the weight read transposed from its (N, K) storage
    for dt in ("float32", "float16", "bfloat16", "float64"):
        loads = [Load("a", dt, (M, K)), Load("wt", dt, (K, N), (1, K)), Load("bias", dt, (N,))]
        body = [Step("t", "add", ("acc", "bias")), Step("y", "relu", ("t",))]
        spec = KernelSpec(f"linear_relu_{dt}", (M, N), loads, body, [Store("out", "y")],
                          matmul=MatMul("acc", "a", "wt"))
        cases.append(Case(f"matmul-linear-relu-{dt}", spec,
                          lambda t: {"out": torch.relu(t["a"] @ t["wt"] + t["bias"])}))
    # exact float32 with the weight read K-contiguous and a K loop of several steps: the 64x64 tile
    # spilled on sm_90 at this size (the small case above never loops over K)
    loads = [Load("a", "float32", (64, 128)), Load("wt", "float32", (128, 96), (1, 128)), Load("bias", "float32", (96,))]
    spec = KernelSpec("linear_f32_kloop", (64, 96), loads, [Step("t", "add", ("acc", "bias"))], [Store("out", "t")],
                      matmul=MatMul("acc", "a", "wt"))
    cases.append(Case("matmul-linear-f32-kloop", spec, lambda t: {"out": t["a"] @ t["wt"] + t["bias"]}))
    # TF32: float32 inputs rounded to 10-bit mantissas, so a looser tolerance
    loads = [Load("a", "float32", (32, 64)), Load("b", "float32", (64, 48))]
    spec = KernelSpec("mm_tf32", (32, 48), loads, [], [Store("out", "acc")],
                      matmul=MatMul("acc", "a", "b", allow_tf32=True))
    cases.append(Case("matmul-tf32", spec, lambda t: {"out": t["a"] @ t["b"]}, {}, {"out": (1e-2, 2e-2)}))
    # batched, with a broadcast batch dim on each side; gelu epilogue and a residual add, stored in float16
    B = (2, 3)
    loads = [Load("a", "float16", (2, 1, 20, 16)), Load("b", "float16", (1, 3, 16, 24)),
             Load("res", "float16", B + (20, 24))]
    body = _gelu_steps("acc", "g") + [Step("y", "add", ("g", "res"))]
    spec = KernelSpec("bmm_gelu_residual", B + (20, 24), loads, body, [Store("out", "y")],
                      matmul=MatMul("acc", "a", "b"))
    cases.append(Case("matmul-batched-gelu-residual", spec,
                      lambda t: {"out": F.gelu(t["a"] @ t["b"]) + t["res"]}))
    # a plain batched matmul whose second operand has no batch dims, ragged K
    loads = [Load("a", "float32", (3, 17, 21)), Load("b", "float32", (21, 19))]
    spec = KernelSpec("bmm_broadcast", (3, 17, 19), loads, [], [Store("out", "acc")], matmul=MatMul("acc", "a", "b"))
    cases.append(Case("matmul-batched-broadcast", spec, lambda t: {"out": t["a"] @ t["b"]}))
    # the gelu primitive of the op table as the epilogue, output rows written with a stride
    loads = [Load("a", "float32", (24, 40)), Load("b", "float32", (40, 20))]
    spec = KernelSpec("mm_gelu", (24, 20), loads, [Step("g", "gelu", ("acc",), {"approximate": "none"})],
                      [Store("out", "g", shape=(24, 20), strides=(32, 1))], matmul=MatMul("acc", "a", "b"))
    cases.append(Case("matmul-gelu-strided-out", spec, lambda t: {"out": F.gelu(t["a"] @ t["b"])}))
    # a dot product: a 1x1 output tile
    loads = [Load("u", "float32", (1, 33)), Load("v", "float32", (33, 1))]
    spec = KernelSpec("dot_1x1", (1, 1), loads, [], [Store("out", "acc")], matmul=MatMul("acc", "u", "v"))
    cases.append(Case("matmul-1x1", spec, lambda t: {"out": t["u"] @ t["v"]}))
    # transposed A (a column-major view) and an output with a scale epilogue
    loads = [Load("at", "bfloat16", (48, 32), (1, 48)), Load("b", "bfloat16", (32, 64))]
    spec = KernelSpec("mm_at_scale", (48, 64), loads, [Step("y", "mul", ("acc", 0.125))], [Store("out", "y")],
                      matmul=MatMul("acc", "at", "b"))
    cases.append(Case("matmul-transposed-a", spec, lambda t: {"out": (t["at"] @ t["b"]) * 0.125}))
    return cases


# ---- 4. specs built from graph nodes (what the tracer's fusion groups look like) ------------------------
class GValue:
    """A stand-in for the tracer's Value: name, shape, dtype, strides, offset."""

    def __init__(self, name, shape, dtype="float32", strides=None, offset=0):
        self.name, self.shape, self.dtype = name, tuple(shape), D._NAMES[dtype]
        self.strides = tuple(strides) if strides is not None else contiguous_strides(shape)
        self.offset = offset


class GNode:
    """A stand-in for the tracer's Node: op, args, attrs, dtype, compute, outputs."""

    def __init__(self, op, args, out, attrs=None, compute=None):
        from tracegrad.ops.table import OPS

        self.op, self.args, self.attrs = OPS[op], tuple(args), dict(attrs or {})
        self.dtype, self.compute, self.outputs = out.dtype, compute, [out]


def graph_cases() -> list[Case]:
    from tracegrad.kernels.triton.spec import from_nodes

    cases = []
    x = GValue("x", (6, 24))
    m, s = GValue("m", (6, 1)), GValue("s", (6, 1))
    d, e, y = GValue("d", (6, 24)), GValue("e", (6, 24)), GValue("y", (6, 24))
    nodes = [GNode("amax", [x], m, {"dims": (1,), "keepdim": True, "is_max": True}),
             GNode("sub", [x, m], d), GNode("exp", [d], e),
             GNode("sum", [e], s, {"dims": (1,), "keepdim": True}), GNode("div", [e, s], y)]
    cases.append(Case("graph-softmax", from_nodes("g_softmax", nodes, [y, s]), lambda t: {
        "y": torch.softmax(t["x"], -1), "s": torch.exp(t["x"] - t["x"].amax(-1, True)).sum(-1, True)}))
    # x @ w.t() + b, relu: the weight value is a transposed view, the bias broadcasts
    a, wt, b = GValue("a", (10, 16)), GValue("wt", (16, 12), strides=(1, 16)), GValue("b", (12,))
    mm, t, r = GValue("mm", (10, 12)), GValue("t", (10, 12)), GValue("r", (10, 12))
    nodes = [GNode("matmul", [a, wt], mm), GNode("add", [mm, b], t), GNode("relu", [t], r)]
    cases.append(Case("graph-linear-relu", from_nodes("g_linear", nodes, [r]),
                      lambda t: {"r": torch.relu(t["a"] @ t["wt"] + t["b"])}))
    # a pointwise chain with an int input promoted by the recorded dtypes
    i, f = GValue("i", (3, 7), "int32"), GValue("f", (3, 7), "float16")
    u, v = GValue("u", (3, 7), "float16"), GValue("v", (3, 7), "float16")
    nodes = [GNode("add", [i, f], u, compute=D.float16), GNode("mul", [u, 0.5], v, compute=D.float16)]
    cases.append(Case("graph-pointwise-promotion", from_nodes("g_pw", nodes, [v]),
                      lambda t: {"v": (t["i"] + t["f"]) * 0.5}))
    # view nodes inside the group: a transpose and a broadcast become strides of their loads
    p, r, q = GValue("p", (5, 8)), GValue("r", (8, 5)), GValue("q", (8,))
    rt, qe = GValue("rt", (5, 8), strides=(1, 5)), GValue("qe", (5, 8), strides=(0, 1))
    w, pq, z = GValue("w", (5, 8)), GValue("pq", (5, 8)), GValue("z", (5, 8))
    nodes = [GNode("permute", [r], rt, {"dims": (1, 0)}), GNode("expand", [q], qe, {"size": (5, 8)}),
             GNode("exp", [rt], w), GNode("mul", [p, qe], pq), GNode("add", [pq, w], z)]
    cases.append(Case("graph-views", from_nodes("g_views", nodes, [w, z]), lambda t: {
        "w": torch.exp(t["rt"]), "z": t["p"] * t["qe"] + torch.exp(t["rt"])}))
    return cases


def all_cases() -> list[Case]:
    return (op_cases() + [promotion_case(), scalar_case()] + chain_cases() + layout_cases() + reduction_cases()
            + matmul_cases() + graph_cases())
