"""The REST app over an injected in-process backend (no Ray): readiness, hidden failures, docs."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

from service.engine import TorchImageEngine
from service.errors import NotReady
from service.ingress.http import create_app
from service.types import GeneratedImage, ImageItem, ModelInfo


def call(backend: Any, *requests: tuple[str, str, dict[str, Any]]) -> list[httpx.Response]:
    """Each (method, path, httpx kwargs) against the app over `backend`, in order, in process."""

    async def go() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=create_app(backend))
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
            return [await c.request(m, p, **kw) for m, p, kw in requests]

    return asyncio.run(go())


INFO = ModelInfo("fake", "image", ("a", "b"), 16, 16, 1, {"num_steps": 4, "cfg_scale": 2.0, "temperature": 1.0})


class NotReadyBackend:
    async def model_info(self) -> ModelInfo:
        raise NotReady("loading")

    async def generate(self, item: ImageItem, deadline: float | None = None) -> GeneratedImage:
        raise NotReady("loading")


class FailingBackend:
    async def model_info(self) -> ModelInfo:
        return INFO

    async def generate(self, item: ImageItem, deadline: float | None = None) -> GeneratedImage:
        raise RuntimeError("CUDA exploded at /secret/path")


class EngineBackend:
    """In-process, unbatched: one engine call per item."""

    def __init__(self, engine: TorchImageEngine) -> None:
        self.engine = engine

    async def model_info(self) -> ModelInfo:
        return self.engine.info

    async def generate(self, item: ImageItem, deadline: float | None = None) -> GeneratedImage:
        out, stats = (await asyncio.to_thread(self.engine.generate, [item]))[0]
        return GeneratedImage(out, stats)


def test_not_ready_answers_503() -> None:
    health, ready, post, models = call(NotReadyBackend(), ("GET", "/healthz", {}), ("GET", "/readyz", {}),
                                       ("POST", "/v1/images", {"json": {"class_id": 0}}), ("GET", "/v1/models", {}))
    assert health.status_code == 200 and ready.status_code == 503 and models.status_code == 503
    assert post.status_code == 503 and post.json()["error"]["code"] == "not_ready"


def test_unexpected_failure_answers_500_without_details() -> None:
    (r,) = call(FailingBackend(), ("POST", "/v1/images", {"json": {"class_id": "b"},
                                                          "headers": {"X-Request-Id": "abc123"}}))
    assert r.status_code == 500
    assert "secret" not in r.text and "Traceback" not in r.text
    assert r.json()["error"]["request_id"] == "abc123"


def test_bad_timeout_header_is_422() -> None:
    (r,) = call(FailingBackend(), ("POST", "/v1/images", {"json": {"class_id": 0},
                                                          "headers": {"X-Request-Timeout": "soon"}}))
    assert r.status_code == 422 and r.json()["error"]["field"] == "X-Request-Timeout"


def test_in_process_engine_backend(one_thread: None) -> None:
    from service.config import EngineConfig

    backend = EngineBackend(TorchImageEngine.load(EngineConfig(preset="djepa-tiny")))
    r, ready = call(backend, ("POST", "/v1/images", {"json": {"class_id": 4, "n": 2, "seed": 1}}),
                    ("GET", "/readyz", {}))
    assert r.status_code == 200 and len(r.json()["data"]) == 2
    assert ready.json() == {"status": "ready", "models": ["djepa-tiny"]}
