"""DDP with 2 gloo processes on loopback: ranks stay in sync and a resumed DDP run equals an uninterrupted one."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import torch
import torch.multiprocessing as mp

from djepa_core.trainers import state as ckpt


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _worker(rank: int, world: int, port: int, root: str) -> None:
    os.environ.update({"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "RANK": str(rank),
                       "WORLD_SIZE": str(world), "LOCAL_RANK": str(rank)})
    from djepa_core.trainers.distributed import teardown
    from djepa_core.trainers.loop import Trainer
    from tests.trainers.helpers import tiny_config

    try:
        sections = {"loop": {"steps": 3, "batch_size": 8, "grad_accum": 2, "ema_decay": 0.9, "threads": 1}}
        full = Trainer(tiny_config(Path(root) / "full", **sections))
        full.train()
        Trainer(tiny_config(Path(root) / "split", **sections)).train(max_steps=2)
        resumed = Trainer(tiny_config(Path(root) / "split", **sections))
        resumed.train()
        torch.save({"full": full.model.state_dict(), "resumed": resumed.model.state_dict(),
                    "ema": full.ema.state_dict(), "micro": full.micro_batch},
                   Path(root) / f"rank{rank}.pt")
    finally:
        teardown()


def test_ddp_two_gloo_processes(tmp_path: Path) -> None:
    mp.spawn(_worker, args=(2, _free_port(), str(tmp_path)), nprocs=2, join=True)
    r0 = torch.load(tmp_path / "rank0.pt", weights_only=True)
    r1 = torch.load(tmp_path / "rank1.pt", weights_only=True)
    assert r0["micro"] == 2  # global batch 8 = 2 ranks x 2 micro-batches x 2
    for key in ("full", "resumed", "ema"):
        assert all(torch.equal(r0[key][k], r1[key][k]) for k in r0[key])  # gradients all-reduced
    assert all(torch.equal(r0["full"][k], r0["resumed"][k]) for k in r0["full"])
    state = ckpt.load_checkpoint(ckpt.latest_checkpoint(tmp_path / "full"))  # type: ignore[arg-type]
    assert state["world"] == 2 and len(state["rng"]) == 2
    assert not torch.equal(state["rng"][0]["loss_generator"], state["rng"][1]["loss_generator"])
    assert (tmp_path / "full" / "model.safetensors").is_file()
