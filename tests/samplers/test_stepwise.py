"""The step-wise masked-AR sampler (continuous batching): a request's result does not depend on which
other requests share its steps, at which steps they are, with which settings, or when it joined.

Alone, `advance` is bit-identical to `sample_tokens`. Mixed with other requests, rows see other batch
sizes, so BLAS blocking changes the last bits (as for a static batch, test_samplers.py): the flow head
is compared at the 1e-5 of test_per_sample_seeds; the Gaussian head's reverse process amplifies last-bit
differences by up to ~2e4, so it is compared in float64 (differences ~1e-11), where any logic error
(a wrong noise draw, mask, guidance row or scale) still shows as O(1).
"""

from __future__ import annotations

import copy
import dataclasses

import pytest
import torch

from djepa_core.config import HeadKind
from djepa_core.pipeline import ImageGenerator
from djepa_core.presets import get_preset
from djepa_core.samplers import stepwise
from djepa_core.samplers.masked_ar import HeadSampler, SampleSettings, sample_tokens
from djepa_core.samplers.noise import PerSampleNoise
from tests.samplers.test_samplers import _generator

Request = tuple[int, int, SampleSettings]  # (class id, seed, settings)


@pytest.fixture(scope="module", params=["gauss", "flow"])
def gen(request: pytest.FixtureRequest) -> ImageGenerator:
    head: HeadKind = request.param
    return _generator(get_preset("djepa-tiny"), head)


def _requests(gen: ImageGenerator) -> list[Request]:
    """Different step counts, guidance (none, linear, constant), temperatures and classes."""
    s = gen.settings
    return [(1, 5, s(num_steps=4, cfg_scale=3.0)),
            (2, 6, s(num_steps=6, cfg_scale=1.0, temperature=0.7)),
            (3, 7, s(num_steps=3, cfg_scale=2.0, cfg_schedule="constant")),
            (0, 9, s(num_steps=1)),
            (4, 11, s(num_steps=5, cfg_scale=1.5, temperature=1.3))]


def _alone(gen: ImageGenerator, req: Request) -> torch.Tensor:
    label, seed, settings = req
    return sample_tokens(gen.model, torch.tensor([label]), PerSampleNoise([seed]), settings)[0]


def _schedule(gen: ImageGenerator, reqs: list[Request], joins: list[int]) -> dict[int, torch.Tensor]:
    """Run `reqs` through `advance` together, request i joining before step boundary joins[i]; each
    leaves as soon as it is done. The tokens of each, by index."""
    states: dict[int, stepwise.ARState] = {}
    out: dict[int, torch.Tensor] = {}
    cache: dict[tuple[object, ...], HeadSampler] = {}
    boundary = 0
    while len(out) < len(reqs):
        for i, at in enumerate(joins):
            if at == boundary:
                states[i] = stepwise.start(gen.model, *reqs[i])
        keys = list(states)
        if keys:
            for k, s in zip(keys, stepwise.advance(gen.model, [states[k] for k in keys], cache), strict=True):
                assert s.step == states[k].step + 1
                states[k] = s
                if s.done:
                    out[k] = s.tokens
                    del states[k]
        boundary += 1
    return out


def test_alone_is_bit_identical_to_the_sequential_sampler(gen: ImageGenerator) -> None:
    for req in _requests(gen):
        assert torch.equal(stepwise.run_alone(gen.model, *req), _alone(gen, req)), req


def _comparable(gen: ImageGenerator) -> tuple[ImageGenerator, float]:
    """The generator to compare mixed runs with (gauss: a float64 copy), and the tolerance."""
    if gen.config.model.head == "gauss":
        return ImageGenerator(gen.config, copy.deepcopy(gen.model).double(), gen.tokenizer), 1e-8
    return gen, 1e-5


def test_mixed_requests_equal_their_alone_runs(gen: ImageGenerator) -> None:
    gen, tol = _comparable(gen)
    reqs = _requests(gen)
    alone = [_alone(gen, r) for r in reqs]
    # all at once, then staggered joins (requests at different steps share every step), then late joins
    for joins in ([0, 0, 0, 0, 0], [0, 1, 2, 3, 4], [3, 0, 5, 1, 1]):
        out = _schedule(gen, reqs, joins)
        for i in range(len(reqs)):
            torch.testing.assert_close(out[i], alone[i], rtol=tol, atol=tol, msg=f"request {i}, joins {joins}")


def test_requests_of_different_head_settings_share_steps(gen: ImageGenerator) -> None:
    """Requests whose head settings differ (head steps; the reference's arithmetic) share the backbone forward and
    take one head call per setting; each still equals its alone run."""
    gen, tol = _comparable(gen)
    s = gen.settings
    reqs = [(1, 5, s(num_steps=4, cfg_scale=3.0, head_steps=4)),
            (2, 6, s(num_steps=4, cfg_scale=1.0)),
            (3, 7, s(num_steps=3, cfg_scale=2.0, head_steps=4)),
            (4, 8, dataclasses.replace(s(num_steps=5, cfg_scale=2.0), reference_arithmetic=True)),
            (5, 9, s(num_steps=2, cfg_scale=1.5))]
    alone = [_alone(gen, r) for r in reqs]
    for joins in ([0, 0, 0, 0, 0], [0, 1, 0, 2, 1]):
        out = _schedule(gen, reqs, joins)
        for i in range(len(reqs)):
            torch.testing.assert_close(out[i], alone[i], rtol=tol, atol=tol, msg=f"request {i}, joins {joins}")


def test_join_and_leave_keep_the_others_unchanged(gen: ImageGenerator) -> None:
    """A request's steps do not change when another joins or leaves mid-way."""
    gen, tol = _comparable(gen)
    reqs = _requests(gen)[:3]
    a = _schedule(gen, reqs, [0, 0, 0])
    b = _schedule(gen, reqs, [0, 0, 0])
    for i in range(3):
        assert torch.equal(a[i], b[i])  # deterministic
    # request 3 (1 step) joining at boundary 2 leaves at once; request 0's result stays within rounding
    c = _schedule(gen, [*reqs, _requests(gen)[3]], [0, 0, 0, 2])
    for i in range(3):
        torch.testing.assert_close(c[i], a[i], rtol=tol, atol=tol)


def test_states_track_steps_and_fill_every_token(gen: ImageGenerator) -> None:
    settings = gen.settings(num_steps=3, cfg_scale=2.0)
    state = stepwise.start(gen.model, 2, 0, settings)
    assert state.step == 0 and not state.done and bool((state.mask == 1).all())
    length = gen.config.model.seq_len
    visible = []
    while not stepwise.finished(state):
        state = stepwise.advance(gen.model, [state])[0]
        visible.append(int((stepwise.partial_tokens(state) != 0).any(dim=-1).sum()))
    assert state.step == 3
    assert visible == sorted(visible) and visible[-1] == length  # previews fill in, the last is whole
    with pytest.raises(ValueError, match="finished"):
        stepwise.advance(gen.model, [state])
    with pytest.raises(ValueError, match="class ids"):
        stepwise.start(gen.model, gen.config.model.num_classes, 0, settings)
    assert stepwise.advance(gen.model, []) == []


def test_ragged_backbone_equals_the_plain_one(gen: ImageGenerator) -> None:
    """encode_ragged + predict_ragged on rows with different masks = forward row by row (within rounding)."""
    model = gen.model
    cfg = model.config
    g = torch.Generator().manual_seed(0)
    tokens = torch.randn(3, cfg.seq_len, cfg.token_dim, generator=g)
    masks = torch.zeros(3, cfg.seq_len)
    for row, n in enumerate((cfg.seq_len, cfg.seq_len // 2, 1)):
        masks[row, torch.randperm(cfg.seq_len, generator=g)[:n]] = 1
    class_vec = model.class_vectors(torch.tensor([1, 2, 3]))
    with torch.no_grad():
        enc, positions, valid = model.encode_ragged(tokens, masks, class_vec)
        z = model.predict_ragged(enc, positions, valid)
        for row in range(3):
            one = model(tokens[row:row + 1], masks[row:row + 1], class_vec[row:row + 1])
            torch.testing.assert_close(z[row:row + 1], one, rtol=1e-5, atol=1e-5)
