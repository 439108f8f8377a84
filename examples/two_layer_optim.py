"""Seed tutorial 003, part 5: the nn two-layer net trained by an optimizer from torch.optim.

Instead of updating the parameters by hand, an optimizer does it:
optimizer.zero_grad(), loss.backward(), optimizer.step(). The tutorial's run uses
SGD with the same learning rate as the hand-written update (1e-6), so the losses
fall as in two_layer_nn.py; `--optimizer adam` uses Adam with lr 1e-4 instead
(the tutorial's other choice, which suits the default initialisation better, see
two_layer_module.py).

    python examples/two_layer_optim.py [--steps 500] [--optimizer sgd|adam]
"""
import argparse

import tracegrad as torch
import tracegrad.nn as nn


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=500)
    ap.add_argument("--optimizer", choices=["sgd", "adam"], default="sgd")
    ap.add_argument("--quick", action="store_true", help="a few steps only (for tests)")
    args = ap.parse_args(argv)
    steps = 60 if args.quick else args.steps

    torch.manual_seed(0)
    N, D_in, H, D_out = 64, 1000, 100, 10
    x = torch.randn(N, D_in)
    y = torch.randn(N, D_out)

    model = torch.nn.Sequential(
        torch.nn.Linear(D_in, H, bias=False),
        torch.nn.ReLU(),
        torch.nn.Linear(H, D_out, bias=False),
    )
    torch.nn.init.normal_(model[0].weight)
    torch.nn.init.normal_(model[2].weight)

    loss_fn = nn.MSELoss(reduction="sum")
    if args.optimizer == "adam":
        learning_rate = 1e-4
        optimizer = torch.optim.Adam(model.parameters(), lr=learning_rate)
    else:
        learning_rate = 1e-6
        optimizer = torch.optim.SGD(model.parameters(), lr=learning_rate)
    for it in range(steps):
        y_pred = model(x)
        loss = loss_fn(y_pred, y)
        if it % 50 == 0:
            print(it, loss.item())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()  # update every parameter
    return loss.item()


if __name__ == "__main__":
    main()
