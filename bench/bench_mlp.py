"""A transformer-style MLP block, forward and backward: x -> Linear(D, 4D) -> GELU -> Linear(4D, D).

One timed call is the forward, a scalar loss (the mean square of the output) and the
gradients of the loss with respect to the four parameters, as one training step
computes them (without the optimizer). Compiled systems compile the forward; the
backward then runs through their autograd (torch.compile's AOT backward graph, or the
backward of tracegrad.compile's traced function). There is no NumPy column: NumPy
has no autograd.

FLOPs: the two matmuls forward are 2 * B * D * 4D each; the backward does three more (both
weight gradients and the hidden activations' gradient; x needs none): 40 * B * D^2 in all.
"""
from __future__ import annotations

import numpy as np

from .workload import Workload


def _mlp_loss(lib, x, w1, b1, w2, b2):
    F = lib.nn.functional
    y = F.linear(F.gelu(F.linear(x, w1, b1)), w2, b2)
    return (y * y).mean()


def _make(size, rng):
    b, d = size
    f32 = np.float32
    # torch's Linear init scale, so activations stay O(1) at every width
    return (rng.standard_normal((b, d)).astype(f32),
            (rng.uniform(-1, 1, (4 * d, d)) / np.sqrt(d)).astype(f32), np.zeros(4 * d, f32),
            (rng.uniform(-1, 1, (d, 4 * d)) / np.sqrt(4 * d)).astype(f32), np.zeros(d, f32))


def _prepare(system, arrays, size):
    if system.kind == "numpy":
        return None
    lib = system.lib
    x, *params = (system.tensor(a) for a in arrays)
    params = [p.requires_grad_(True) for p in params]

    def loss_fn(x, w1, b1, w2, b2):
        return _mlp_loss(lib, x, w1, b1, w2, b2)

    loss_fn = system.compile(loss_fn)

    def step():
        loss = loss_fn(x, *params)
        grads = lib.autograd.grad(loss, params)
        return (loss.detach(),) + tuple(grads)

    return step, ()


def workloads(device: str, quick: bool) -> list[Workload]:
    sizes = [(64, 256), (256, 512)] if device == "cpu" else [(4096, 1024), (8192, 2048)]
    return [Workload(
        name="mlp_gelu_fwd_bwd", group="training", devices=(device,), sizes=sizes, quick_sizes=sizes[:1],
        make_inputs=_make, prepare=_prepare, label=lambda s: f"{s[0]}x{s[1]}", x=lambda s: s[1],
        flops=lambda s: 40.0 * s[0] * s[1] * s[1], rtol=1e-3, atol=1e-5, rotate=False,
        note="Linear(D, 4D) -> GELU -> Linear(4D, D) on (B, D) float32: forward, loss and the four "
             "parameter gradients",
    )]
