"""Seed tutorial 003, part 4: the two-layer net built from torch.nn layers.

nn.Sequential chains Linear -> ReLU -> Linear; nn.MSELoss(reduction='sum') is the
L2 loss; the weights are re-initialised from N(0, 1) as in the tutorial. The update
still loops over model.parameters() by hand.

    python examples/two_layer_nn.py [--steps 500]
"""
import argparse

import tracegrad as torch
import tracegrad.nn as nn


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=500)
    ap.add_argument("--quick", action="store_true", help="a few steps only (for tests)")
    args = ap.parse_args(argv)
    steps = 60 if args.quick else args.steps

    torch.manual_seed(0)
    N, D_in, H, D_out = 64, 1000, 100, 10
    x = torch.randn(N, D_in)
    y = torch.randn(N, D_out)

    model = torch.nn.Sequential(
        torch.nn.Linear(D_in, H, bias=False),  # w_1 * x + b_1
        torch.nn.ReLU(),
        torch.nn.Linear(H, D_out, bias=False),
    )
    torch.nn.init.normal_(model[0].weight)
    torch.nn.init.normal_(model[2].weight)
    print(model)

    loss_fn = nn.MSELoss(reduction="sum")
    learning_rate = 1e-6
    for it in range(steps):
        # forward pass
        y_pred = model(x)  # model.forward()
        # loss
        loss = loss_fn(y_pred, y)  # a computation graph
        if it % 50 == 0:
            print(it, loss.item())
        model.zero_grad()
        # backward pass
        loss.backward()
        # update the weights
        with torch.no_grad():
            for param in model.parameters():  # param (tensor, grad)
                param -= learning_rate * param.grad

    # model[0].weight is the first layer's weight (a Parameter)
    print(model[0].weight)
    return loss.item()


if __name__ == "__main__":
    main()
