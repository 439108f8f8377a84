"""Training steps that several test files compile and compare with torch: the seed tutorial's
two-layer network with its manual SGD update, and a small MLP with an optimizer."""
from __future__ import annotations

import numpy as np

# the tutorial's sizes, scaled down
N, D_IN, H, D_OUT = 16, 30, 20, 5


def two_layer_step(L, x, y, w1, w2, lr: float = 1e-3):
    """One step of the tutorial's loop: x.mm(w1).clamp(min=0).mm(w2), a sum-of-squares loss,
    backward, and the update written by hand under no_grad."""
    y_pred = x.mm(w1).clamp(min=0).mm(w2)
    loss = (y_pred - y).pow(2).sum()
    loss.backward()
    with L.no_grad():
        w1 -= lr * w1.grad
        w2 -= lr * w2.grad
        w1.grad.zero_()
        w2.grad.zero_()
    return loss


def build_mlp(L, opt: str, **kw):
    """Linear(10, 8) -> ReLU -> Linear(8, 3) with fixed weights, the optimizer `opt` and an MSE loss."""
    rng = np.random.default_rng(0)
    m = L.nn.Sequential(L.nn.Linear(10, 8), L.nn.ReLU(), L.nn.Linear(8, 3))
    with L.no_grad():
        for p in m.parameters():
            p.copy_(L.tensor(rng.standard_normal(tuple(p.shape)).astype(np.float32) * 0.5))
    return m, getattr(L.optim, opt)(m.parameters(), lr=0.05, **kw), L.nn.MSELoss()


def module_step(model, opt, lossf, x, y):
    """zero_grad, forward, loss, backward, step."""
    opt.zero_grad()
    loss = lossf(model(x), y)
    loss.backward()
    opt.step()
    return loss
