"""Device kernels for convolution and pooling."""
from __future__ import annotations

from typing import Callable

HANDLERS: dict[str, Callable] = {}
