"""Rows of different lengths in one encoder forward (models/ragged.py, `DJEPA.encode_ragged`): the bucket plan,
and the encoder's output for every bucket count equal to each row's own dense forward."""

from __future__ import annotations

import pytest
import torch

from djepa_core.models.djepa import DJEPA
from djepa_core.models.ragged import RaggedRows
from djepa_core.presets import get_preset


def test_plan_cuts_the_length_range_into_contiguous_buckets() -> None:
    lengths = [16, 16, 17, 20, 31, 40, 41, 79]
    plan = RaggedRows.plan(lengths, max_buckets=4)
    # span ceil((79 - 16 + 1) / 4) = 16: [16, 32), [32, 48), [48, 64) is empty, [64, 80)
    assert [(b.rows, b.length) for b in plan.buckets] == [(5, 31), (2, 41), (1, 79)]
    assert plan.buckets[0].start == 0 and plan.tokens == sum(lengths)
    for a, b in zip(plan.buckets, plan.buckets[1:], strict=False):
        assert a.stop == b.start
    first = plan.buckets[0]
    assert first.where is not None and first.slots is not None
    assert first.where.sum(dim=1).tolist() == [16, 16, 17, 20, 31]
    assert first.slots.numel() == first.stop - first.start
    last = plan.buckets[-1]  # one row: no pads, no mask
    assert last.where is None and last.slots is None


def test_plan_keeps_rows_of_one_length_unpadded() -> None:
    plan = RaggedRows.plan([20, 20, 20, 50, 50], max_buckets=6)
    assert [(b.rows, b.length, b.where is None) for b in plan.buckets] == [(3, 20, True), (2, 50, True)]
    one = RaggedRows.plan([20, 33, 50], max_buckets=1)
    assert len(one.buckets) == 1 and one.buckets[0].length == 50 and one.buckets[0].where is not None


@pytest.mark.parametrize(("lengths", "buckets", "message"), [
    ([], 4, "no rows"), ([3, 2], 4, "sorted"), ([2, 3], 0, "max_buckets")])
def test_plan_rejects_bad_input(lengths: list[int], buckets: int, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        RaggedRows.plan(lengths, max_buckets=buckets)


@pytest.fixture(scope="module")
def model() -> DJEPA:
    torch.manual_seed(0)
    m = DJEPA(get_preset("djepa-tiny64").model)
    return m.eval()


def _rows(model: DJEPA, visible: list[int]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    cfg = model.config
    g = torch.Generator().manual_seed(1)
    n = len(visible)
    tokens = torch.randn(n, cfg.seq_len, cfg.token_dim, generator=g)
    masks = torch.ones(n, cfg.seq_len)
    for row, v in enumerate(visible):
        masks[row, torch.randperm(cfg.seq_len, generator=g)[:v]] = 0
    return tokens, masks, model.class_vectors(torch.arange(n) % cfg.num_classes)


@pytest.mark.parametrize("max_buckets", [1, 2, 6, 64])
def test_ragged_encoder_equals_each_row_alone(model: DJEPA, max_buckets: int) -> None:
    """Rows in any order, some of equal length (unpadded buckets), some alone, one with no token visible."""
    visible = [40, 0, 63, 12, 12, 12, 41, 5, 64, 33, 33, 1]
    tokens, masks, class_vec = _rows(model, visible)
    with torch.no_grad():
        enc, positions, valid = model.encode_ragged(tokens, masks, class_vec, max_buckets)
        z = model.predict_ragged(enc, positions, valid)
        assert valid.sum(dim=1).tolist() == visible
        buf = model.config.buffer_size
        for row, v in enumerate(visible):
            alone = model.encode(tokens[row:row + 1], masks[row:row + 1], class_vec[row:row + 1])
            torch.testing.assert_close(enc[row:row + 1, :buf + v], alone, rtol=1e-5, atol=1e-5)
            assert bool((enc[row, buf + v:] == 0).all())  # pads stay zero
            one = model(tokens[row:row + 1], masks[row:row + 1], class_vec[row:row + 1])
            torch.testing.assert_close(z[row:row + 1], one, rtol=1e-5, atol=1e-5)


def test_ragged_encoder_under_bf16_autocast(model: DJEPA) -> None:
    visible = [10, 30, 30, 50]
    tokens, masks, class_vec = _rows(model, visible)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        z = model.predict_ragged(*model.encode_ragged(tokens, masks, class_vec, 2))
        for row in range(len(visible)):
            one = model(tokens[row:row + 1], masks[row:row + 1], class_vec[row:row + 1])
            torch.testing.assert_close(z[row:row + 1].float(), one.float(), rtol=2e-2, atol=2e-2)


def test_ragged_encoder_with_autograd_on(model: DJEPA) -> None:
    """With gradients on, the QK norms are not applied in place (the same values, and a backward runs)."""
    visible = [7, 20, 20, 44]
    tokens, masks, class_vec = _rows(model, visible)
    with torch.no_grad():
        expected = model.encode_ragged(tokens, masks, class_vec)[0]
    enc = model.encode_ragged(tokens, masks, class_vec)[0]
    torch.testing.assert_close(enc, expected, rtol=0, atol=0)
    enc.sum().backward()
    assert model.z_proj.weight.grad is not None
    model.zero_grad(set_to_none=True)


def _queries(visible: list[int], masks: torch.Tensor, asked: list[int]) -> torch.Tensor:
    """Per row, `asked[row]` of its masked slots (the ones a sampling step generates; 0: none)."""
    g = torch.Generator().manual_seed(2)
    query = torch.zeros_like(masks, dtype=torch.bool)
    for row, k in enumerate(asked):
        masked = masks[row].nonzero().flatten()
        query[row, masked[torch.randperm(masked.numel(), generator=g)[:k]]] = True
    return query


@pytest.mark.parametrize("asked", [[3, 3, 3, 3], [1, 5, 0, 2]], ids=["equal-counts", "padded"])
def test_the_predictor_at_asked_slots_equals_the_full_pass(model: DJEPA, asked: list[int]) -> None:
    """`predict_at` / `predict_ragged_at` (the last block at the asked slots only) read the same z as the full pass
    at those slots, in the order boolean indexing reads them."""
    visible = [20, 20, 20, 20]
    tokens, masks, class_vec = _rows(model, visible)
    query = _queries(visible, masks, asked)
    with torch.no_grad():
        enc = model.encode(tokens, masks, class_vec)
        full = model.predict(enc, masks)
        torch.testing.assert_close(model.predict_at(enc, masks, query), full[query], rtol=1e-5, atol=1e-5)
    ragged_visible = [5, 30, 30, 61]
    tokens, masks, class_vec = _rows(model, ragged_visible)
    query = _queries(ragged_visible, masks, asked)
    with torch.no_grad():
        enc, positions, valid = model.encode_ragged(tokens, masks, class_vec, 2)
        full = model.predict_ragged(enc, positions, valid)
        got = model.predict_ragged_at(enc, positions, valid, query)
    assert got.shape == (sum(asked), model.config.decoder_dim)
    torch.testing.assert_close(got, full[query], rtol=1e-5, atol=1e-5)


def test_the_predictor_at_asked_slots_without_predictor_blocks() -> None:
    torch.manual_seed(0)
    model = DJEPA(get_preset("djepa-tiny64").model.replace(decoder_depth=0)).eval()
    tokens, masks, class_vec = _rows(model, [10, 10])
    query = _queries([10, 10], masks, [2, 3])
    with torch.no_grad():
        enc = model.encode(tokens, masks, class_vec)
        torch.testing.assert_close(model.predict_at(enc, masks, query), model.predict(enc, masks)[query])


def test_the_predictor_at_no_asked_slot_is_empty(model: DJEPA) -> None:
    tokens, masks, class_vec = _rows(model, [10, 10])
    with torch.no_grad():
        enc = model.encode(tokens, masks, class_vec)
        got = model.predict_at(enc, masks, torch.zeros_like(masks, dtype=torch.bool))
    assert got.shape == (0, model.config.decoder_dim)
