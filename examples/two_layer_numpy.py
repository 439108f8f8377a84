"""Seed tutorial 003, part 1: a two-layer ReLU net (no bias) fitted with an L2 loss, in plain NumPy.

Forward pass, loss and backward pass are all written by hand: NumPy knows nothing
about gradients or computation graphs. The next scripts replace pieces of this one
by tracegrad: tensors (two_layer_tensor.py), autograd (two_layer_autograd.py), nn
(two_layer_nn.py), optim (two_layer_optim.py) and a custom Module (two_layer_module.py).

    python examples/two_layer_numpy.py [--steps 500]
"""
import argparse

import numpy as np


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=500, help="training steps (the tutorial uses 500)")
    ap.add_argument("--quick", action="store_true", help="a few steps only (for tests)")
    args = ap.parse_args(argv)
    steps = 60 if args.quick else args.steps

    # N is the batch size; D_in the input dimension; H the hidden dimension; D_out the output dimension
    N, D_in, H, D_out = 64, 1000, 100, 10
    np.random.seed(0)
    x = np.random.randn(N, D_in)
    y = np.random.randn(N, D_out)
    w1 = np.random.randn(D_in, H)
    w2 = np.random.randn(H, D_out)

    learning_rate = 1e-6
    for it in range(steps):
        # forward pass
        h = x.dot(w1)  # N * H
        h_relu = np.maximum(h, 0)  # N * H
        y_pred = h_relu.dot(w2)  # N * D_out

        # loss
        loss = np.square(y_pred - y).sum()
        if it % 50 == 0:
            print(it, loss)

        # backward pass: the gradients by the chain rule
        grad_y_pred = 2.0 * (y_pred - y)
        grad_w2 = h_relu.T.dot(grad_y_pred)
        grad_h_relu = grad_y_pred.dot(w2.T)
        grad_h = grad_h_relu.copy()
        grad_h[h < 0] = 0
        grad_w1 = x.T.dot(grad_h)

        # update the weights
        w1 -= learning_rate * grad_w1
        w2 -= learning_rate * grad_w2

    # the tutorial then compares the fit with the targets: the differences are tiny
    h = x.dot(w1)
    h_relu = np.maximum(h, 0)
    y_pred = h_relu.dot(w2)
    print(repr(y_pred[:1] - y[:1]))
    return float(np.square(y_pred - y).sum())


if __name__ == "__main__":
    main()
