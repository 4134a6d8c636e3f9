"""Hostile and broken input on the real service: every refusal is a 4xx naming what was wrong, never a 5xx."""

from __future__ import annotations

import httpx
import pytest

from service.batching import MAX_NAME_CHARS
from service.config import AppConfig
from tests.service.conftest import Served

LIMIT = AppConfig().max_body_bytes


def post(served: Served, **kwargs: object) -> httpx.Response:
    with httpx.Client(base_url=served.url, timeout=60) as c:
        return c.post("/v1/images", **kwargs)  # type: ignore[arg-type]


def json_post(served: Served, text: str | bytes) -> httpx.Response:
    return post(served, content=text, headers={"content-type": "application/json"})


def test_a_body_over_the_limit_is_413(served: Served) -> None:
    big = '{"class_id": 1, "user": "' + "x" * LIMIT + '"}'
    declared = json_post(served, big)

    def chunks() -> object:  # no content-length: the limit holds while reading
        yield b'{"class_id": 1, "user": "'
        for _ in range(LIMIT // 1024 + 1):
            yield b"x" * 1024
        yield b'"}'

    streamed = post(served, content=chunks(), headers={"content-type": "application/json"})
    for r in (declared, streamed):
        assert r.status_code == 413, r.text
        error = r.json()["error"]
        assert (error["code"], error["message"], error["field"]) == (
            "payload_too_large", f"the body is over {LIMIT} bytes", "body")


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data",
                                          "application/xml"])
def test_a_body_that_is_not_json_by_type_is_415(served: Served, content_type: str) -> None:
    r = post(served, content=b'{"class_id": 1}', headers={"content-type": content_type})
    assert r.status_code == 415, r.text
    assert r.json()["error"]["code"] == "unsupported_media_type" and content_type in r.json()["error"]["message"]


def test_json_content_types_and_no_content_type_are_read_as_json(served: Served) -> None:
    for headers in ({"content-type": "application/json; charset=utf-8"}, {"content-type": "application/merge+json"},
                    {}):
        r = post(served, content=b'{"class_id": 1, "seed": 4}', headers=headers)
        assert r.status_code == 200, (headers, r.text)


@pytest.mark.parametrize("body", [b'{"class_id": "\xff\xfe"}', b"\xff\xfe\xfd", b'{"class_id": 1, "user": "\xc3\x28"}'])
def test_a_body_that_is_not_utf8_is_400(served: Served, body: bytes) -> None:
    r = json_post(served, body)
    assert r.status_code == 400, r.text
    assert r.json()["error"]["code"] == "malformed_request"


@pytest.mark.parametrize(("text", "field"), [
    ('{"class_id": 1, "n": 100000000000000000000000000000}', "n"),
    ('{"class_id": 100000000000000000000000000000}', "class_id"),
    ('{"class_id": 1, "seed": 100000000000000000000000000000}', "seed"),
    ('{"class_id": 1, "num_steps": 100000000000000000000000000000}', "num_steps"),
    ('{"class_id": 1, "cfg_scale": 1e400}', "cfg_scale"),
    ('{"class_id": 1, "cfg_scale": NaN}', "cfg_scale"),
    ('{"class_id": 1, "temperature": Infinity}', "temperature"),
    ('{"class_id": 1, "temperature": -Infinity}', "temperature"),
    ('{"class_id": 1, "cfg_scale": 1e308}', "cfg_scale"),
    ('{"class_id": 1.5}', "class_id"),
    ('{"class_id": true}', "class_id"),
    ('{"class_id": [1]}', "class_id"),
    ('{"class_id": 1, "n": "2"}', "n"),
    ('{"class_id": 1, "n": 2.5}', "n"),
    ('{"class_id": 1, "extra": {"nested": 1}}', "extra"),
    ('{"class_id": "' + "x" * (MAX_NAME_CHARS + 1) + '"}', "class_id"),
    ('{"class_id": 1, "model": "' + "m" * (MAX_NAME_CHARS + 1) + '"}', "model"),
    ('{"prompt": "' + "p" * (MAX_NAME_CHARS + 1) + '"}', "prompt"),
    ('{"class_id": 1, "user": "' + "u" * (MAX_NAME_CHARS + 1) + '"}', "user"),
])
def test_bad_values_are_422_naming_the_field(served: Served, text: str, field: str) -> None:
    r = json_post(served, text)
    assert r.status_code == 422, r.text
    error = r.json()["error"]
    assert error["code"] == "invalid_request" and error["field"] == field and error["message"]
    assert len(r.content) < 2048  # long input is never echoed back


def test_a_huge_integer_literal_is_refused_not_parsed_forever(served: Served) -> None:
    r = json_post(served, '{"class_id": 1, "seed": ' + "9" * 5000 + "}")  # over Python's int-parsing digit limit
    assert r.status_code in (400, 422), r.text


@pytest.mark.parametrize("text", ["[]", "1", '"x"', "null", "{", ""])
def test_json_that_is_not_an_object_is_refused(served: Served, text: str) -> None:
    r = json_post(served, text)
    assert r.status_code in (400, 422), r.text
    assert r.json()["error"]["code"] in ("malformed_request", "invalid_request")


def test_grpc_refuses_long_names(served: Served) -> None:
    import grpc

    from service.proto_gen.djepa.v1 import generation_pb2 as pb
    from service.proto_gen.djepa.v1 import generation_pb2_grpc as pb_grpc

    with grpc.insecure_channel(served.grpc_target) as channel:
        stub = pb_grpc.GenerationStub(channel)
        for request, field in ((pb.GenerateImagesRequest(class_name="c" * 10000), "class_id"),
                               (pb.GenerateImagesRequest(class_id=1, model="m" * 10000), "model")):
            with pytest.raises(grpc.RpcError) as info:
                stub.GenerateImages(request, metadata=(("application", "djepa"),), timeout=60)
            error: grpc.Call = info.value
            assert error.code() == grpc.StatusCode.INVALID_ARGUMENT and (error.details() or "").startswith(field)
            assert len(error.details() or "") < 200
