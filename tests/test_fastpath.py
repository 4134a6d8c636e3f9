"""Opt-in fast paths (djepa_core/fastpath.py): bf16 autocast and torch.compile stay close to the plain path."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from djepa_core.assets import default_image_checkpoint
from djepa_core.checkpoint import load_generator
from djepa_core.cli import main
from djepa_core.fastpath import FastPath
from djepa_core.pipeline import ImageGenerator
from djepa_core.presets import get_preset


def test_fast_path_rejects_unknown_values() -> None:
    with pytest.raises(ValueError, match="precision"):
        FastPath(precision="fp16")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="compile"):
        FastPath(compile="everything")  # type: ignore[arg-type]
    assert FastPath().plain and not FastPath("bf16").plain
    assert FastPath("bf16", "all").describe() == "bf16, compiled all"


def test_bf16_autocast_stays_close_to_fp32_on_the_trained_model(one_thread: None) -> None:
    ckpt = default_image_checkpoint()
    if ckpt is None:
        pytest.skip("this build ships no embedded image model")
    labels = list(range(10))
    plain = load_generator(ckpt)
    fast = load_generator(ckpt).accelerate(FastPath("bf16"))
    a = plain.generate(labels, seeds=labels)
    b = fast.generate(labels, seeds=labels)
    assert b.dtype == torch.float32  # tokens and images stay float32: only the network runs in bfloat16
    # same seeds, same digits: bf16 rounding moves pixels a little (images in [-1, 1])
    assert (a - b).abs().mean().item() < 0.02
    assert torch.corrcoef(torch.stack([a.flatten(), b.flatten()]))[0, 1].item() > 0.99
    # the plain generator is untouched by the other's fast path
    assert plain.fast.plain
    assert torch.equal(plain.generate(labels, seeds=labels), a)


# torch's inductor imports torch.utils.mkldnn, which warns about its own use of torch.jit at import time
@pytest.mark.filterwarnings("ignore:`torch.jit.script_method` is deprecated:DeprecationWarning")
def test_compiled_head_and_backbone_match_the_eager_path(one_thread: None) -> None:
    config = get_preset("djepa-tiny")
    eager = ImageGenerator.from_config(config, seed=3)
    compiled = ImageGenerator.from_config(config, seed=3).accelerate(FastPath(compile="all"))
    settings = eager.settings(num_steps=4, head_steps=5, cfg_scale=2.0)
    # the head sees a different number of rows at every AR step (dynamic shapes)
    a = eager.generate([1, 2, 3], seed=0, settings=settings)
    b = compiled.generate([1, 2, 3], seed=0, settings=settings)
    torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-4)
    with pytest.raises(ValueError, match="already compiled"):
        compiled.accelerate(FastPath(compile="head"))
    assert compiled.accelerate(FastPath("bf16")).fast == FastPath("bf16", "all")  # stays compiled


def test_sample_cli_takes_precision(tmp_path: Path, one_thread: None) -> None:
    grids = {}
    for precision in ("fp32", "bf16"):
        out = tmp_path / f"{precision}.png"
        rc = main(["sample", "--preset", "djepa-tiny", "--classes", "1", "--per-class", "2", "--seed", "0",
                   "--precision", precision, "--out", str(out)])
        assert rc == 0
        grids[precision] = np.asarray(Image.open(out)).astype(np.int16)
    assert grids["bf16"].shape == grids["fp32"].shape
    assert np.abs(grids["bf16"] - grids["fp32"]).mean() < 8  # same seeds: the same images up to bf16 rounding


def test_eval_refuses_image_only_options_for_other_targets(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["eval", "video", "--precision", "bf16"]) == 2
    assert "--precision apply to the digits (image) evaluation only" in capsys.readouterr().err
