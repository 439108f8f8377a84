"""The block-level description of one fused kernel: `KernelSpec`.

A fusion group becomes one spec. It is written in terms of whole tensors, never
per-thread scalars (rendering per-thread programs into Triton throws away what
Triton is for: its block-level loads, reductions and dots):

    loads    buffers the kernel reads: name, dtype, and the tensor's shape, strides
             and storage offset (strides None: contiguous)
    body     an SSA list of `Step(out, op, args, attrs)`; `op` names a primitive of
             the op table (tracegrad.ops.table.OPS), `args` are value names or
             Python numbers. Pointwise steps act elementwise; reduce steps (sum,
             mean, amax, prod) reduce over the kernel's trailing `reduce_ndim` axes;
             scan steps (cumsum, cumprod) run along the last axis of a kernel with
             reduce_ndim=1 and keep the row's length
    matmul   optional: `MatMul(out, a, b)`; the body is then its epilogue
    stores   buffers the kernel writes: which value goes where, in which dtype

A pointwise kernel may draw random numbers: a `rand_uniform` or `rand_normal`
step whose two arguments are 0-d int64 loads, the seed and the stream. Element
e of stream k gets Philox 4x32-10 of the counter (e, k) under the seed, so every
element and every call gets its own numbers with no state in the kernel.

A pointwise kernel may also read and write through indices (gather and scatter):
a load or store with `index=((value, stride), ...)` adds `value * stride` to the
address its shape and strides give, where `value` is an integer load of the
same kernel (x[idx] reads x with stride 0 along the indexed dim plus idx * that
dim's stride). `accumulate=True` makes a store an atomic add, so repeated
indices sum as index_put(accumulate=True) and scatter_add do. Indices are not
bounds-checked in the kernel: whoever builds the spec checks them first.

The iteration space is `shape`: the output shape of a pointwise group, the input
shape of a reduction group (reductions shrink its last `reduce_ndim` axes to 1),
the output shape (batch..., M, N) of a matmul group. A load whose shape is
smaller broadcasts against it the way torch broadcasts (aligned on the right).

Example, `y = relu(x * 2 + b)` over a (4, 8) float32 tensor with a (8,) bias:

    KernelSpec("fused_mul_add_relu", shape=(4, 8),
               loads=[Load("x", "float32"), Load("b", "float32", shape=(8,))],
               body=[Step("t0", "mul", ("x", 2.0)), Step("t1", "add", ("t0", "b")),
                     Step("y", "relu", ("t1",))],
               stores=[Store("out", "y")])
"""
from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, Sequence, Union

from ... import dtypes as D
from ...ops import table as _table

Scalar = Union[int, float, bool]
Arg = Union[str, int, float, bool]


def as_dtype(dt: "D.DType | str") -> D.DType:
    """A tracegrad DType from a DType or its name ('float32', 'torch.float16', ...)."""
    if isinstance(dt, D.DType):
        return dt
    if isinstance(dt, str):
        name = dt.rsplit(".", 1)[-1]
        try:
            return D._NAMES[name]
        except KeyError:
            raise TypeError(f"unknown dtype {dt!r}") from None
    raise TypeError(f"expected a dtype or a dtype name, got {type(dt).__name__}")


def contiguous_strides(shape: Sequence[int]) -> tuple[int, ...]:
    """Row-major element strides of a dense tensor of `shape` (torch's contiguous layout)."""
    strides, acc = [], 1
    for n in reversed(tuple(shape)):
        strides.append(acc)
        acc *= max(int(n), 1)
    return tuple(reversed(strides))


def _tuple(x) -> tuple | None:
    return None if x is None else tuple(int(v) for v in x)


def _index_terms(terms) -> tuple[tuple[str, int], ...]:
    return tuple((str(v), int(s)) for v, s in terms)


# Ops that map a row to a row of the same length, each element depending on the whole row:
# scans (kind "scan") and argsort. They run in the row (reduction) template.
SORTS = frozenset({"argsort"})


def is_row_op(step) -> bool:
    return step.primitive.kind == "scan" or step.op in SORTS


@dataclass(frozen=True)
class Load:
    """A buffer read by the kernel; its loaded values are the SSA value `name`.

    shape/strides/offset describe the tensor inside its storage, in elements.
    shape None means the kernel's shape; strides None means contiguous.
    index: (value, stride) pairs whose `value * stride` is added to each element's address."""

    name: str
    dtype: D.DType
    shape: tuple[int, ...] | None = None
    strides: tuple[int, ...] | None = None
    offset: int = 0
    index: tuple[tuple[str, int], ...] = ()

    def __post_init__(self):
        object.__setattr__(self, "dtype", as_dtype(self.dtype))
        object.__setattr__(self, "shape", _tuple(self.shape))
        object.__setattr__(self, "strides", _tuple(self.strides))
        object.__setattr__(self, "index", _index_terms(self.index))


@dataclass(frozen=True)
class Store:
    """A buffer written by the kernel: SSA value `value` goes to buffer `name`.

    dtype None stores in the value's own dtype. shape None means the kernel's shape
    for a full value, and the kernel's shape with the reduced axes set to 1 for a
    reduced value (a reduced value may also be stored with those axes dropped).
    index: as a Load's; accumulate: add into the buffer atomically instead of overwriting."""

    name: str
    value: str
    dtype: D.DType | None = None
    shape: tuple[int, ...] | None = None
    strides: tuple[int, ...] | None = None
    offset: int = 0
    index: tuple[tuple[str, int], ...] = ()
    accumulate: bool = False

    def __post_init__(self):
        if self.dtype is not None:
            object.__setattr__(self, "dtype", as_dtype(self.dtype))
        object.__setattr__(self, "shape", _tuple(self.shape))
        object.__setattr__(self, "strides", _tuple(self.strides))
        object.__setattr__(self, "index", _index_terms(self.index))


@dataclass(frozen=True)
class Step:
    """One SSA instruction: `out = op(*args, **attrs)`.

    dtype is the result's torch dtype; None infers it with the op's own dtype rule.
    compute is the dtype tensor inputs are converted to before the op (None: the
    op table's rule: the result dtype for ops that cast their inputs, the promoted
    dtype of the inputs for comparisons). A graph node carries both already."""

    out: str
    op: str
    args: tuple = ()
    attrs: Mapping[str, Any] = field(default_factory=dict)
    dtype: D.DType | None = None
    compute: D.DType | None = None

    def __post_init__(self):
        object.__setattr__(self, "args", tuple(self.args))
        object.__setattr__(self, "attrs", dict(self.attrs))
        if self.dtype is not None:
            object.__setattr__(self, "dtype", as_dtype(self.dtype))
        if self.compute is not None:
            object.__setattr__(self, "compute", as_dtype(self.compute))
        if self.op not in _table.OPS:
            raise ValueError(f"unknown op {self.op!r} in step {self.out!r}")

    @property
    def primitive(self) -> "_table.Op":
        return _table.OPS[self.op]

    @property
    def is_reduction(self) -> bool:
        return self.primitive.kind == "reduce"


@dataclass(frozen=True)
class MatMul:
    """`out = a @ b` over the loads `a` (batch..., M, K) and `b` (batch..., K, N).

    Batch dims broadcast against the kernel's batch dims. float16/bfloat16
    accumulate in float32. allow_tf32 lets float32 inputs use TF32 tensor cores
    (torch's `torch.backends.cuda.matmul.allow_tf32`, off by default)."""

    out: str
    a: str
    b: str
    allow_tf32: bool = False


@dataclass(frozen=True)
class KernelSpec:
    """One fused kernel, see the module docstring. `options` overrides the block
    sizes the renderer would choose (XBLOCK, ROWS, RBLOCK, BLOCK_M/N/K, GROUP_M,
    num_warps, num_stages, max_persistent)."""

    name: str
    shape: tuple[int, ...]
    loads: tuple[Load, ...]
    body: tuple[Step, ...]
    stores: tuple[Store, ...]
    reduce_ndim: int = 0
    matmul: MatMul | None = None
    options: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self):
        object.__setattr__(self, "shape", tuple(int(n) for n in self.shape))
        object.__setattr__(self, "loads", tuple(self.loads))
        object.__setattr__(self, "body", tuple(self.body))
        object.__setattr__(self, "stores", tuple(self.stores))
        object.__setattr__(self, "options", dict(self.options))
        validate(self)

    # ---- what kind of kernel ------------------------------------------------------
    @property
    def kind(self) -> str:
        if self.matmul is not None:
            return "matmul"
        if any(s.is_reduction or is_row_op(s) for s in self.body):  # (a scan or a sort is a row kernel)
            return "reduction"
        return "pointwise"

    @property
    def numel(self) -> int:
        return math.prod(self.shape)

    @property
    def rows_shape(self) -> tuple[int, ...]:
        return self.shape[: len(self.shape) - self.reduce_ndim]

    @property
    def reduced_shape(self) -> tuple[int, ...]:
        return self.shape[len(self.shape) - self.reduce_ndim:]

    def load(self, name: str) -> Load:
        for ld in self.loads:
            if ld.name == name:
                return ld
        raise KeyError(name)

    def with_options(self, **options) -> "KernelSpec":
        """The same kernel with some block sizes fixed (autotuning renders each candidate)."""
        merged = dict(self.options)
        merged.update(options)
        return KernelSpec(self.name, self.shape, self.loads, self.body, self.stores, self.reduce_ndim,
                          self.matmul, merged)

    def key(self) -> str:
        """A stable hash of everything that changes the generated code (options excluded)."""
        parts = [self.name, repr(self.shape), str(self.reduce_ndim), repr(self.matmul)]
        parts += [f"L{l.name}:{l.dtype.name}:{l.shape}:{l.strides}:{l.offset}:{l.index}" for l in self.loads]
        parts += [f"S{s.out}={s.op}{s.args!r}{sorted(s.attrs.items(), key=str)!r}:{s.dtype}:{s.compute}"
                  for s in self.body]
        parts += [f"W{s.name}<-{s.value}:{s.dtype}:{s.shape}:{s.strides}:{s.offset}:{s.index}:{s.accumulate}"
                  for s in self.stores]
        return hashlib.sha256("|".join(parts).encode()).hexdigest()[:16]


# ---- validation: bad specs fail here, with a message, not inside Triton ----------------------
def validate(spec: KernelSpec) -> None:
    names: set[str] = set()
    if spec.reduce_ndim < 0 or spec.reduce_ndim > len(spec.shape):
        raise ValueError(f"reduce_ndim={spec.reduce_ndim} does not fit shape {spec.shape}")
    if any(n < 0 for n in spec.shape):
        raise ValueError(f"negative size in kernel shape {spec.shape}")
    for ld in spec.loads:
        if ld.name in names:
            raise ValueError(f"value {ld.name!r} defined twice")
        names.add(ld.name)
        shape = ld.shape if ld.shape is not None else spec.shape
        if ld.strides is not None and len(ld.strides) != len(shape):
            raise ValueError(f"load {ld.name!r}: strides {ld.strides} do not match shape {shape}")
        if spec.matmul is None or ld.name not in (spec.matmul.a, spec.matmul.b):
            _check_broadcast(ld.name, shape, spec.shape)
    if spec.matmul is not None:
        mm = spec.matmul
        for n in (mm.a, mm.b):
            if n not in names:
                raise ValueError(f"matmul operand {n!r} is not a load")
        a, b = spec.load(mm.a), spec.load(mm.b)
        ash, bsh = a.shape or (), b.shape or ()
        if len(ash) < 2 or len(bsh) < 2:
            raise ValueError("matmul operands must have at least 2 dims (unsqueeze vectors first)")
        if ash[-1] != bsh[-2]:
            raise ValueError(f"matmul: a {ash} and b {bsh} disagree on K")
        if len(spec.shape) < 2 or spec.shape[-2:] != (ash[-2], bsh[-1]):
            raise ValueError(f"matmul: kernel shape {spec.shape} is not (..., {ash[-2]}, {bsh[-1]})")
        _check_broadcast(mm.a, ash[:-2], spec.shape[:-2])
        _check_broadcast(mm.b, bsh[:-2], spec.shape[:-2])
        if a.dtype is not b.dtype:
            raise ValueError(f"matmul operands have different dtypes: {a.dtype.name} and {b.dtype.name}")
        if mm.out in names:
            raise ValueError(f"value {mm.out!r} defined twice")
        names.add(mm.out)
    for st in spec.body:
        for a in st.args:
            if isinstance(a, str) and a not in names:
                raise ValueError(f"step {st.out!r} reads {a!r} before it is defined")
            if not isinstance(a, (str, int, float, bool)):
                raise TypeError(f"step {st.out!r}: argument {a!r} is neither a value name nor a number")
        if st.out in names:
            raise ValueError(f"value {st.out!r} defined twice")
        kind = "scan" if is_row_op(st) else st.primitive.kind
        if kind == "scan" and spec.reduce_ndim != 1:
            raise ValueError(f"{st.op} {st.out!r} needs a kernel that reduces exactly one trailing axis (its rows)")
        if kind not in ("pointwise", "reduce", "random", "scan"):
            raise ValueError(f"op {st.op!r} ({kind}) cannot be fused into a kernel body")
        if kind == "random" and (spec.reduce_ndim or spec.matmul is not None):
            raise ValueError(f"random numbers {st.out!r} outside a pointwise kernel")
        if kind == "reduce":
            if spec.reduce_ndim == 0:
                raise ValueError(f"reduction {st.out!r} in a kernel with reduce_ndim=0")
            if spec.matmul is not None:
                raise ValueError("a matmul epilogue cannot hold reductions")
        names.add(st.out)
    outs = set()
    for s in spec.stores:
        if s.value not in names:
            raise ValueError(f"store {s.name!r} writes undefined value {s.value!r}")
        if s.name in outs:
            raise ValueError(f"buffer {s.name!r} stored twice")
        outs.add(s.name)
        if s.strides is not None and s.shape is not None and len(s.strides) != len(s.shape):
            raise ValueError(f"store {s.name!r}: strides {s.strides} do not match shape {s.shape}")
    if not spec.stores:
        raise ValueError("a kernel without stores does nothing")
    _check_indices(spec)


def _check_indices(spec: KernelSpec) -> None:
    """Index values are plain integer loads, and only pointwise kernels read or write through them."""
    plain = {ld.name: ld for ld in spec.loads if not ld.index}
    for what, name, terms in [("load", ld.name, ld.index) for ld in spec.loads] + \
            [("store", st.name, st.index) for st in spec.stores]:
        if not terms:
            continue
        if spec.matmul is not None or spec.reduce_ndim:
            raise ValueError(f"{what} {name!r} is indexed: only pointwise kernels gather and scatter")
        for v, _ in terms:
            if v not in plain or plain[v].dtype.category != D._INT:
                raise ValueError(f"{what} {name!r} is indexed by {v!r}, which is not an integer load "
                                 "read without an index")


def _check_broadcast(name: str, shape: Sequence[int], target: Sequence[int]) -> None:
    if len(shape) > len(target):
        raise ValueError(f"{name!r} of shape {tuple(shape)} has more dims than the kernel's {tuple(target)}")
    for a, b in zip(reversed(tuple(shape)), reversed(tuple(target))):
        if a != b and a != 1:
            raise ValueError(f"{name!r} of shape {tuple(shape)} does not broadcast to {tuple(target)}")


# ---- dtype inference: each value's torch dtype ---------------------------------------------
class _Proxy:
    """What the op table's dtype rules read from a tensor: dtype and ndim."""

    __slots__ = ("dtype", "ndim")

    def __init__(self, dtype: D.DType, ndim: int):
        self.dtype = dtype
        self.ndim = ndim


def infer_dtypes(spec: KernelSpec) -> dict[str, D.DType]:
    """The torch dtype of every value (loads, the matmul result, body steps)."""
    out: dict[str, D.DType] = {}
    ndims: dict[str, int] = {}
    for ld in spec.loads:
        out[ld.name] = ld.dtype
        ndims[ld.name] = len(ld.shape if ld.shape is not None else spec.shape)
    if spec.matmul is not None:
        out[spec.matmul.out] = spec.load(spec.matmul.a).dtype
        ndims[spec.matmul.out] = len(spec.shape)
    for st in spec.body:
        out[st.out] = st.dtype if st.dtype is not None else _infer_step(st, out, ndims)
        ndims[st.out] = len(spec.shape)
    return out


def step_args(step: Step, dtypes: Mapping[str, D.DType], ndims: Mapping[str, int] | None = None) -> list:
    """The step's arguments as the op table's dtype rules expect them (proxies and scalars)."""
    return [_Proxy(dtypes[a], (ndims or {}).get(a, 1)) if isinstance(a, str) else a for a in step.args]


def _infer_step(step: Step, dtypes, ndims) -> D.DType:
    op = step.primitive
    args = step_args(step, dtypes, ndims)
    if "dtype" in step.attrs and step.attrs["dtype"] is not None and op.kind == "reduce":
        return as_dtype(step.attrs["dtype"])
    if op.name in ("sum", "prod"):  # integer and bool sums accumulate in int64, as torch's do
        dt = args[0].dtype
        return D.int64 if dt.category <= D._INT else dt
    if op.name == "where":
        return D.result_type(args[1], args[2])
    if op.name == "masked_fill":
        return args[0].dtype
    if op.dtype is not None:
        r = op.dtype(args, step.attrs)
        return r[0] if isinstance(r, tuple) else r
    for a in args:
        if isinstance(a, _Proxy):
            return a.dtype
    return D.result_type(*args)


def value_names(spec: KernelSpec) -> list[str]:
    names = [ld.name for ld in spec.loads]
    if spec.matmul is not None:
        names.append(spec.matmul.out)
    names += [st.out for st in spec.body]
    return names


def uses(spec: KernelSpec) -> dict[str, list[str]]:
    """value -> the values it reads directly (loads read nothing)."""
    deps: dict[str, list[str]] = {ld.name: [v for v, _ in ld.index] for ld in spec.loads}
    if spec.matmul is not None:
        deps[spec.matmul.out] = [spec.matmul.a, spec.matmul.b]
    for st in spec.body:
        deps[st.out] = [a for a in st.args if isinstance(a, str)]
    return deps


def pointwise(name: str, shape: Sequence[int], loads: Iterable[Load], body: Iterable[Step],
              stores: Iterable[Store], **options) -> KernelSpec:
    """Shorthand for a pointwise KernelSpec."""
    return KernelSpec(name, tuple(shape), tuple(loads), tuple(body), tuple(stores), options=options)


def from_nodes(name: str, nodes: Sequence[Any], outputs: Sequence[Any], *, allow_tf32: bool = False) -> KernelSpec:
    """A spec from one fusion group of a traced graph.

    nodes: the group's graph nodes in execution order; each has `.op` (an Op), `.args`
    (values or Python numbers), `.attrs`, `.dtype`, `.compute` and `.outputs`.
    outputs: the values the group must write. A value has `.name`, `.shape`, `.dtype`,
    `.strides` and `.offset` (elements into the memory the kernel is handed for it).
    Values read but not produced inside the group become loads. A view node of the
    group (permute, expand, slicing...) emits nothing: its output is read directly
    as a load with the view's strides and offset, from its base's memory (so the
    launcher passes the base's storage under the view's name). A reduction must
    reduce trailing dims (the planner permutes first); a matmul must come first,
    the rest of the group being its epilogue."""
    from .lowering import LoweringError

    produced: set[str] = set()
    loads: list[Load] = []
    body: list[Step] = []
    matmul = None
    shape: tuple | None = None
    reduce_ndim = 0

    def ref(a):
        if hasattr(a, "shape") and hasattr(a, "name"):
            if a.name not in produced and all(ld.name != a.name for ld in loads):
                loads.append(Load(a.name, a.dtype, tuple(a.shape), tuple(a.strides), int(getattr(a, "offset", 0))))
            return a.name
        if isinstance(a, (bool, int, float)):
            return a
        raise LoweringError(f"argument {a!r} is neither a value nor a number")

    for i, node in enumerate(nodes):
        op = node.op
        if len(node.outputs) != 1:
            raise LoweringError(f"op {op.name!r} has {len(node.outputs)} outputs; kernels take one-output ops")
        out = node.outputs[0]
        if op.kind == "view":
            src = next((a for a in node.args if hasattr(a, "shape")), None)
            if src is not None and src.name in produced:
                raise LoweringError(f"{op.name} of {src.name!r}, a value computed in registers: it has no memory "
                                    "to view")
            continue  # read through its strides where it is used
        if op.kind == "linalg" and op.lowering == "matmul":
            if i != 0:
                raise LoweringError("a matmul must open its fusion group")
            a, b = (ref(x) for x in node.args[:2])
            matmul = MatMul(out.name, a, b, allow_tf32)
            shape = tuple(out.shape)
        elif op.kind == "reduce":
            src = node.args[0]
            dims = tuple(node.attrs.get("dims", ()))
            nd = len(src.shape)
            if sorted(d % nd for d in dims) != list(range(nd - len(dims), nd)):
                raise LoweringError(f"{op.name} over dims {dims} of a {nd}-d tensor: only trailing dims reduce")
            if shape is not None and reduce_ndim and (tuple(src.shape) != shape or len(dims) != reduce_ndim):
                raise LoweringError("reductions of one kernel must share their rows")
            shape, reduce_ndim = tuple(src.shape), len(dims)
            body.append(Step(out.name, op.name, (ref(src),), node.attrs, node.dtype, node.compute))
        else:
            args = tuple(ref(x) for x in node.args)
            body.append(Step(out.name, op.name, args, node.attrs, node.dtype, node.compute))
            if shape is None or (not reduce_ndim and matmul is None and len(out.shape) >= len(shape)):
                shape = tuple(out.shape)
        produced.add(out.name)
    stores = [Store(v.name, v.name, v.dtype, tuple(v.shape), tuple(v.strides), int(getattr(v, "offset", 0)))
              for v in outputs]
    return KernelSpec(name, shape or (), tuple(loads), tuple(body), tuple(stores), reduce_ndim, matmul)
