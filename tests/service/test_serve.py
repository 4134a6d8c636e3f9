"""The service on real Ray Serve, over real HTTP on loopback (one session fixture: conftest.py)."""

from __future__ import annotations

import asyncio
import base64
import io
import re

import httpx
import pytest
from PIL import Image

from tests.service.conftest import Served


def client(url: str) -> httpx.Client:
    return httpx.Client(base_url=url, timeout=60)


def decode(b64: str) -> Image.Image:
    image = Image.open(io.BytesIO(base64.b64decode(b64)))
    assert image.format == "PNG"
    image.load()
    return image


def metric(text: str, name: str, **labels: str) -> float:
    """Sum of the samples of `name` whose labels include `labels`."""
    total = 0.0
    for line in text.splitlines():
        m = re.match(r"^([a-zA-Z_:][\w:]*)(\{[^}]*\})? (\S+)$", line)
        if not m or m.group(1) != name:
            continue
        got = dict(re.findall(r'(\w+)="([^"]*)"', m.group(2) or ""))
        if all(got.get(k) == v for k, v in labels.items()):
            total += float(m.group(3))
    return total


def test_single_request_answers_pngs_of_the_model_size(served: Served) -> None:
    with client(served.url) as c:
        r = c.post("/v1/images", json={"class_id": 3, "n": 2, "seed": 11})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["model"] == "djepa-tiny" and isinstance(body["created"], int)
    assert [d["seed"] for d in body["data"]] == [11, 12]
    assert [d["class_id"] for d in body["data"]] == [3, 3]
    for d in body["data"]:
        image = decode(d["b64_json"])
        assert image.size == (16, 16) and image.mode == "L"


def test_raw_png_and_class_names_and_openai_alias(served: Served) -> None:
    with client(served.url) as c:
        raw = c.post("/v1/images", json={"class_id": "7", "seed": 5, "response_format": "png"})
        alias = c.post("/v1/images/generations", json={"prompt": "7", "seed": 5})
    assert raw.status_code == 200 and raw.headers["content-type"] == "image/png"
    assert raw.headers["x-seed"] == "5" and raw.headers["x-class-id"] == "7"
    assert Image.open(io.BytesIO(raw.content)).size == (16, 16)
    assert alias.status_code == 200, alias.text
    assert base64.b64decode(alias.json()["data"][0]["b64_json"]) == raw.content  # same seed, same image


def test_same_seed_same_image_and_other_seed_other_image(served: Served) -> None:
    req = {"class_id": 1, "seed": 1234, "num_steps": 3, "cfg_scale": 1.5, "temperature": 0.9}
    with client(served.url) as c:
        a, b = (c.post("/v1/images", json=req).json()["data"][0]["b64_json"] for _ in range(2))
        other = c.post("/v1/images", json={**req, "seed": 1235}).json()["data"][0]["b64_json"]
    assert a == b
    assert other != a


def test_sixteen_concurrent_requests_are_batched(served: Served) -> None:
    async def burst() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=served.url, timeout=60) as c:
            return await asyncio.gather(*[c.post("/v1/images", json={"class_id": i % 10, "seed": i})
                                          for i in range(16)])

    with client(served.url) as c:
        before = c.get("/metrics").text
        responses = asyncio.run(burst())
        after = c.get("/metrics").text
    assert [r.status_code for r in responses] == [200] * 16
    assert [r.json()["data"][0]["seed"] for r in responses] == list(range(16))
    images = metric(after, "djepa_batch_size_sum") - metric(before, "djepa_batch_size_sum")
    passes = metric(after, "djepa_batch_size_count") - metric(before, "djepa_batch_size_count")
    assert images == 16
    assert passes < 16, f"16 images in {passes} passes: no batching"
    singles = metric(after, "djepa_batch_size_bucket", le="1.0") - metric(before, "djepa_batch_size_bucket", le="1.0")
    assert singles < passes or passes == 1  # at least one pass held more than one image


def test_mixed_settings_are_served_in_separate_passes(served: Served) -> None:
    async def burst() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=served.url, timeout=60) as c:
            return await asyncio.gather(*[c.post("/v1/images", json={"class_id": 2, "seed": i, "num_steps": 2 + i % 2})
                                          for i in range(6)])

    assert all(r.status_code == 200 for r in asyncio.run(burst()))


@pytest.mark.parametrize(("body", "field"), [
    ({"class_id": 10}, "class_id"),
    ({"class_id": "cat"}, "class_id"),
    ({"class_id": 1, "n": 17}, "n"),
    ({"class_id": 1, "n": 0}, "n"),
    ({"class_id": 1, "model": "dall-e-3"}, "model"),
    ({"class_id": 1, "num_steps": 0}, "num_steps"),
    ({"class_id": 1, "cfg_scale": -1}, "cfg_scale"),
    ({"class_id": 1, "temperature": 0}, "temperature"),
    ({"class_id": 1, "seed": -1}, "seed"),
    ({"class_id": 1, "response_format": "url"}, "response_format"),
    ({"class_id": 1, "n": 2, "response_format": "png"}, "response_format"),
    ({"class_id": 1, "colour": "red"}, "colour"),
    ({}, "class_id"),
])
def test_invalid_fields_answer_422_naming_the_field(served: Served, body: dict[str, object], field: str) -> None:
    with client(served.url) as c:
        r = c.post("/v1/images", json=body)
    assert r.status_code == 422, r.text
    error = r.json()["error"]
    assert error["field"] == field and error["message"] and error["code"] == "invalid_request"


def test_malformed_json_answers_400(served: Served) -> None:
    with client(served.url) as c:
        typed = c.post("/v1/images", content=b"{not json", headers={"content-type": "application/json"})
        untyped = c.post("/v1/images", content=b"{not json")
    for r in (typed, untyped):
        assert r.status_code == 400, r.text
        assert r.json()["error"]["code"] == "malformed_request"


def test_deadline_answers_504(served: Served) -> None:
    with client(served.url) as c:
        r = c.post("/v1/images", json={"class_id": 1, "n": 16, "num_steps": 64}, headers={"X-Request-Timeout": "0.05"})
        assert r.status_code == 504, r.text
        assert r.json()["error"]["code"] == "deadline_exceeded"
        assert c.post("/v1/images", json={"class_id": 1}).status_code == 200  # the service goes on


def test_full_queue_answers_429_with_retry_after(served: Served) -> None:
    async def burst() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=served.limited_url, timeout=60) as c:
            return await asyncio.gather(*[c.post("/v1/images", json={"class_id": 1, "seed": i, "num_steps": 32})
                                          for i in range(8)])

    with client(served.limited_url) as c:  # other tests (gRPC) fill this queue too: count this burst only
        before = metric(c.get("/metrics").text, "djepa_rejected_total", reason="queue_full")
    responses = asyncio.run(burst())
    codes = sorted(r.status_code for r in responses)
    assert set(codes) <= {200, 429} and 429 in codes and 200 in codes, [r.text for r in responses]
    for r in responses:
        if r.status_code == 429:
            assert r.headers["retry-after"] == "2"
            assert r.json()["error"]["code"] == "queue_full"
    with client(served.limited_url) as c:
        text = c.get("/metrics").text
    assert metric(text, "djepa_rejected_total", reason="queue_full") - before == codes.count(429)


def test_batch_settings_come_from_user_config(served: Served) -> None:
    from ray import serve

    from service.config import BatchConfig

    limited = serve.get_deployment_handle("ImageGenerator", app_name="limited")
    main = serve.get_deployment_handle("ImageGenerator", app_name="djepa")
    assert limited.batch_config.remote().result(timeout_s=30) == BatchConfig(1, 0.0)
    assert main.batch_config.remote().result(timeout_s=30) == BatchConfig(16, 0.05)


def test_models_health_and_readiness(served: Served) -> None:
    with client(served.url) as c:
        models = c.get("/v1/models")
        assert c.get("/healthz").status_code == 200
        ready = c.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["models"] == ["djepa-tiny", "djepa-video-tiny", "djepa-speech-tiny"]
    card = models.json()["data"][0]
    assert card["id"] == "djepa-tiny" and card["modality"] == "image"
    assert card["classes"][3] == {"id": 3, "name": "3"}
    assert card["output"]["width"] == 16 and card["defaults"]["num_steps"] == 4


def test_metrics_exposition(served: Served) -> None:
    with client(served.url) as c:
        c.post("/v1/images", json={"class_id": 2, "seed": 3})
        c.post("/v1/images", json={"class_id": 99})
        r = c.get("/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    text = r.text
    for name in ("djepa_request_duration_seconds_bucket", "djepa_queue_wait_seconds_bucket",
                 "djepa_batch_size_bucket", "djepa_generation_duration_seconds_bucket", "djepa_requests_in_flight",
                 "djepa_outputs_total", "djepa_rejected_total"):
        assert name in text, name
    assert metric(text, "djepa_request_duration_seconds_count", endpoint="/v1/images", status="200") >= 1
    assert metric(text, "djepa_request_duration_seconds_count", endpoint="/v1/images", status="422") >= 1
    assert metric(text, "djepa_outputs_total", model="djepa-tiny", modality="image") >= 1
    assert metric(text, "djepa_rejected_total", reason="invalid") >= 1
    assert metric(text, "djepa_requests_in_flight", model="djepa-tiny") == 0
    assert "/healthz" not in text and "/metrics" not in text  # not counted


def test_openapi_documents_every_field(served: Served) -> None:
    with client(served.url) as c:
        assert c.get("/docs").status_code == 200
        schema = c.get("/openapi.json").json()
    body = schema["components"]["schemas"]["ImageGenerationBody"]["properties"]
    for field in ("class_id", "n", "seed", "cfg_scale", "temperature", "num_steps", "model", "response_format"):
        assert body[field].get("description"), field
    assert {"/v1/images", "/v1/images/generations", "/v1/models", "/healthz", "/readyz", "/metrics"} <= set(
        schema["paths"])
