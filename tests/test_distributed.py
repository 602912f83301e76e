"""Distributed training of a compiled spec: DistributedDataParallel over 2 processes (gloo,
CPU) keeps the ranks' parameters identical and equal to one process training on the
whole batch."""

from __future__ import annotations

import os

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from archspec import compile_spec

#: a small ViT (layer norms only: no batch statistics that would differ between a rank's
#: half batch and the whole batch), float64 so that the comparison is tight
SPEC, SIZES = "vit_b_16", dict(image_size=16, patch_size=4, layers=2, heads=2, hidden=32, mlp=64, num_classes=5)
STEPS, BATCH = 3, 8


def data() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    return torch.randn(STEPS, BATCH, 3, 16, 16, generator=g, dtype=torch.float64), torch.randint(0, 5, (STEPS, BATCH), generator=g)


def train(model: torch.nn.Module, xs: torch.Tensor, ys: torch.Tensor) -> list[float]:
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5, momentum=0.9)
    losses = []
    for x, y in zip(xs, ys):
        loss = torch.nn.functional.cross_entropy(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses


def fresh_model() -> torch.nn.Module:
    torch.manual_seed(0)
    model = compile_spec(SPEC, **SIZES).double().train()
    with torch.no_grad():
        model.heads.head.weight.normal_(std=0.1)  # ViT starts its head at 0: nothing upstream would learn
    return model


def worker(rank: int, world: int, folder: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{folder}/store", rank=rank, world_size=world)
    try:
        model = torch.nn.parallel.DistributedDataParallel(fresh_model())
        xs, ys = data()
        half = BATCH // world
        losses = train(model, xs[:, rank * half:(rank + 1) * half], ys[:, rank * half:(rank + 1) * half])
        torch.save({"state": model.module.state_dict(), "losses": losses}, os.path.join(folder, f"rank{rank}.pt"))
    finally:
        dist.destroy_process_group()


@pytest.mark.skipif(not dist.is_available(), reason="this torch build has no torch.distributed")
def test_ddp_on_two_processes_equals_one_process_on_the_whole_batch(tmp_path):
    mp.spawn(worker, args=(2, str(tmp_path)), nprocs=2, join=True)
    ranks = [torch.load(tmp_path / f"rank{r}.pt") for r in range(2)]
    assert all(torch.equal(v, ranks[1]["state"][k]) for k, v in ranks[0]["state"].items())  # identical across ranks
    single = fresh_model()
    start = {k: v.clone() for k, v in single.state_dict().items()}
    xs, ys = data()
    losses = train(single, xs, ys)
    state = single.state_dict()
    assert all(not torch.equal(v, start[k]) for k, v in ranks[0]["state"].items())  # every tensor trained
    # each rank's loss is its half's mean: their average is the whole batch's
    assert all(abs((a + b) / 2 - c) < 1e-12 for a, b, c in zip(ranks[0]["losses"], ranks[1]["losses"], losses))
    worst = max(float((v - state[k]).abs().max() / state[k].abs().max().clamp_min(1e-12)) for k, v in ranks[0]["state"].items())
    assert worst < 1e-10, worst  # DDP averages the ranks' gradients: the whole batch's mean
