"""Graph passes: each takes a Graph and returns a new one (nodes another graph shares are never edited).

    dce      dead-code elimination: drop nodes no output needs
    cse      common subexpressions: one node for identical calls
    fold     constant folding: evaluate nodes whose inputs are all constants
    views    drop views that change nothing and copies nobody can tell from their source
    fusion   group nodes into kernels (the fusion plan every backend reads)

`optimize(graph)` runs the cleanup passes in a useful order."""
from __future__ import annotations

from ..graph import Graph
from .cse import cse
from .dce import dce
from .fold import fold_constants
from .views import remove_noop_views


def optimize(graph: Graph) -> Graph:
    """dce, no-op views, cse, constant folding, dce."""
    g = dce(graph)
    g = remove_noop_views(g)
    g = cse(g)
    g = fold_constants(g)
    return dce(g)


__all__ = ["optimize", "dce", "cse", "fold_constants", "remove_noop_views"]
