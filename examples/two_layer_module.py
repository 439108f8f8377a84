"""Seed tutorial 003, part 6: the two-layer net as a custom nn.Module.

For models more complex than a Sequential, subclass nn.Module: create the layers
in __init__ (assigning them registers their parameters) and write forward.

    python examples/two_layer_module.py [--steps 500]
"""
import argparse

import tracegrad as torch
import tracegrad.nn as nn


class TwoLayerNet(torch.nn.Module):
    def __init__(self, D_in, H, D_out):
        super(TwoLayerNet, self).__init__()
        # define the model's structure
        self.linear1 = torch.nn.Linear(D_in, H, bias=False)
        self.linear2 = torch.nn.Linear(H, D_out, bias=False)

    def forward(self, x):
        y_pred = self.linear2(self.linear1(x).clamp(min=0))
        return y_pred


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=500)
    ap.add_argument("--quick", action="store_true", help="a few steps only (for tests)")
    args = ap.parse_args(argv)
    steps = 101 if args.quick else args.steps

    torch.manual_seed(0)
    N, D_in, H, D_out = 64, 1000, 100, 10
    x = torch.randn(N, D_in)
    y = torch.randn(N, D_out)

    model = TwoLayerNet(D_in, H, D_out)
    loss_fn = nn.MSELoss(reduction="sum")
    learning_rate = 1e-4
    optimizer = torch.optim.Adam(model.parameters(), lr=learning_rate)
    for it in range(steps):
        y_pred = model(x)  # model.forward()
        loss = loss_fn(y_pred, y)
        if it % 100 == 0:
            print(it, loss.item())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    print(model)
    return loss.item()


if __name__ == "__main__":
    main()
