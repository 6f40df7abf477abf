"""Train a small convolutional network on the catalog's ``digits`` dataset (a job template).

The job names the dataset, so the portal checks that you may use it (entitled through the
job's project, terms accepted) and the job finds it read-only at
``$AITESTBED_DATASETS_DIR/digits``, the same path as in a session:

    aitestbed job submit --dataset digits --gpus 1 --time 30 --name digits-cnn -- \\
        python train_digits.py --epochs 30 --output ~/project/digits-cnn.pt

Runs on the GPU when there is one, else on the CPU (a minute or two). Reads
``digits.csv`` (64 pixel columns ``pixel_<row>_<col>`` with grey levels 0-16, and
``target``); needs only PyTorch. Prints the loss and the held-out accuracy per epoch and
exits 1 when the final accuracy is below ``--min-accuracy``.
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
import time
from pathlib import Path

import torch
from torch import nn


def dataset_folder(slug: str) -> Path:
    folder = Path(os.environ.get("AITESTBED_DATASETS_DIR", "/datasets")) / slug
    if not folder.is_dir():
        sys.exit(
            f"{folder} is missing: submit the job with --dataset {slug} (and accept the "
            f"dataset's terms first: aitestbed dataset accept {slug})."
        )
    return folder


def load_digits(folder: Path) -> tuple[torch.Tensor, torch.Tensor]:
    with (folder / "digits.csv").open(newline="") as handle:
        reader = csv.DictReader(handle)
        pixels = [name for name in reader.fieldnames or [] if name.startswith("pixel_")]
        rows = list(reader)
    images = torch.tensor([[float(row[p]) for p in pixels] for row in rows]) / 16.0
    labels = torch.tensor([int(row["target"]) for row in rows])
    return images.view(-1, 1, 8, 8), labels


def model() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, 32, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(32, 64, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(64 * 4 * 4, 128),
        nn.ReLU(),
        nn.Linear(128, 10),
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", type=Path, help="where to save the trained weights")
    parser.add_argument("--min-accuracy", type=float, default=0.9)
    args = parser.parse_args()

    torch.manual_seed(args.seed)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    images, labels = load_digits(dataset_folder("digits"))
    order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(args.seed))
    split = int(len(order) * 0.8)
    train, test = order[:split], order[split:]
    x_train, y_train = images[train].to(device), labels[train].to(device)
    x_test, y_test = images[test].to(device), labels[test].to(device)
    print(f"digits: {len(train)} training and {len(test)} held-out images on {device}", flush=True)
    if device.type == "cuda":
        print(f"GPU: {torch.cuda.get_device_name(device)}", flush=True)

    network = model().to(device)
    optimizer = torch.optim.Adam(network.parameters(), lr=args.lr)
    loss_function = nn.CrossEntropyLoss()
    started = time.perf_counter()
    accuracy = 0.0
    for epoch in range(1, args.epochs + 1):
        network.train()
        shuffled = torch.randperm(len(x_train), device=device)
        total = 0.0
        for start in range(0, len(shuffled), args.batch_size):
            batch = shuffled[start : start + args.batch_size]
            optimizer.zero_grad()
            loss = loss_function(network(x_train[batch]), y_train[batch])
            loss.backward()
            optimizer.step()
            total += loss.item() * len(batch)
        network.eval()
        with torch.no_grad():
            accuracy = (network(x_test).argmax(1) == y_test).float().mean().item()
        print(f"epoch {epoch:3d}  loss {total / len(x_train):.4f}  accuracy {accuracy:.4f}")
    print(f"trained in {time.perf_counter() - started:.1f} s; held-out accuracy {accuracy:.4f}")
    if args.output:
        args.output.expanduser().parent.mkdir(parents=True, exist_ok=True)
        torch.save(network.state_dict(), args.output.expanduser())
        print(f"weights saved to {args.output}")
    return 0 if accuracy >= args.min_accuracy else 1


if __name__ == "__main__":
    sys.exit(main())
