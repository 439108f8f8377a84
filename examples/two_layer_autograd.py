"""Seed tutorial 003, part 3: the two-layer net with autograd computing the gradients.

With requires_grad=True on the weights, every operation records how to
differentiate it; loss.backward() then fills w1.grad and w2.grad. The update runs
under no_grad (it must not be recorded) and the gradients are zeroed afterwards,
since backward() adds into .grad.

    python examples/two_layer_autograd.py [--steps 500]
"""
import argparse

import tracegrad as torch


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=500)
    ap.add_argument("--quick", action="store_true", help="a few steps only (for tests)")
    args = ap.parse_args(argv)
    steps = 60 if args.quick else args.steps

    # the tutorial starts with the simplest graph: y = w * x + b
    x = torch.tensor(1.0, requires_grad=True)
    w = torch.tensor(2.0, requires_grad=True)
    b = torch.tensor(3.0, requires_grad=True)
    y = w * x + b  # y = 2 * 1 + 3
    y.backward()
    # dy / dw = x, dy / dx = w, dy / db = 1
    print(w.grad)
    print(x.grad)
    print(b.grad)

    torch.manual_seed(0)
    N, D_in, H, D_out = 64, 1000, 100, 10
    x = torch.randn(N, D_in)
    y = torch.randn(N, D_out)
    w1 = torch.randn(D_in, H, requires_grad=True)
    w2 = torch.randn(H, D_out, requires_grad=True)

    learning_rate = 1e-6
    for it in range(steps):
        # forward pass
        y_pred = x.mm(w1).clamp(min=0).mm(w2)
        # loss
        loss = (y_pred - y).pow(2).sum()  # a computation graph
        if it % 50 == 0:
            print(it, loss.item())
        # backward pass
        loss.backward()
        # update the weights of w1 and w2
        with torch.no_grad():
            w1 -= learning_rate * w1.grad
            w2 -= learning_rate * w2.grad
            w1.grad.zero_()
            w2.grad.zero_()
    return loss.item()


if __name__ == "__main__":
    main()
