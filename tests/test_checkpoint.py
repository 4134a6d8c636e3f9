"""Our safetensors checkpoint format and the import of reference `.pth` checkpoints."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from djepa_core.checkpoint import FORMAT, load_generator, read_config, save_generator
from djepa_core.compat.convert import convert_reference, import_reference
from djepa_core.compat.state_dict import read_container
from djepa_core.config import GeneratorConfig
from djepa_core.pipeline import ImageGenerator
from djepa_core.tokenizers.image_vae import VAETokenizer
from djepa_core.tokenizers.vae import AutoencoderKL, VAEConfig


class NotAllowed:
    """A class a weights-only unpickler must refuse."""

    def __init__(self) -> None:
        self.payload = [1, 2, 3]


def _rewrite_metadata(path: Path, out: Path, change: Any) -> None:
    with safe_open(str(path), framework="pt") as f:
        meta = dict(f.metadata())
    meta = change(meta)
    save_file(load_file(str(path)), str(out), metadata=meta)


# ---------------------------------------------------------------- our format


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> tuple[ImageGenerator, Path]:
    from djepa_core.presets import get_preset

    gen = ImageGenerator.from_config(get_preset("djepa-tiny"), seed=3)
    with torch.no_grad():  # non-zero head, so generate() depends on every weight
        gen.model.head.final_layer.linear.weight.normal_(std=0.05, generator=torch.Generator().manual_seed(0))
    path = save_generator(tmp_path_factory.mktemp("ckpt") / "sub" / "tiny.safetensors", gen)
    return gen, path


def test_round_trip(saved: tuple[ImageGenerator, Path], tiny_config: GeneratorConfig) -> None:
    gen, path = saved
    assert path.is_file() and not path.with_name(path.name + ".tmp").exists()
    assert read_config(path) == gen.config == tiny_config
    loaded = load_generator(path)
    a, b = gen.model.state_dict(), loaded.model.state_dict()
    assert list(a) == list(b)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not loaded.model.training
    settings = gen.settings(num_steps=3, head_steps=5)
    torch.testing.assert_close(loaded.generate([1, 7], seeds=[0, 1], settings=settings),
                               gen.generate([1, 7], seeds=[0, 1], settings=settings), rtol=0, atol=0)
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata()
        keys = list(f.keys())
    assert meta["format"] == FORMAT
    assert GeneratorConfig.from_dict(json.loads(meta["config"])) == gen.config
    assert all(k.startswith("model.") for k in keys)  # the patch tokenizer has no weights


def test_extra_metadata(tmp_path: Path, saved: tuple[ImageGenerator, Path]) -> None:
    gen, _ = saved
    path = save_generator(tmp_path / "x.safetensors", gen, {"source": "unit test"})
    with safe_open(str(path), framework="pt") as f:
        assert f.metadata()["source"] == "unit test"


def test_half_precision_file_loads_as_float32(tmp_path: Path, saved: tuple[ImageGenerator, Path]) -> None:
    gen, full = saved
    path = save_generator(tmp_path / "half.safetensors", gen, half=True)
    assert path.stat().st_size < 0.6 * full.stat().st_size
    with safe_open(str(path), framework="pt") as f:
        assert {f.get_tensor(k).dtype for k in f.keys()} <= {torch.float16, torch.int64}  # noqa: SIM118
    loaded = load_generator(path)
    a, b = gen.model.state_dict(), loaded.model.state_dict()
    assert all(b[k].dtype == a[k].dtype for k in a)  # float32 arithmetic, whatever the file stored
    assert all(torch.equal(b[k], a[k].half().to(a[k].dtype)) for k in a)


def test_foreign_safetensors_refused(tmp_path: Path) -> None:
    path = tmp_path / "foreign.safetensors"
    save_file({"weight": torch.zeros(3)}, str(path))
    with pytest.raises(ValueError, match="not a djepa checkpoint"):
        read_config(path)
    with pytest.raises(ValueError, match="not a djepa checkpoint"):
        load_generator(path)
    with pytest.raises(FileNotFoundError):
        load_generator(tmp_path / "missing.safetensors")


def test_config_mismatch_refused_naming_keys(tmp_path: Path, saved: tuple[ImageGenerator, Path]) -> None:
    _, path = saved

    def deeper(meta: dict[str, str]) -> dict[str, str]:
        cfg = json.loads(meta["config"])
        cfg["model"]["encoder_depth"] += 1
        return {**meta, "config": json.dumps(cfg)}

    bad = tmp_path / "deeper.safetensors"
    _rewrite_metadata(path, bad, deeper)
    depth = read_config(path).model.encoder_depth
    with pytest.raises(ValueError, match=rf"encoder_blocks\.{depth}\.norm1\.weight") as info:
        load_generator(bad)
    assert "missing" in str(info.value) and "(model)" in str(info.value)

    def wider_head(meta: dict[str, str]) -> dict[str, str]:
        cfg = json.loads(meta["config"])
        cfg["model"]["head"] = "flow"
        return {**meta, "config": json.dumps(cfg)}

    bad = tmp_path / "flow.safetensors"
    _rewrite_metadata(path, bad, wider_head)
    with pytest.raises(ValueError, match=r"diffloss\.net\.final_layer\.linear\.weight") as info:
        load_generator(bad)
    assert "shape" in str(info.value)

    def unknown_key(meta: dict[str, str]) -> dict[str, str]:
        cfg = json.loads(meta["config"])
        cfg["model"]["bogus_option"] = 1
        return {**meta, "config": json.dumps(cfg)}

    bad = tmp_path / "unknown.safetensors"
    _rewrite_metadata(path, bad, unknown_key)
    with pytest.raises(ValueError, match="bogus_option"):
        read_config(bad)


# ---------------------------------------------------------------- reference import


@pytest.fixture(scope="module")
def reference_files(fixtures_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    folder = tmp_path_factory.mktemp("reference")
    weights = load_file(str(fixtures_dir / "tiny" / "model_gauss.safetensors"))
    model_config = json.loads((fixtures_dir / "tiny" / "golden_gauss.json").read_text())["model_config"]
    online = {k: v + 1.0 for k, v in weights.items()}  # differs from the EMA weights we must pick
    ema = {f"_orig_mod.{k}": v for k, v in weights.items()}
    pth = folder / "checkpoint-last.pth"
    torch.save({"model": online, "model_ema": ema, "epoch": 3, "args": argparse.Namespace(**model_config)}, pth)
    torch.manual_seed(0)
    vae = AutoencoderKL(VAEConfig(ch=32))
    vae_pth = folder / "kl16.ckpt"
    torch.save({"model": vae.state_dict()}, vae_pth)
    return {"folder": folder, "weights": weights, "online": online, "pth": pth, "vae": vae, "vae_pth": vae_pth,
            "model_config": model_config}


def test_convert_round_trip(reference_files: dict[str, Any], tmp_path: Path) -> None:
    out = convert_reference(reference_files["pth"], reference_files["vae_pth"], tmp_path / "tiny.safetensors")
    gen = load_generator(out)
    weights = reference_files["weights"]
    sd = gen.model.state_dict()
    assert sorted(sd) == sorted(weights)
    assert all(torch.equal(sd[k], weights[k]) for k in weights)
    vae_sd = reference_files["vae"].state_dict()
    assert isinstance(gen.tokenizer, VAETokenizer)
    tok_sd = gen.tokenizer.vae.state_dict()
    assert all(torch.equal(tok_sd[k], vae_sd[k]) for k in vae_sd)
    cfg = read_config(out)
    assert cfg.model.grid == (4, 4) and cfg.model.encoder_dim == 64 and cfg.model.num_classes == 10
    assert cfg.tokenizer.kind == "vae" and cfg.tokenizer.image_size == 64 and cfg.tokenizer.scale == 0.2325
    assert cfg.name == "checkpoint-last"
    with safe_open(str(out), framework="pt") as f:
        assert f.metadata()["weights"] == "model_ema"
    images = gen.generate([3], seed=0, settings=gen.settings(num_steps=4, head_steps=10))
    assert images.shape == (1, 3, 64, 64) and torch.isfinite(images).all()


def test_import_online_weights(reference_files: dict[str, Any]) -> None:
    gen = import_reference(reference_files["pth"], reference_files["vae_pth"], which="model")
    online = reference_files["online"]
    assert all(torch.equal(v, online[k]) for k, v in gen.model.state_dict().items())


def test_renamed_key_refused(reference_files: dict[str, Any]) -> None:
    weights = dict(reference_files["weights"])
    weights["class_embedding.weight"] = weights.pop("class_emb.weight")
    path = reference_files["folder"] / "renamed.pth"
    torch.save({"model_ema": weights, "args": argparse.Namespace(**reference_files["model_config"])}, path)
    with pytest.raises(ValueError, match=r"class_emb\.weight") as info:
        import_reference(path, reference_files["vae_pth"])
    assert "class_embedding.weight" in str(info.value)


def test_non_allow_listed_pickle_refused(reference_files: dict[str, Any]) -> None:
    path = reference_files["folder"] / "evil.pth"
    torch.save({"model": reference_files["weights"], "extra": NotAllowed()}, path)
    with pytest.raises(ValueError, match="weights_only"):
        read_container(path)
    with pytest.raises(ValueError, match="weights_only"):
        import_reference(path, reference_files["vae_pth"])
    # the allow-listed namespace alone loads
    assert isinstance(read_container(reference_files["pth"])["args"], argparse.Namespace)


def test_pth_given_as_checkpoint_is_refused_clearly(tmp_path: Path) -> None:
    path = tmp_path / "x.pth"
    torch.save({"a": torch.zeros(1)}, path)
    with pytest.raises(ValueError, match="djepa convert"):
        read_config(path)
