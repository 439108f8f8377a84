"""The tutorial after FizzBuzz: a small convolutional network on 8x8 images of handwritten digits.

scikit-learn's `load_digits` (1797 images, 10 classes) is split 80/20 into a
training and a test set. Two conv -> ReLU -> max-pool stages turn each 1x8x8
image into 64x2x2 features, and two linear layers classify them. Adam trains it
in mini-batches from a DataLoader; each epoch shows a progress bar, and the
training-loss curve is saved as a PNG at the end. The learning rate anneals
along a cosine (lr_scheduler.CosineAnnealingLR). It reaches about 98% on the
test set in 20 epochs.

    pip install scikit-learn matplotlib      # the `examples` extra
    python examples/digits_cnn.py [--epochs 20] [--plot digits_loss.png]

Without scikit-learn, `--synthetic` (chosen automatically) draws digit-like
images from a 5x7 pixel font with random shifts and noise instead.
"""
import argparse
import sys
import time

import numpy as np

import tracegrad as torch
import tracegrad.nn as nn
from tracegrad.utils.data import DataLoader, TensorDataset


class DigitsCNN(nn.Module):
    def __init__(self, num_classes=10):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 32, kernel_size=3, padding=1),  # 32 x 8 x 8
            nn.ReLU(),
            nn.MaxPool2d(2),  # 32 x 4 x 4
            nn.Conv2d(32, 64, kernel_size=3, padding=1),  # 64 x 4 x 4
            nn.ReLU(),
            nn.MaxPool2d(2),  # 64 x 2 x 2
        )
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(64 * 2 * 2, 128),
            nn.ReLU(),
            nn.Dropout(0.2),
            nn.Linear(128, num_classes),
        )

    def forward(self, x):
        return self.classifier(self.features(x))


# ---- data ----------------------------------------------------------------------------------------------
_FONT = [  # 5x7 bitmaps of 0-9, one string of 5 bits per row
    ["01110", "10001", "10011", "10101", "11001", "10001", "01110"],
    ["00100", "01100", "00100", "00100", "00100", "00100", "01110"],
    ["01110", "10001", "00001", "00010", "00100", "01000", "11111"],
    ["11110", "00001", "00001", "01110", "00001", "00001", "11110"],
    ["00010", "00110", "01010", "10010", "11111", "00010", "00010"],
    ["11111", "10000", "11110", "00001", "00001", "10001", "01110"],
    ["00110", "01000", "10000", "11110", "10001", "10001", "01110"],
    ["11111", "00001", "00010", "00100", "01000", "01000", "01000"],
    ["01110", "10001", "10001", "01110", "10001", "10001", "01110"],
    ["01110", "10001", "10001", "01111", "00001", "00010", "01100"],
]


def synthetic_digits(n=1797, seed=0):
    """Digit-like 8x8 images (values 0..16, like load_digits): a font glyph, shifted, blurred, noisy."""
    rng = np.random.default_rng(seed)
    glyphs = np.array([[[int(c) for c in row] for row in g] for g in _FONT], dtype=np.float64)
    y = rng.integers(0, 10, n)
    X = np.zeros((n, 8, 8))
    for k in range(n):
        dy, dx = rng.integers(0, 2), rng.integers(0, 4)
        X[k, dy:dy + 7, dx:dx + 5] = glyphs[y[k]] * rng.uniform(0.6, 1.0)
    X = X + 0.25 * (np.roll(X, 1, 1) + np.roll(X, 1, 2))  # a little ink spread
    X += rng.normal(0, 0.15, X.shape)
    X = np.clip(X / X.max() * 16, 0, 16)
    return X.reshape(n, 64), y


def load_data(synthetic=False, seed=0):
    """(x_train, y_train, x_test, y_test) as tensors; images scaled to [0, 1], shape (N, 1, 8, 8)."""
    if not synthetic:
        from sklearn.datasets import load_digits
        from sklearn.model_selection import train_test_split

        digits = load_digits()
        X, y = digits.data, digits.target
    else:
        X, y = synthetic_digits(seed=seed)
    rng = np.random.default_rng(seed)
    if not synthetic:
        X_tr, X_te, y_tr, y_te = train_test_split(X, y, test_size=0.2, random_state=seed, stratify=y)
    else:
        order = rng.permutation(len(X))
        cut = int(0.8 * len(X))
        X_tr, X_te, y_tr, y_te = X[order[:cut]], X[order[cut:]], y[order[:cut]], y[order[cut:]]

    def images(a):
        return torch.tensor(a.reshape(-1, 1, 8, 8) / 16.0, dtype=torch.float32)

    return images(X_tr), torch.tensor(y_tr), images(X_te), torch.tensor(y_te)


# ---- a tiny progress bar ---------------------------------------------------------------------------------
class ProgressBar:
    """`[#########.........]  9/45  loss 0.4123` redrawn in place with a carriage return."""

    def __init__(self, total, prefix="", width=30, stream=sys.stdout):
        self.total, self.prefix, self.width, self.stream = total, prefix, width, stream
        self.count = 0

    def update(self, n=1, **info):
        self.count += n
        filled = int(self.width * self.count / max(self.total, 1))
        bar = "#" * filled + "." * (self.width - filled)
        extra = "  ".join(f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}" for k, v in info.items())
        self.stream.write(f"\r{self.prefix}[{bar}] {self.count:>{len(str(self.total))}}/{self.total}  {extra}")
        self.stream.flush()

    def close(self, message=""):
        self.stream.write(("  " + message if message else "") + "\n")
        self.stream.flush()


# ---- training ---------------------------------------------------------------------------------------------
def accuracy(model, x, y, batch_size=512):
    model.eval()
    correct = 0
    with torch.no_grad():
        for start in range(0, len(x), batch_size):
            logits = model(x[start:start + batch_size])
            correct += int((logits.argmax(1) == y[start:start + batch_size]).sum())
    model.train()
    return correct / len(x)


def train_epoch(model, loader, loss_fn, optimizer, bar=None):
    """One pass over the loader; returns the per-batch losses."""
    losses = []
    for xb, yb in loader:
        loss = loss_fn(model(xb), yb)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
        if bar is not None:
            bar.update(loss=losses[-1])
    return losses


def save_curve(losses, per_epoch, path):
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed (pip install matplotlib): no loss curve saved")
        return False
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(np.arange(1, len(losses) + 1) / per_epoch, losses, lw=0.8, label="batch loss")
    k = per_epoch
    if len(losses) >= k:
        smooth = np.convolve(losses, np.ones(k) / k, mode="valid")
        ax.plot(np.arange(k, len(losses) + 1) / per_epoch, smooth, lw=2, label="mean over an epoch")
    ax.set_xlabel("epoch")
    ax.set_ylabel("cross-entropy loss")
    ax.set_yscale("log")
    ax.set_title("digits CNN: training loss")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    print(f"loss curve saved to {path}")
    return True


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--plot", default="digits_loss.png", help="where to save the loss curve ('' for none)")
    ap.add_argument("--synthetic", action="store_true", help="generated digits instead of scikit-learn's")
    ap.add_argument("--quick", action="store_true", help="2 epochs (for tests)")
    args = ap.parse_args(argv)
    epochs = 2 if args.quick else args.epochs

    synthetic = args.synthetic
    if not synthetic:
        try:
            import sklearn  # noqa: F401
        except ImportError:
            print("scikit-learn is not installed (pip install scikit-learn): using synthetic digits instead")
            synthetic = True
    torch.manual_seed(args.seed)
    x_train, y_train, x_test, y_test = load_data(synthetic, args.seed)
    print(f"{'synthetic' if synthetic else 'load_digits'}: {len(x_train)} training and {len(x_test)} test "
          f"images of shape {tuple(x_train.shape[1:])}")

    model = DigitsCNN()
    print(model)
    loader = DataLoader(TensorDataset(x_train, y_train), batch_size=args.batch_size, shuffle=True,
                        generator=torch.Generator().manual_seed(args.seed))
    loss_fn = nn.CrossEntropyLoss()
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    # the learning rate follows half a cosine down to zero over the run
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs)

    all_losses = []
    start = time.perf_counter()
    for epoch in range(1, epochs + 1):
        t0 = time.perf_counter()
        bar = ProgressBar(len(loader), prefix=f"epoch {epoch:>2}/{epochs} ")
        losses = train_epoch(model, loader, loss_fn, optimizer, bar)
        scheduler.step()
        all_losses += losses
        test_acc = accuracy(model, x_test, y_test)
        bar.close(f"mean loss {np.mean(losses):.4f}  test accuracy {test_acc:.2%}  ({time.perf_counter() - t0:.1f}s)")

    train_acc = accuracy(model, x_train, y_train)
    test_acc = accuracy(model, x_test, y_test)
    print(f"trained {epochs} epochs in {time.perf_counter() - start:.1f}s: train accuracy {train_acc:.2%}, "
          f"test accuracy {test_acc:.2%}")
    if args.plot:
        save_curve(all_losses, len(loader), args.plot)
    return test_acc


if __name__ == "__main__":
    main()
