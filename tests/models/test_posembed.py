"""Sin-cos initialisation of the learned position tables (ModelConfig.pos_init), for (t, h, w) video grids."""

from __future__ import annotations

import pytest
import torch

from djepa_core.config import ModelConfig
from djepa_core.models.djepa import DJEPA
from djepa_core.models.posembed import sincos_table
from djepa_core.presets import get_preset


def test_table_codes_every_axis() -> None:
    table = sincos_table((4, 4, 4), 128)
    assert table.shape == (64, 128) and float(table.abs().max()) <= 1.0
    assert torch.cdist(table, table).add(torch.eye(64)).min() > 0.5  # every position distinct
    assert torch.equal(table[:, 126:], torch.zeros(64, 2))  # 128 = 3 x 42 + 2 left over
    # the last axis varies fastest, as the token order: tokens 0 and 1 differ in w only
    assert torch.equal(table[0, :84], table[1, :84]) and not torch.equal(table[0, 84:], table[1, 84:])


def test_model_starts_from_the_table_and_configs_keep_the_reference_default() -> None:
    cfg = get_preset("djepa-video-tiny").model
    model = DJEPA(cfg)
    torch.testing.assert_close(model.encoder_pos_embed_learned[0], sincos_table(cfg.grid, cfg.encoder_dim))
    torch.testing.assert_close(model.decoder_pos_embed_learned[0], sincos_table(cfg.grid, cfg.decoder_dim))
    assert model.encoder_pos_embed_learned.requires_grad
    assert ModelConfig.from_dict(cfg.to_dict()) == cfg
    assert "pos_init" not in get_preset("djepa-b").model.to_dict()  # reference models: N(0, 0.02), key absent
    with pytest.raises(ValueError, match="pos_init"):
        ModelConfig(pos_init="learned")  # type: ignore[arg-type]
