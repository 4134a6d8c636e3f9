"""Video tokenizer: (t, h, w) token grid of pixel patches / tubelets, exact inverse, frame-major order."""

from __future__ import annotations

import pytest
import torch

from djepa_core.config import TokenizerConfig
from djepa_core.presets import get_preset
from djepa_core.tokenizers.factory import build_any_tokenizer, build_tokenizer, build_video_tokenizer
from djepa_core.tokenizers.grid import patchify
from djepa_core.tokenizers.video import VideoPatchTokenizer


@pytest.mark.parametrize("tubelet", [1, 2, 4])
def test_round_trip_and_shapes(tubelet: int) -> None:
    tok = VideoPatchTokenizer(image_size=8, channels=3, patch_size=4, num_frames=4, tubelet=tubelet, scale=2.0,
                              shift=0.5)
    clips = torch.rand(2, 4, 3, 8, 8, generator=torch.Generator().manual_seed(0)) * 2 - 1
    tokens = tok.encode(clips)
    assert tok.grid == (4 // tubelet, 2, 2) and tokens.shape == (2, tok.num_tokens, 3 * tubelet * 16)
    torch.testing.assert_close(tok.decode(tokens), clips, rtol=0, atol=1e-6)


def test_frame_major_order_matches_the_image_patchify_per_frame() -> None:
    tok = VideoPatchTokenizer(image_size=8, channels=1, patch_size=4, num_frames=3)
    clips = torch.randn(2, 3, 1, 8, 8)
    tokens = tok.encode(clips)
    for t in range(3):  # tokens of frame t are contiguous, in the image tokenizer's raster order
        torch.testing.assert_close(tokens[:, t * 4:(t + 1) * 4], patchify(clips[:, t], 4))


def test_tubelet_channels_are_ordered_c_dt_dy_dx() -> None:
    tok = VideoPatchTokenizer(image_size=2, channels=1, patch_size=2, num_frames=2, tubelet=2)
    clips = torch.arange(8.0).reshape(1, 2, 1, 2, 2)
    assert tok.encode(clips)[0, 0].tolist() == list(range(8))


def test_shape_errors_name_the_expected_shape() -> None:
    tok = VideoPatchTokenizer(image_size=8, channels=1, patch_size=4, num_frames=4, tubelet=2)
    with pytest.raises(ValueError, match=r"expected clips \[B, 4, 1, 8, 8\]"):
        tok.encode(torch.zeros(1, 3, 1, 8, 8))
    with pytest.raises(ValueError, match="multiple of tubelet"):
        VideoPatchTokenizer(image_size=8, channels=1, patch_size=4, num_frames=3, tubelet=2)


def test_config_grid_factory_and_image_configs_unchanged() -> None:
    frames = get_preset("djepa-moving-digits")  # one 12x12 frame per token
    assert frames.tokenizer.grid == frames.model.grid == (8, 1, 1) and frames.model.seq_len == 8
    assert build_video_tokenizer(frames.tokenizer).token_dim == frames.model.token_dim == 144
    cfg = get_preset("djepa-moving-digits-tubelets")
    assert cfg.tokenizer.grid == cfg.model.grid == (4, 3, 3) and cfg.model.seq_len == 36  # 8 frames of 12x12
    tok = build_video_tokenizer(cfg.tokenizer)
    assert tok.token_dim == cfg.model.token_dim == 32 and isinstance(build_any_tokenizer(cfg.tokenizer),
                                                                      VideoPatchTokenizer)
    with pytest.raises(ValueError, match="build_video_tokenizer"):
        build_tokenizer(cfg.tokenizer)
    assert TokenizerConfig.from_dict(cfg.tokenizer.to_dict()) == cfg.tokenizer
    image = get_preset("djepa-digits").tokenizer.to_dict()  # image configs store no video keys
    assert "num_frames" not in image and "tubelet" not in image
    with pytest.raises(ValueError, match="video tokenizer only"):
        TokenizerConfig(kind="patches", image_size=16, patch_size=4, num_frames=2)
