"""Device kernels for movement ops that copy: flip, repeat, constant_pad_nd."""
from __future__ import annotations

from typing import Callable

HANDLERS: dict[str, Callable] = {}
