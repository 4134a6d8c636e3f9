"""The engine on its own: no Ray, no HTTP."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from PIL import Image

from djepa_core.checkpoint import save_generator
from djepa_core.pipeline import ImageGenerator
from djepa_core.presets import get_preset
from service.config import EngineConfig, VideoConfig
from service.engine import TorchImageEngine, load_bundle
from service.types import ImageItem


@pytest.fixture(scope="module")
def engine() -> TorchImageEngine:
    return TorchImageEngine.load(EngineConfig(preset="djepa-tiny"))


def item(class_id: int = 3, seed: int = 0, steps: int = 4, cfg: float = 2.0, temp: float = 1.0) -> ImageItem:
    return ImageItem(class_id, seed, steps, cfg, temp)


def test_info_describes_the_model(engine: TorchImageEngine) -> None:
    info = engine.info
    assert info.id == "djepa-tiny" and info.modality == "image"
    assert info.classes == tuple(str(i) for i in range(10))
    assert (info.width, info.height, info.channels) == (16, 16, 1)
    assert info.defaults["num_steps"] == 4 and info.defaults["cfg_scale"] == 2.0


def test_outputs_are_pngs_in_order(engine: TorchImageEngine, one_thread: None) -> None:
    items = [item(c, 10 + c) for c in (1, 5, 9)]
    results = engine.generate(items)
    assert [(o.class_id, o.seed) for o, _ in results] == [(1, 11), (5, 15), (9, 19)]
    for out, _ in results:
        image = Image.open(io.BytesIO(out.png))
        assert image.format == "PNG" and image.size == (16, 16) and (out.width, out.height) == (16, 16)
    assert engine.generate([]) == []


def test_settings_are_never_mixed_in_a_pass(engine: TorchImageEngine, one_thread: None) -> None:
    items = [item(seed=0), item(seed=1, steps=2), item(seed=2), item(seed=3, cfg=1.0), item(seed=4, steps=2)]
    stats = [s for _, s in engine.generate(items)]
    assert [s.size for s in stats] == [2, 2, 2, 1, 2]
    assert stats[0].batch_id == stats[2].batch_id != stats[1].batch_id == stats[4].batch_id != stats[3].batch_id
    assert sum(s.first for s in stats) == 3  # one recorder per pass


def test_an_image_depends_only_on_its_seed(engine: TorchImageEngine, one_thread: None) -> None:
    alone = engine.generate([item(3, 42)])[0][0].png
    in_batch = engine.generate([item(1, 7), item(3, 42), item(8, 9)])[1][0].png
    assert alone == in_batch
    assert engine.generate([item(3, 43)])[0][0].png != alone


def test_service_defaults_override_the_models(one_thread: None) -> None:
    e = TorchImageEngine.load(EngineConfig(preset="djepa-tiny", num_steps=2, cfg_scale=1.0, name="digits"))
    assert e.info.id == "digits" and e.info.defaults["num_steps"] == 2 and e.info.defaults["cfg_scale"] == 1.0


def test_bundle_sources(tmp_path: Path) -> None:
    path = save_generator(tmp_path / "m.safetensors", ImageGenerator.from_config(get_preset("djepa-tiny"), seed=3))
    gen, source = load_bundle(EngineConfig(checkpoint=str(path)))
    assert gen.config.name == "djepa-tiny" and "checkpoint" in source
    gen, source = load_bundle(EngineConfig())  # embedded default, else untrained djepa-s
    assert "embedded default" in source or gen.config.name == "djepa-s"
    with pytest.raises(FileNotFoundError):
        load_bundle(EngineConfig(checkpoint=str(tmp_path / "missing.safetensors")))
    with pytest.raises(ValueError, match="vae"):
        EngineConfig(reference="ref.pth")


def test_engine_config_is_strict() -> None:
    with pytest.raises(ValueError, match="chekpoint"):
        EngineConfig.from_dict({"chekpoint": "x"})


def test_bf16_engine_serves_both_batching_paths(one_thread: None) -> None:
    """precision: bf16 (djepa_core/fastpath.py) on the static path (generate) and the continuous one (advance)."""
    e = TorchImageEngine.load(EngineConfig(preset="djepa-tiny", precision="bf16"))
    assert e.generator.fast.precision == "bf16"
    static = e.generate([item(3, 42)])[0][0]
    assert Image.open(io.BytesIO(static.png)).size == (16, 16)
    state = e.start(item(3, 42))
    while not e.is_done(state):
        (state,) = e.advance([state])
    (stepped,) = e.outputs([item(3, 42)], [state])
    assert Image.open(io.BytesIO(stepped.png)).size == (16, 16)


def test_fast_path_options_are_checked() -> None:
    with pytest.raises(ValueError, match="engine: precision"):
        EngineConfig(precision="fp8")
    with pytest.raises(ValueError, match="engine: compile"):
        EngineConfig.from_dict({"compile": "everything"})
    with pytest.raises(ValueError, match="image models only"):
        VideoConfig.from_dict({"engine": {"precision": "bf16"}})
