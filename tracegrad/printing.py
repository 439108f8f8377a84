"""How a tensor prints: ``repr(t)`` and ``str(t)``, character for character as torch.

The output has three layers, built in this order:

1. **Formatting one number.** A `_Formatter` looks at (a sample of) the values
   once and decides, for the whole tensor, how every element is written:

   * integer and bool tensors: plain ``str(value)`` (``3``, ``-7``, ``True``);
   * float tensors whose finite values are all whole numbers ("int mode"):
     ``1.``, ``-20.`` -- the trailing dot says "this is a float";
   * other float tensors: fixed point with ``precision`` decimals (``0.5000``);
   * float tensors whose magnitudes span too much: scientific (``1.0000e-05``).

   Every element is right-aligned to the width of the widest one, so columns
   line up.

2. **Nesting.** A 1-D tensor is ``[a, b, c]``, wrapped so no line passes
   ``linewidth``; a k-D tensor is a bracketed list of (k-1)-D slices, separated
   by ``,`` plus k-1 newlines (so 3-D slices get a blank line between them).
   Tensors with more than ``threshold`` elements are *summarised*: along every
   dimension only ``edgeitems`` entries at each end are shown, with ``...``
   between.

3. **Suffixes.** ``tensor([...]`` is followed by ``, device='cuda:0'``,
   ``, dtype=tracegrad.float64``, ``, grad_fn=<AddBackward0>`` etc. when they
   carry information, and then ``)``. A suffix that would push the line past
   ``linewidth`` goes onto a new line instead.

All the decisions (when to switch to scientific notation, how widths and line
breaks are counted) follow torch's ``torch/_tensor_str.py`` so that tutorial
output looks the same. This module never imports torch.

The tensor is duck-typed: we use ``t.shape``, ``t.dtype``, ``t.device``,
``t.requires_grad``, ``t.grad_fn`` and ``t._values()`` (a NumPy array of the
logical values, bfloat16 already widened to float32).
"""
from __future__ import annotations

import contextlib
import dataclasses
import math
from typing import Any, Iterator, List, Optional

import numpy as np

from . import dtypes as _dtypes

__all__ = [
    "PRINT_OPTS",
    "PrintOptions",
    "set_printoptions",
    "get_printoptions",
    "printoptions",
    "tensor_repr",
]


# ---------------------------------------------------------------------------
# Print options
# ---------------------------------------------------------------------------


@dataclasses.dataclass
class PrintOptions:
    """The knobs `set_printoptions` turns (the same ones, with the same
    defaults, as torch; torch borrowed them from NumPy).

    precision -- decimals after the point (fixed and scientific modes)
    threshold -- more elements than this and the tensor is summarised
    edgeitems -- how many entries to keep at each end of a summarised dim
    linewidth -- the line length that triggers wrapping
    sci_mode  -- True/False forces scientific notation on/off; None lets the
                 formatter decide from the values
    """

    precision: int = 4
    threshold: float = 1000
    edgeitems: int = 3
    linewidth: int = 80
    sci_mode: Optional[bool] = None


PRINT_OPTS = PrintOptions()

# Named presets; the remaining options keep their current values.
_PROFILES = {
    "default": dict(precision=4, threshold=1000, edgeitems=3, linewidth=80),
    "short": dict(precision=2, threshold=1000, edgeitems=2, linewidth=80),
    "full": dict(precision=4, threshold=math.inf, edgeitems=3, linewidth=80),
}


def set_printoptions(
    precision=None,
    threshold=None,
    edgeitems=None,
    linewidth=None,
    profile=None,
    sci_mode=None,
):
    """Set how tensors print, like ``torch.set_printoptions``.

    ``profile`` ("default", "short" or "full") first loads a preset; any other
    argument given then overrides it. Arguments left as None keep their current
    value -- except ``sci_mode``, which is *always* set (so any call without
    ``sci_mode=`` goes back to automatic notation). That is torch's behaviour,
    and copying it keeps code written for torch printing the same.
    """
    if profile is not None:
        # torch silently ignores an unknown profile name; so do we.
        for name, value in _PROFILES.get(profile, {}).items():
            setattr(PRINT_OPTS, name, value)
    if precision is not None:
        PRINT_OPTS.precision = precision
    if threshold is not None:
        PRINT_OPTS.threshold = threshold
    if edgeitems is not None:
        PRINT_OPTS.edgeitems = edgeitems
    if linewidth is not None:
        PRINT_OPTS.linewidth = linewidth
    PRINT_OPTS.sci_mode = sci_mode


def get_printoptions() -> dict:
    """The current options as a dict that `set_printoptions(**d)` accepts."""
    return dataclasses.asdict(PRINT_OPTS)


@contextlib.contextmanager
def printoptions(**kwargs) -> Iterator[None]:
    """``with printoptions(precision=2): ...`` -- set options for a block only."""
    saved = get_printoptions()
    set_printoptions(**kwargs)
    try:
        yield
    finally:
        set_printoptions(**saved)


# ---------------------------------------------------------------------------
# Layer 1: formatting single numbers
# ---------------------------------------------------------------------------


class _Formatter:
    """Decides, from a sample of a tensor's values, how each element is written.

    ``values`` is a flat NumPy array: the whole tensor, or for a summarised
    tensor only the elements that will be shown (so the hidden middle does not
    affect widths or the choice of notation).
    """

    def __init__(self, values: np.ndarray, is_floating: bool):
        self.is_floating = is_floating
        self.int_mode = True  # floats that are all whole numbers print as "3."
        self.sci_mode = False
        self.max_width = 1

        if not is_floating:
            # Integers and bools: just the widest str().
            for v in values.tolist():
                self.max_width = max(self.max_width, len(str(v)))
            return

        # Only nonzero finite numbers decide the notation and the width:
        # zeros, nan and inf look the same in every mode. (So "nan", "inf" or
        # "-0." may come out wider than the others; they are then not padded.)
        v = values.astype(np.float64)  # exact for float16/bfloat16/float32
        v = v[np.isfinite(v) & (v != 0)]
        if v.size == 0:
            # Nothing to measure: keep the defaults (int mode, no sci). Note
            # that a forced sci_mode=True is ignored here, as in torch.
            return

        magnitudes = np.abs(v)
        lo, hi = magnitudes.min(), magnitudes.max()
        self.int_mode = bool(np.all(v == np.ceil(v)))

        if PRINT_OPTS.sci_mode is None:
            # Too wide a spread, too big or too small for fixed point with
            # `precision` decimals to show every value sensibly.
            with np.errstate(over="ignore"):  # 1e308 / 1e-308 is inf: still "too wide"
                spread = hi / lo
            self.sci_mode = bool(spread > 1000.0 or hi > 1.0e8 or lo < 1.0e-4)
        else:
            self.sci_mode = PRINT_OPTS.sci_mode

        p = PRINT_OPTS.precision
        for x in v.tolist():
            if self.sci_mode:
                s = f"{x:.{p}e}"
            elif self.int_mode:
                s = f"{x:.0f}" + "."  # room for the trailing dot
            else:
                s = f"{x:.{p}f}"
            self.max_width = max(self.max_width, len(s))

    def width(self) -> int:
        return self.max_width

    def format(self, value) -> str:
        """One element (a Python number), right-aligned to the common width."""
        if self.is_floating:
            p = PRINT_OPTS.precision
            if self.sci_mode:
                s = f"{value:{self.max_width}.{p}e}"
            elif self.int_mode:
                s = f"{value:.0f}"
                # the dot marks a float, but "nan." / "inf." would look odd
                if math.isfinite(value):
                    s += "."
            else:
                s = f"{value:.{p}f}"
        else:
            s = f"{value}"
        return s.rjust(self.max_width)


# ---------------------------------------------------------------------------
# Layer 2: nesting, wrapping and summarising
# ---------------------------------------------------------------------------


def _summarized_values(a: np.ndarray) -> np.ndarray:
    """The elements a summarised print actually shows, flattened.

    Keeps the first and last ``edgeitems`` entries along every dimension that
    is longer than ``2 * edgeitems``.
    """
    e = PRINT_OPTS.edgeitems
    if a.ndim == 0:
        return a.reshape(1)
    if a.ndim == 1:
        # a[-0:] is the whole array, so with edgeitems=0 this measures
        # everything -- harmless, since then only "..." is printed.
        return np.concatenate((a[:e], a[-e:])) if a.shape[0] > 2 * e else a
    if not e:
        return a[:0].reshape(-1)  # prints as "[...]": nothing to measure
    rows = list(a[:e]) + list(a[-e:]) if a.shape[0] > 2 * e else list(a)
    return np.concatenate([_summarized_values(r) for r in rows])


def _vector_str(a: np.ndarray, indent: int, summarize: bool, fmt: _Formatter) -> str:
    """A 1-D array as ``[x, y, z]``, wrapped to fit ``linewidth``.

    ``indent`` is the column the ``[`` sits in; wrapped lines start one column
    further right so the numbers line up under the first one.
    """
    e = PRINT_OPTS.edgeitems
    # each element takes its width plus ", "
    per_line = max(1, (PRINT_OPTS.linewidth - indent) // (fmt.width() + 2))

    if summarize and not e:
        items = ["..."]
    elif summarize and a.shape[0] > 2 * e:
        # " ..." (with a leading space) so it lines up like a number
        items = [fmt.format(x) for x in a[:e].tolist()]
        items += [" ..."]
        items += [fmt.format(x) for x in a[-e:].tolist()]
    else:
        items = [fmt.format(x) for x in a.tolist()]

    lines = [", ".join(items[i : i + per_line]) for i in range(0, len(items), per_line)]
    return "[" + (",\n" + " " * (indent + 1)).join(lines) + "]"


def _nested_str(a: np.ndarray, indent: int, summarize: bool, fmt: _Formatter) -> str:
    """Any-dimensional array as nested brackets.

    Slices of a k-D tensor are joined by "," and k-1 newlines: rows of a matrix
    go on consecutive lines, matrices of a 3-D tensor get one blank line
    between them, and so on.
    """
    if a.ndim == 0:
        return fmt.format(a.item())
    if a.ndim == 1:
        return _vector_str(a, indent, summarize, fmt)

    e = PRINT_OPTS.edgeitems
    n = a.shape[0]
    if summarize and n > 2 * e:
        slices = [_nested_str(a[i], indent + 1, summarize, fmt) for i in range(e)]
        slices.append("...")
        slices += [_nested_str(a[i], indent + 1, summarize, fmt) for i in range(n - e, n)]
    else:
        slices = [_nested_str(a[i], indent + 1, summarize, fmt) for i in range(n)]

    separator = "," + "\n" * (a.ndim - 1) + " " * (indent + 1)
    return "[" + separator.join(slices) + "]"


def _values_for_printing(t) -> np.ndarray:
    """The tensor's values as Python-friendly NumPy: floats as float64.

    Widening is exact for float16, bfloat16 (already float32) and float32, so
    every element is printed from its true value, as torch does via .item().
    """
    a = np.asarray(t._values())
    if t.dtype.is_floating_point:
        return a.astype(np.float64)
    return a


def _tensor_body(t, indent: int) -> str:
    """The bracketed numbers of a non-empty tensor (no prefix, no suffixes)."""
    a = _values_for_printing(t)
    summarize = a.size > PRINT_OPTS.threshold
    sample = _summarized_values(a) if summarize else a.reshape(-1)
    fmt = _Formatter(sample, t.dtype.is_floating_point)
    return _nested_str(a, indent, summarize, fmt)


# ---------------------------------------------------------------------------
# Layer 3: prefix and suffixes
# ---------------------------------------------------------------------------


def _numel(shape) -> int:
    n = 1
    for s in shape:
        n *= s
    return n


def _suffixes(t) -> List[str]:
    """The ``key=value`` parts after the numbers, in torch's order:
    device, size, dtype, then grad_fn or requires_grad."""
    out = []
    # The device is shown only when it is not the default one (cpu).
    if t.device.type != "cpu":
        out.append(f"device='{t.device}'")

    shape = tuple(t.shape)
    default = _dtypes.get_default_dtype()
    if t.device.type == "meta":
        # a meta tensor has a shape and a dtype but no values to show
        out.append(f"size={shape}")
        if t.dtype is not default:
            out.append(f"dtype={t.dtype}")
    elif _numel(shape) == 0:
        # "[]" alone cannot tell shape (0,) from (2, 0), nor the dtype:
        # an empty int64 tensor still shows dtype= here.
        if len(shape) != 1:
            out.append(f"size={shape}")
        if t.dtype is not default:
            out.append(f"dtype={t.dtype}")
    else:
        if not PRINT_OPTS.edgeitems:
            # everything was replaced by "...", so at least say the shape
            out.append(f"size={shape}")
        # The default float dtype, int64 and bool are what tensor([...]) would
        # infer from the printed numbers, so they need no dtype=.
        if t.dtype not in (default, _dtypes.int64, _dtypes.bool_):
            out.append(f"dtype={t.dtype}")

    if t.grad_fn is not None:
        # without a namespace, as torch prints it (CopySlices' name() is "...::CopySlices")
        out.append(f"grad_fn=<{t.grad_fn.name().rsplit('::', 1)[-1]}>")
    elif t.requires_grad:
        out.append("requires_grad=True")
    return out


def _torch_len(suffix: str) -> int:
    """The length `suffix` has when torch prints it.

    ``dtype=tracegrad.float64`` is 4 characters longer than torch's
    ``dtype=torch.float64``. Measuring it as torch would keeps the line breaks
    where torch puts them, so the output equals torch's apart from the name
    (a line may then end up to 4 characters past ``linewidth``).
    """
    return len(suffix.replace("tracegrad.", "torch."))


def _add_suffixes(text: str, suffixes: List[str], indent: int) -> str:
    """Append ``, suffix`` parts and the closing ``)``.

    A suffix that would make the current last line longer than ``linewidth``
    starts a new line, indented to line up with the numbers.
    """
    parts = [text]
    # Length of the last line, counted the way torch counts it: the formula
    # gives 2 more than the real length (with or without a newline in `text`).
    # We keep that so lines break at exactly the places torch breaks them.
    last_line_len = len(text) - text.rfind("\n") + 1
    for suffix in suffixes:
        n = _torch_len(suffix)
        if last_line_len + n + 2 > PRINT_OPTS.linewidth:
            parts.append(",\n" + " " * indent + suffix)
            last_line_len = indent + n
        else:
            parts.append(", " + suffix)
            last_line_len += n + 2
    parts.append(")")
    return "".join(parts)


def tensor_repr(t: Any, tensor_contents: Optional[str] = None) -> str:
    """What ``repr(t)`` and ``str(t)`` return, e.g. ``tensor([1., 2.])``.

    ``tensor_contents``, if given, replaces the printed numbers (the suffixes
    are still added), like the argument of the same name in torch.
    """
    prefix = "tensor("
    indent = len(prefix)  # continuation lines line up under the first "["
    if tensor_contents is not None:
        body = tensor_contents
    elif t.device.type == "meta":
        body = "..."
    elif _numel(t.shape) == 0:
        body = "[]"
    else:
        body = _tensor_body(t, indent)
    return _add_suffixes(prefix + body, _suffixes(t), indent)
