"""Seed tutorial 003, part 2: the same two-layer net with tracegrad tensors, backward still by hand.

A tensor is much like a NumPy ndarray (and could run on a GPU). The NumPy calls
become tensor methods: mm for dot, clamp for maximum, pow(2) for square, t() for .T,
clone() for copy().

    python examples/two_layer_tensor.py [--steps 500]
"""
import argparse

import tracegrad as torch


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=500)
    ap.add_argument("--quick", action="store_true", help="a few steps only (for tests)")
    args = ap.parse_args(argv)
    steps = 60 if args.quick else args.steps

    dtype = torch.float
    device = torch.device("cpu")
    torch.manual_seed(0)
    N, D_in, H, D_out = 64, 1000, 100, 10
    x = torch.randn(N, D_in, device=device, dtype=dtype)
    y = torch.randn(N, D_out, device=device, dtype=dtype)
    w1 = torch.randn(D_in, H, device=device, dtype=dtype)
    w2 = torch.randn(H, D_out, device=device, dtype=dtype)

    learning_rate = 1e-6
    for it in range(steps):
        h = x.mm(w1)
        h_relu = h.clamp(min=0)
        y_pred = h_relu.mm(w2)

        loss = (y_pred - y).pow(2).sum().item()
        if it % 50 == 0:
            print(it, loss)

        grad_y_pred = 2.0 * (y_pred - y)
        grad_w2 = h_relu.t().mm(grad_y_pred)
        grad_h_relu = grad_y_pred.mm(w2.t())
        grad_h = grad_h_relu.clone()
        grad_h[h < 0] = 0
        grad_w1 = x.t().mm(grad_h)

        w1 -= learning_rate * grad_w1
        w2 -= learning_rate * grad_w2
    return loss


if __name__ == "__main__":
    main()
