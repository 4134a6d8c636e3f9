"""Request expansion, validation and grouping (service/batching.py) and the error mapping."""

from __future__ import annotations

import json

import pytest

from service.batching import expand, group_by_settings
from service.errors import (
    DeadlineExceeded,
    InvalidRequest,
    MalformedRequest,
    NotReady,
    QueueFull,
    to_answer,
)
from service.types import ImageItem, ImageRequest, ModelInfo

INFO = ModelInfo("m", "image", ("zero", "one", "two"), 16, 16, 1,
                 {"num_steps": 4, "cfg_scale": 2.0, "temperature": 1.0}, max_num_steps=64)


def test_expand_fans_out_seeds_and_fills_defaults() -> None:
    items = expand(ImageRequest(class_id="two", n=3, seed=5, cfg_scale=1.5), INFO, 16)
    assert items == [ImageItem(2, s, 4, 1.5, 1.0) for s in (5, 6, 7)]
    random_seeded = expand(ImageRequest(class_id=1), INFO, 16)
    assert len(random_seeded) == 1 and random_seeded[0].seed >= 0


@pytest.mark.parametrize(("request_", "field"), [
    (ImageRequest(class_id=3), "class_id"),
    (ImageRequest(class_id="three"), "class_id"),
    (ImageRequest(class_id=True), "class_id"),
    (ImageRequest(class_id=0, n=17), "n"),
    (ImageRequest(class_id=0, model="other"), "model"),
    (ImageRequest(class_id=0, num_steps=65), "num_steps"),
    (ImageRequest(class_id=0, cfg_scale=float("nan")), "cfg_scale"),
    (ImageRequest(class_id=0, temperature=-1.0), "temperature"),
    (ImageRequest(class_id=0, seed=2**63), "seed"),
])
def test_expand_names_the_bad_field(request_: ImageRequest, field: str) -> None:
    with pytest.raises(InvalidRequest) as e:
        expand(request_, INFO, 16)
    assert e.value.field == field


def test_group_by_settings() -> None:
    a, b = ImageItem(0, 0, 4, 2.0, 1.0), ImageItem(0, 1, 8, 2.0, 1.0)
    c = ImageItem(1, 2, 4, 2.0, 0.5)
    assert group_by_settings([a, b, a, c, b]) == [[0, 2], [1, 4], [3]]


@pytest.mark.parametrize(("exc", "http", "grpc"), [
    (MalformedRequest("x"), 400, "INVALID_ARGUMENT"), (InvalidRequest("x", "n"), 422, "INVALID_ARGUMENT"),
    (QueueFull("x", 3), 429, "RESOURCE_EXHAUSTED"), (DeadlineExceeded("x"), 504, "DEADLINE_EXCEEDED"),
    (NotReady("x"), 503, "UNAVAILABLE"), (RuntimeError("secret detail"), 500, "INTERNAL"),
])
def test_one_error_mapping(exc: Exception, http: int, grpc: str) -> None:
    answer = to_answer(exc, "rid")
    assert (answer.http_status, answer.grpc_status) == (http, grpc)
    error = json.loads(answer.body)["error"]
    assert error["request_id"] == "rid" and "secret" not in answer.body.decode()
    assert ("Retry-After" in answer.headers) == (http == 429)
    if http == 422:
        assert error["field"] == "n"
