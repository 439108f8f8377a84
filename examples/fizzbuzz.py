"""Seed tutorial 003, part 7: FizzBuzz learned by a small neural network.

FizzBuzz: count from 1; say "fizz" for multiples of 3, "buzz" for multiples of 5,
"fizzbuzz" for multiples of 15, and the number otherwise. The net sees each
number as 10 binary digits and classifies it into 4 classes (number, fizz, buzz,
fizzbuzz). It trains on 101..1023 and is tested on 1..100, which it has never
seen; the tutorial's net gets 95 of the 100 right after 10000 epochs of SGD.

    python examples/fizzbuzz.py [--epochs 10000] [--seed 0]
"""
import argparse

import numpy as np

import tracegrad as torch


def fizz_buzz_encode(i):
    if i % 15 == 0:
        return 3
    elif i % 5 == 0:
        return 2
    elif i % 3 == 0:
        return 1
    else:
        return 0


def fizz_buzz_decode(i, prediction):
    return [str(i), "fizz", "buzz", "fizzbuzz"][prediction]


def helper(i):
    print(fizz_buzz_decode(i, fizz_buzz_encode(i)))


NUM_DIGITS = 10


def binary_encode(i, num_digits):
    """The number as a vector of its binary digits, lowest first."""
    return np.array([i >> d & 1 for d in range(num_digits)])


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=10000, help="passes over the training set (tutorial: 10000)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--quick", action="store_true", help="a few epochs only (for tests)")
    args = ap.parse_args(argv)
    epochs = 30 if args.quick else args.epochs
    torch.manual_seed(args.seed)

    for i in range(1, 16):
        helper(i)

    # training data: 101 .. 1023
    trX = torch.Tensor([binary_encode(i, NUM_DIGITS) for i in range(101, 2 ** NUM_DIGITS)])
    trY = torch.LongTensor([fizz_buzz_encode(i) for i in range(101, 2 ** NUM_DIGITS)])

    NUM_HIDDEN = 100
    model = torch.nn.Sequential(
        torch.nn.Linear(NUM_DIGITS, NUM_HIDDEN),
        torch.nn.ReLU(),
        torch.nn.Linear(NUM_HIDDEN, 4),  # 4 logits; softmax turns them into class probabilities
    )
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model = model.to(device)

    # a classification problem: cross entropy loss, optimised by stochastic gradient descent
    loss_fn = torch.nn.CrossEntropyLoss()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)

    BATCH_SIZE = 128
    report = max(1, epochs // 10)
    for epoch in range(epochs):
        for start in range(0, len(trX), BATCH_SIZE):
            end = start + BATCH_SIZE
            batchX = trX[start:end].to(device)
            batchY = trY[start:end].to(device)

            y_pred = model(batchX)  # forward
            loss = loss_fn(y_pred, batchY)

            optimizer.zero_grad()
            loss.backward()  # backpropagation
            optimizer.step()  # gradient descent

        # the loss on the whole training set
        loss = loss_fn(model(trX.to(device)), trY.to(device)).cpu().item()
        if epoch % report == 0:
            print("Epoch:", epoch, "Loss:", loss)

    # play FizzBuzz on 1 .. 100
    testX = torch.Tensor([binary_encode(i, NUM_DIGITS) for i in range(1, 101)])
    with torch.no_grad():
        testY = model(testX.to(device))
    predictions = zip(range(1, 101), list(testY.max(1)[1].data.tolist()))
    print([fizz_buzz_decode(i, x) for (i, x) in predictions])

    correct = testY.cpu().max(1)[1].numpy() == np.array([fizz_buzz_encode(i) for i in range(1, 101)])
    print(np.sum(correct))
    print(repr(correct))
    return int(np.sum(correct))


if __name__ == "__main__":
    main()
