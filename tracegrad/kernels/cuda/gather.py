"""Device kernels for indexing: gather, scatter, index, index_put, embedding."""
from __future__ import annotations

from typing import Callable

HANDLERS: dict[str, Callable] = {}
