"""Our D-JEPA state dicts equal the reference's key/shape manifests (B/L/H, flow head)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch

from djepa_core.compat.reference import config_from_reference
from djepa_core.models.djepa import DJEPA
from djepa_core.presets import get_preset

CASES = [
    ("djepa_b_gauss", "djepa-b"),
    ("djepa_l_gauss", "djepa-l"),
    ("djepa_h_gauss", "djepa-h"),
    ("djepa_b_flow", "djepa-b-flow"),
]
# the totals written in the reference code (README: 212.0M / 687.4M / 1,426.7M)
PUBLISHED = {"djepa_b_gauss": 212_017_440, "djepa_l_gauss": 687_421_984, "djepa_h_gauss": 1_426_730_784}


def _manifest(fixtures_dir: Path, name: str) -> dict[str, Any]:
    return json.loads((fixtures_dir / "manifests" / f"{name}.json").read_text())


@pytest.mark.parametrize(("manifest_name", "preset"), CASES)
def test_state_dict_equals_manifest(fixtures_dir: Path, manifest_name: str, preset: str) -> None:
    manifest = _manifest(fixtures_dir, manifest_name)
    with torch.device("meta"):
        model = DJEPA(get_preset(preset).model)
    ours = [(k, list(v.shape)) for k, v in model.state_dict().items()]
    expected = [(t["key"], list(t["shape"])) for t in manifest["tensors"]]
    assert len(ours) == manifest["num_tensors"]
    assert ours == expected
    total = sum(v.numel() for v in model.state_dict().values())
    assert total == manifest["total_parameters"]
    assert sum(p.numel() for p in model.parameters()) == manifest["total_parameters"]


@pytest.mark.parametrize(("manifest_name", "preset"), CASES[:3])
def test_published_counts_omit_the_position_tables(fixtures_dir: Path, manifest_name: str, preset: str) -> None:
    cfg = get_preset(preset).model
    with torch.device("meta"):
        model = DJEPA(cfg)
    total = sum(p.numel() for p in model.parameters())
    published = PUBLISHED[manifest_name]
    assert total - published == 2 * cfg.seq_len * cfg.encoder_dim == 2 * 256 * cfg.encoder_dim
    pos = model.encoder_pos_embed_learned.numel() + model.decoder_pos_embed_learned.numel()
    assert total - pos == published
    manifest = _manifest(fixtures_dir, manifest_name)
    assert manifest["official_code_comment_counts"]["total"] == published
    # rounded as model.md writes them
    assert f"{published / 1e6:.1f}" in {"212.0", "687.4", "1426.7"}


@pytest.mark.parametrize(("manifest_name", "preset"), CASES)
def test_config_from_manifest_equals_preset(fixtures_dir: Path, manifest_name: str, preset: str) -> None:
    manifest = _manifest(fixtures_dir, manifest_name)
    args = manifest["config"] | manifest.get("arch", {})
    assert config_from_reference(args) == get_preset(preset).model


def test_config_from_constructor_name(fixtures_dir: Path) -> None:
    manifest = _manifest(fixtures_dir, "djepa_l_gauss")
    args = {**manifest["config"], "model": manifest["constructor"]}
    assert config_from_reference(args) == get_preset("djepa-l").model
    with pytest.raises(ValueError, match="encoder_embed_dim"):
        config_from_reference(manifest["config"])


def test_flow_manifest_differs_in_final_layer_only(fixtures_dir: Path) -> None:
    gauss = {t["key"]: t["shape"] for t in _manifest(fixtures_dir, "djepa_b_gauss")["tensors"]}
    flow = {t["key"]: t["shape"] for t in _manifest(fixtures_dir, "djepa_b_flow")["tensors"]}
    assert gauss.keys() == flow.keys()
    differ = sorted(k for k in gauss if gauss[k] != flow[k])
    assert differ == ["diffloss.net.final_layer.linear.bias", "diffloss.net.final_layer.linear.weight"]
    cfg = config_from_reference(_manifest(fixtures_dir, "djepa_b_flow")["config"]
                                | _manifest(fixtures_dir, "djepa_b_flow")["arch"])
    assert cfg.head == "flow" and cfg.head_out_channels == 16
