"""Multi-GPU training template: PyTorch DistributedDataParallel, launched by torchrun.

    torchrun --nproc_per_node=4 train_ddp.py --epochs 5        # one node
    aitestbed job submit --torchrun --nodes 2 --gpus 4 -- train_ddp.py --epochs 5

torchrun sets RANK, LOCAL_RANK and WORLD_SIZE for every process. Replace ``make_dataset``
and ``make_model`` with your own; the rest (process group, sampler, checkpoints written by
rank 0 only, clean shutdown) stays as it is.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, DistributedSampler, TensorDataset


def make_dataset(samples: int = 65536, features: int = 256) -> TensorDataset:
    generator = torch.Generator().manual_seed(0)
    inputs = torch.randn(samples, features, generator=generator)
    weights = torch.randn(features, 1, generator=generator)
    targets = (inputs @ weights + 0.1 * torch.randn(samples, 1, generator=generator)).squeeze(1)
    return TensorDataset(inputs, targets)


def make_model(features: int = 256) -> nn.Module:
    return nn.Sequential(
        nn.Linear(features, 1024), nn.ReLU(), nn.Linear(1024, 1024), nn.ReLU(), nn.Linear(1024, 1)
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=512, help="per process")
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--out", default="checkpoints")
    args = parser.parse_args()

    local_rank = int(os.environ.get("LOCAL_RANK", 0))
    use_cuda = torch.cuda.is_available()
    if use_cuda:
        torch.cuda.set_device(local_rank)
    dist.init_process_group(backend="nccl" if use_cuda else "gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    device = torch.device("cuda", local_rank) if use_cuda else torch.device("cpu")

    dataset = make_dataset()
    sampler = DistributedSampler(dataset, num_replicas=world, rank=rank, shuffle=True)
    loader = DataLoader(
        dataset, batch_size=args.batch_size, sampler=sampler, pin_memory=use_cuda, num_workers=2
    )
    model = DistributedDataParallel(
        make_model().to(device), device_ids=[local_rank] if use_cuda else None
    )
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr)
    loss_fn = nn.MSELoss()
    if rank == 0:
        print(f"world size {world}, device {device}, {len(dataset)} samples", flush=True)

    for epoch in range(args.epochs):
        sampler.set_epoch(epoch)  # a different shuffle each epoch, same on every rank
        started, total, batches = time.time(), torch.zeros(1, device=device), 0
        for inputs, targets in loader:
            inputs = inputs.to(device, non_blocking=True)
            targets = targets.to(device, non_blocking=True)
            optimizer.zero_grad(set_to_none=True)
            loss = loss_fn(model(inputs).squeeze(1), targets)
            loss.backward()  # DDP averages gradients across all processes here
            optimizer.step()
            total += loss.detach()
            batches += 1
        dist.all_reduce(total)  # mean loss over every rank's batches
        if rank == 0:
            mean = total.item() / (batches * world)
            print(f"epoch {epoch + 1}: loss {mean:.4f} ({time.time() - started:.1f}s)", flush=True)
            Path(args.out).mkdir(parents=True, exist_ok=True)
            torch.save(model.module.state_dict(), Path(args.out) / f"epoch{epoch + 1}.pt")
    dist.barrier(device_ids=[local_rank]) if use_cuda else dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
