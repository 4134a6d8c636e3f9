from __future__ import annotations

import json
from pathlib import Path

import pytest

from djepa_core.eval.runs import named_checkpoints, write_report


def test_named_checkpoints_default_names_and_errors(tmp_path: Path) -> None:
    default = tmp_path / "default_video.safetensors"
    assert named_checkpoints(None, None, default, "video") == [("default_video", default)]
    assert named_checkpoints(["runs/a/model.safetensors", "b.safetensors"], None, None, "video") == [
        ("a", "runs/a/model.safetensors"), ("b", "b.safetensors")]  # a run folder's model is named by its folder
    assert named_checkpoints(["x.safetensors"], ["mine"], None, "image") == [("mine", "x.safetensors")]
    with pytest.raises(ValueError, match="no embedded speech model"):
        named_checkpoints([], None, None, "speech")
    with pytest.raises(ValueError, match="one --name per --checkpoint"):
        named_checkpoints(["x.safetensors"], ["a", "b"], None, "image")


def test_write_report_creates_the_folder(tmp_path: Path) -> None:
    out = tmp_path / "sub" / "report.json"
    write_report(out, {"models": {"a": {"accuracy": 1.0}}})
    assert json.loads(out.read_text()) == {"models": {"a": {"accuracy": 1.0}}}
    write_report(None, {"ignored": True})  # no --out: nothing written
