"""Shape arithmetic shared by the ops: broadcasting, dim wrapping, undoing broadcasts."""
from __future__ import annotations


def broadcast_shapes(*shapes) -> tuple:
    """torch's broadcasting, with torch's message (dims counted in the output)."""
    nd = max((len(s) for s in shapes), default=0)
    out = [1] * nd
    for s in shapes:
        off = nd - len(s)
        # torch's infer_size walks from the last dim, so the first mismatch from the right is named
        for i in reversed(range(len(s))):
            n = s[i]
            j = i + off
            if out[j] == 1:
                out[j] = n
            elif n != 1 and n != out[j]:
                # torch names the earlier operand "a"
                raise RuntimeError(
                    f"The size of tensor a ({out[j]}) must match the size of tensor b ({n}) "
                    f"at non-singleton dimension {j}"
                )
    return tuple(out)


def wrap_dim(dim: int, ndim: int) -> int:
    n = max(ndim, 1)
    if not isinstance(dim, int):
        raise TypeError(f"dim must be an int, not {type(dim).__name__}")
    if not -n <= dim < n:
        raise IndexError(f"Dimension out of range (expected to be in range of [{-n}, {n - 1}], but got {dim})")
    return dim + n if dim < 0 else dim


def wrap_dims(dim, ndim: int) -> tuple:
    """A reduction's `dim` (None, int, or sequence) as a sorted tuple of distinct dims."""
    if dim is None:
        return tuple(range(ndim))
    if isinstance(dim, int):
        return (wrap_dim(dim, ndim),)
    dims = tuple(wrap_dim(d, ndim) for d in dim)
    if len(set(dims)) != len(dims):
        d = next(d for d in dims if dims.count(d) > 1)
        raise RuntimeError(f"dim {d} appears multiple times in the list of dims")
    return tuple(sorted(dims))


def sum_to(g, shape):
    """Undo broadcasting in a gradient: sum `g` down to `shape`."""
    shape = tuple(shape)
    if tuple(g.shape) == shape:
        return g
    lead = g.ndim - len(shape)
    dims = tuple(range(lead)) + tuple(
        i + lead for i, n in enumerate(shape) if n == 1 and g.shape[i + lead] != 1
    )
    r = g.sum(dims, keepdim=True) if dims else g
    if lead:
        r = r.reshape(shape)
    return r


def is_non_overlapping_and_dense(shape, strides) -> bool:
    """Whether the elements fill a block of memory exactly once, in some order of dims."""
    dims = sorted((s, n) for n, s in zip(shape, strides) if n != 1)
    expected = 1
    for s, n in dims:
        if s != expected:
            return False
        expected *= n
    return True


def _contiguous(shape, strides) -> bool:
    expected = 1
    for n, s in zip(reversed(shape), reversed(strides)):
        if n != 1 and s != expected:
            return False
        expected *= n
    return True


def pointwise_strides(shape, operands):
    """The element strides torch gives an elementwise op's output, or None for row-major.

    torch (TensorIterator) keeps the memory order of its inputs: an op on a transposed
    tensor returns a transposed result. `operands` are the (shape, strides) of the tensor
    inputs in argument order. Same-shaped dense inputs with equal strides hand their strides
    on; otherwise dims are sorted by the inputs' strides (the first input that tells two dims
    apart decides; broadcast dims tell nothing), and the output is dense in that order."""
    shape = tuple(shape)
    nd = len(shape)
    if nd < 2 or not operands:
        return None
    if all(tuple(s) == shape for s, _ in operands):
        if all(_contiguous(s, st) for s, st in operands):
            return None
        first = tuple(operands[0][1])
        if all(tuple(st) == first for _, st in operands) and is_non_overlapping_and_dense(shape, first):
            return first
    bstrides = []
    for s, st in operands:
        off = nd - len(s)
        b = [0] * nd
        for i, (n, x) in enumerate(zip(s, st)):
            if not (n == 1 and shape[i + off] != 1):
                b[i + off] = x
        bstrides.append(b)

    def order(d0, d1):  # 1: d0 should move after d1 (be slower-moving), -1: keep, 0: undecided
        for b in bstrides:
            s0, s1 = b[d0], b[d1]
            if s0 == 0 or s1 == 0:
                continue
            if s0 != s1:
                return 1 if s0 > s1 else -1
            if shape[d0] > shape[d1]:
                return 1
        return 0

    perm = list(range(nd - 1, -1, -1))  # fastest-moving dim first
    for i in range(1, nd):
        d1 = i
        for d0 in range(i - 1, -1, -1):
            c = order(perm[d0], perm[d1])
            if c > 0:
                perm[d0], perm[d1] = perm[d1], perm[d0]
                d1 = d0
            elif c < 0:
                break
    if perm == list(range(nd - 1, -1, -1)):
        return None
    strides = [0] * nd
    step = 1
    for d in perm:
        strides[d] = step
        step *= shape[d]
    return tuple(strides)


def _canonical(a) -> bool:
    """Row-major with torch's strides on size-1 dims too, or fully broadcast (all strides 0)."""
    if not any(a.strides):
        return True
    expected = a.itemsize
    for n, st in zip(reversed(a.shape), reversed(a.strides)):
        if st != expected:
            return False
        expected *= n if n else 1
    return True


def match_layout(arr, tensors):
    """`arr` (an elementwise result) laid out in memory as torch lays out that op's output."""
    import numpy as np

    if arr.ndim < 2 or arr.size < 2:
        return arr
    if arr.flags.c_contiguous:
        # row-major and fully broadcast (all-zero strides) inputs give a row-major output; when shapes
        # differ, a size-1 dim with an unusual stride (left by a permute) can reorder torch's output
        same = True
        for t in tensors:
            d = t._data
            if not d.flags.c_contiguous and any(d.strides):
                break
            same = same and d.shape == arr.shape
        else:
            if same or all(1 not in t._data.shape or _canonical(t._data) for t in tensors):
                return arr
    want = pointwise_strides(arr.shape, [(t._data.shape, t.stride()) for t in tensors])
    if want is None:
        return np.ascontiguousarray(arr)
    item = arr.itemsize
    if tuple(s // item for s in arr.strides) == want:
        return arr
    out = np.lib.stride_tricks.as_strided(np.empty(arr.size, arr.dtype), arr.shape, tuple(s * item for s in want))
    out[...] = arr
    return out
