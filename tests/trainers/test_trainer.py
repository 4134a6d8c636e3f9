from __future__ import annotations

import csv
from pathlib import Path

import pytest
import torch

from djepa_core.checkpoint import load_generator
from djepa_core.models.djepa import DJEPA, LossOutput
from djepa_core.trainers import state as ckpt
from djepa_core.trainers.export import export_checkpoint
from djepa_core.trainers.loop import NonFiniteLossError, Trainer
from djepa_core.trainers.optim import param_groups

from .helpers import tiny_config


def _params_equal(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_resume_equals_uninterrupted_run(tmp_path: Path) -> None:
    # grad accumulation and dropout on: the resumed run must restore data position and every RNG
    sections = {"loop": {"steps": 4, "batch_size": 8, "grad_accum": 2, "ema_decay": 0.9, "threads": 1}}
    full = Trainer(tiny_config(tmp_path / "full", **sections))
    full.train()
    first = Trainer(tiny_config(tmp_path / "split", **sections))
    first.train(max_steps=3)  # interrupted after step 3 (a checkpoint is written there)
    del first
    resumed = Trainer(tiny_config(tmp_path / "split", **sections))
    assert resumed.step == 3 and resumed.consumed == 6
    resumed.train()
    assert _params_equal(full.model.state_dict(), resumed.model.state_dict())
    assert _params_equal(full.ema.state_dict(), resumed.ema.state_dict())
    rows = {name: _rows(tmp_path / name / "metrics.csv") for name in ("full", "split")}
    assert [r["step"] for r in rows["split"]] == ["1", "2", "3", "4"]
    assert [r["loss"] for r in rows["full"]] == [r["loss"] for r in rows["split"]]
    # outputs: resolved config, samples, the EMA generator (rebuilt from its file alone)
    assert (tmp_path / "split" / "config.yaml").is_file()
    assert list((tmp_path / "split" / "samples").glob("*.png"))
    gen = load_generator(tmp_path / "split" / "model.safetensors")
    assert _params_equal(gen.model.state_dict(), resumed.ema.state_dict())
    latest = ckpt.latest_checkpoint(tmp_path / "split")
    assert latest is not None and latest.name == "ckpt-00000004.pt"
    exported = export_checkpoint(latest, tmp_path / "export.safetensors", {"cfg_scale": 3.5}, "tuned")
    reloaded = load_generator(exported)
    assert _params_equal(reloaded.model.state_dict(), resumed.ema.state_dict())
    assert reloaded.config.sampling.cfg_scale == 3.5 and reloaded.config.name == "tuned"
    assert reloaded.config.model == resumed.gen_config.model


def test_checkpoints_keep_last_k_and_store_config(tmp_path: Path) -> None:
    cfg = tiny_config(tmp_path, checkpoint={"every": 1, "keep": 2})
    Trainer(cfg).train()
    names = [p.name for p in ckpt.list_checkpoints(tmp_path)]
    assert names == ["ckpt-00000003.pt", "ckpt-00000004.pt"]
    state = ckpt.load_checkpoint(tmp_path / "checkpoints" / names[-1])
    assert state["config"] == cfg.to_dict() and state["step"] == 4
    assert state["generator_config"] == cfg.generator_config().to_dict()


def test_atomic_checkpoint_write(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "checkpoints" / "ckpt-00000001.pt"
    ckpt.atomic_torch_save({"format": "djepa-train/1", "x": torch.ones(3)}, path)
    real_save = torch.save

    def crash(obj: object, f: object) -> None:  # writes part of the file, then dies
        real_save({"format": "djepa-train/1", "x": torch.zeros(1000)}, f)  # type: ignore[arg-type]
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", crash)
    with pytest.raises(OSError, match="disk full"):
        ckpt.atomic_torch_save({"x": torch.zeros(3)}, path)
    monkeypatch.undo()
    assert torch.equal(ckpt.load_checkpoint(path)["x"], torch.ones(3))  # the old file, whole
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary left behind
    assert ckpt.list_checkpoints(tmp_path) == [path]


def test_non_finite_loss_fails_fast(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def bad_loss(self: DJEPA, *args: object, **kwargs: object) -> LossOutput:
        nan = torch.tensor(float("nan"), requires_grad=True)
        return LossOutput(nan, nan, nan, 1.0)

    trainer = Trainer(tiny_config(tmp_path))
    monkeypatch.setattr(DJEPA, "loss", bad_loss)
    with pytest.raises(NonFiniteLossError, match="step 0"):
        trainer.train()
    assert ckpt.list_checkpoints(tmp_path) == []


def test_resume_refuses_other_model(tmp_path: Path) -> None:
    Trainer(tiny_config(tmp_path)).train(max_steps=2)
    with pytest.raises(ValueError, match="model config"):
        Trainer(tiny_config(tmp_path, "generator.model.jepa_weight=0"))


def test_no_decay_groups() -> None:
    from djepa_core.presets import get_preset

    model = DJEPA(get_preset("djepa-tiny").model)
    no_decay, decay = param_groups(model, 0.02)
    names = {id(p): n for n, p in model.named_parameters()}
    nd = {names[id(p)] for p in no_decay["params"]}  # type: ignore[attr-defined]
    d = {names[id(p)] for p in decay["params"]}  # type: ignore[attr-defined]
    assert {"buffer", "class_emb.weight", "encoder_pos_embed_learned", "z_proj.bias"} <= nd
    assert "z_proj.weight" in d and "encoder_blocks.0.attn.qkv.weight" in d
    assert not any(n.startswith("diffloss.") for n in d)


def test_ema_warmup(tmp_path: Path) -> None:
    trainer = Trainer(tiny_config(tmp_path, "loop.ema_warmup=true", "loop.ema_decay=0.99"))
    init = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    trainer.train(max_steps=1)
    online, ema = trainer.model.state_dict(), trainer.ema.state_dict()
    k = "z_proj.weight"  # step 0: decay min(0.99, 1/10) = 0.1
    torch.testing.assert_close(ema[k], 0.1 * init[k] + 0.9 * online[k])
