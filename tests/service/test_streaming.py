"""Progressive previews and continuous batching on real Ray Serve: SSE over real HTTP, the gRPC stream
through Ray's gRPC proxy, and an app whose image generator runs `batching: continuous`."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest
from PIL import Image

from service.config import AppConfig
from service.engine import TorchImageEngine
from service.ingress.http import create_app
from service.proto_gen.djepa.v1 import generation_pb2 as pb
from service.proto_gen.djepa.v1 import generation_pb2_grpc as pb_grpc
from service.scheduler import StepScheduler
from service.types import GeneratedImage, ImageItem, ImagePreview, ModelInfo
from tests.service.conftest import TINY, Served

MAIN = (("application", "djepa"),)
CONTINUOUS = "continuous"  # the app this module adds: the image generator with `batching: continuous`


def sse_events(text: str) -> list[tuple[str, Any]]:
    """(event name, parsed JSON data) of each Server-Sent Event in `text`."""
    events = []
    for block in text.split("\n\n"):
        if not block.strip():
            continue
        fields = dict(line.split(": ", 1) for line in block.splitlines())
        events.append((fields["event"], json.loads(fields["data"])))
    return events


def png_size(data: bytes) -> tuple[int, int]:
    image = Image.open(io.BytesIO(data))
    image.load()
    assert image.format == "PNG"
    return image.size


def post_stream(url: str, body: dict[str, Any], **kw: Any) -> httpx.Response:
    return httpx.post(url + "/v1/images", json={**body, "stream": True}, timeout=60, **kw)


@pytest.fixture(scope="module")
def continuous_url(served: Served) -> Iterator[str]:
    """An app at /continuous: the tiny model, its generator on the step scheduler (removed at the end)."""
    from ray import serve

    from service.deployments import build_app

    options: dict[str, dict[str, Any]] = {
        "ImageGenerator": {"ray_actor_options": {"num_cpus": 0.05}, "max_ongoing_requests": 16,
                           "user_config": {"batching": "continuous", "max_in_flight": 4, "max_waiting": 4}},
        "Ingress": {"ray_actor_options": {"num_cpus": 0.05}}}
    serve.run(build_app(AppConfig(engine=TINY, request_timeout_s=30), options), name=CONTINUOUS,
              route_prefix="/" + CONTINUOUS)
    try:
        yield served.url + "/" + CONTINUOUS
    finally:
        serve.delete(CONTINUOUS)


def test_sse_previews_then_the_final_answer(served: Served) -> None:
    body = {"class_id": 3, "n": 2, "seed": 21, "num_steps": 4}
    r = post_stream(served.url, {**body, "preview_every": 1})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/event-stream")
    events = sse_events(r.text)
    names = [name for name, _ in events]
    assert names[-1] == "final" and set(names[:-1]) == {"preview"}
    previews = [data for name, data in events if name == "preview"]
    for index in (0, 1):  # a preview after every step but the last, for each image, steps in order
        mine = [p for p in previews if p["index"] == index]
        assert [p["step"] for p in mine] == [1, 2, 3]
        assert {(p["num_steps"], p["seed"], p["class_id"]) for p in mine} == {(4, 21 + index, 3)}
        for p in mine:
            assert png_size(base64.b64decode(p["b64_json"])) == (16, 16)
    final = events[-1][1]
    plain = httpx.post(served.url + "/v1/images", json=body, timeout=60).json()
    assert final["model"] == plain["model"] == "djepa-tiny"
    assert final["data"] == plain["data"]  # the same images as the plain answer, for the same seeds


def test_sse_default_preview_period_and_one_preview_less_than_steps(served: Served) -> None:
    events = sse_events(post_stream(served.url, {"class_id": 1, "seed": 2, "num_steps": 16}).text)
    steps = [data["step"] for name, data in events if name == "preview"]
    assert steps == [2, 4, 6, 8, 10, 12, 14]  # about 8 previews per image: every 16 / 8 = 2 steps
    assert events[-1][0] == "final" and len(events[-1][1]["data"]) == 1


def test_sse_errors_before_the_first_event_are_plain_answers(served: Served) -> None:
    r = post_stream(served.url, {"class_id": 99})
    assert r.status_code == 422 and r.json()["error"]["field"] == "class_id"
    r = post_stream(served.url, {"class_id": 1, "response_format": "png"})
    assert r.status_code == 422 and r.json()["error"]["field"] == "response_format"
    r = post_stream(served.url, {"class_id": 1, "preview_every": 0})
    assert r.status_code == 422 and r.json()["error"]["field"] == "preview_every"
    r = httpx.post(served.url + "/v1/images", json={"class_id": 1, "stream": "yes"}, timeout=60)  # strict: a boolean
    assert r.status_code == 422


def test_grpc_stream_carries_the_same_previews_and_images(served: Served) -> None:
    with grpc.insecure_channel(served.grpc_target) as channel:
        stub = pb_grpc.GenerationStub(channel)
        request = pb.GenerateImagesRequest(class_id=5, n=2, seed=31, num_steps=4, preview_every=2)
        events = list(stub.GenerateImagesStream(request, metadata=MAIN, timeout=60))
        assert [e.WhichOneof("event") for e in events[:-1]] == ["preview"] * 2 and events[-1].HasField("final")
        previews = sorted((e.preview.index, e.preview.step, e.preview.seed) for e in events[:-1])
        assert previews == [(0, 2, 31), (1, 2, 32)]
        assert all(png_size(e.preview.png) == (16, 16) for e in events[:-1])
        unary = stub.GenerateImages(pb.GenerateImagesRequest(class_id=5, n=2, seed=31, num_steps=4), metadata=MAIN,
                                    timeout=60)
        assert [i.png for i in events[-1].final.images] == [i.png for i in unary.images]
        with pytest.raises(grpc.RpcError) as info:
            list(stub.GenerateImagesStream(pb.GenerateImagesRequest(class_id=99), metadata=MAIN, timeout=60))
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "class_id" in (info.value.details() or "")


def test_continuous_batching_answers_the_same_images(served: Served, continuous_url: str) -> None:
    body = {"class_id": 7, "n": 3, "seed": 41, "num_steps": 5, "cfg_scale": 1.5}
    static = httpx.post(served.url + "/v1/images", json=body, timeout=60)
    continuous = httpx.post(continuous_url + "/v1/images", json=body, timeout=60)
    assert static.status_code == continuous.status_code == 200, continuous.text
    assert continuous.json()["data"] == static.json()["data"]
    events = sse_events(post_stream(continuous_url, {**body, "preview_every": 2}).text)
    assert events[-1][0] == "final" and events[-1][1]["data"] == static.json()["data"]
    with grpc.insecure_channel(served.grpc_target) as channel:
        answer = pb_grpc.GenerationStub(channel).GenerateImages(
            pb.GenerateImagesRequest(class_id=7, n=3, seed=41, num_steps=5, cfg_scale=1.5),
            metadata=(("application", CONTINUOUS),), timeout=60)
    assert [base64.b64encode(i.png).decode() for i in answer.images] == [d["b64_json"] for d in static.json()["data"]]


def test_the_continuous_replica_reports_its_work_and_runs_with_the_malloc_settings(continuous_url: str) -> None:
    from ray import serve

    from service.deployments import REPLICA_ENV

    replica = serve.get_deployment_handle("ImageGenerator", app_name=CONTINUOUS)
    before = replica.work_stats.remote().result(timeout_s=60)
    body = {"class_id": 2, "n": 2, "seed": 5, "num_steps": 4}
    assert httpx.post(continuous_url + "/v1/images", json=body, timeout=60).status_code == 200
    after = replica.work_stats.remote().result(timeout_s=60)
    assert after["steps"] - before["steps"] >= 4 and after["rows"] - before["rows"] == 2 * 4  # 2 images x 4 steps
    assert after["busy_s"] > before["busy_s"] and after["cpu_s"] > before["cpu_s"]
    # set when the replica's process started (glibc reads them only then), not later in Python
    environ = dict(line.split(b"=", 1) for line in Path(f"/proc/{after['pid']}/environ").read_bytes().split(b"\0")
                   if b"=" in line)
    assert {k: environ.get(k.encode(), b"").decode() for k in REPLICA_ENV} == REPLICA_ENV


def test_continuous_batching_bounds_what_a_replica_holds(continuous_url: str) -> None:
    """max_in_flight 4 + max_waiting 4: a request of 16 images cannot all be held; the answer is a 429."""
    r = httpx.post(continuous_url + "/v1/images", json={"class_id": 1, "n": 16, "num_steps": 64}, timeout=60)
    assert r.status_code == 429, r.text
    assert r.json()["error"]["code"] == "queue_full" and "Retry-After" in r.headers
    # the request's held images are cancelled with it (Ray delivers the cancellations asynchronously)
    for _ in range(50):
        ok = httpx.post(continuous_url + "/v1/images", json={"class_id": 1, "n": 2, "seed": 1}, timeout=60)
        if ok.status_code != 429:
            break
        time.sleep(0.1)
    assert ok.status_code == 200, ok.text


class InProcessBackend:
    """The ingress's image backend over a step scheduler in this process (no Ray): a real engine, and a test
    clock that jumps past every deadline once the first step is done, so a stream fails mid-way."""

    def __init__(self) -> None:
        self.engine = TorchImageEngine.load(TINY)
        self.scheduler = StepScheduler(self.engine, clock=self.clock)
        self.start = time.time()

    def clock(self) -> float:
        return self.start + (3600 if self.scheduler.steps >= 1 else 0)

    async def model_info(self) -> ModelInfo:
        return self.engine.info

    async def generate(self, item: ImageItem, deadline: float | None = None) -> GeneratedImage:
        return await self.scheduler.submit(item, deadline)

    def generate_stream(self, item: ImageItem, deadline: float | None = None,
                        preview_every: int = 1) -> AsyncIterator[ImagePreview | GeneratedImage]:
        return self.scheduler.stream(item, deadline, preview_every)


def test_sse_error_mid_stream_is_an_error_event(one_thread: None) -> None:
    async def main() -> httpx.Response:
        app = create_app(InProcessBackend(), AppConfig(engine=TINY))
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client:
            return await client.post("/v1/images", json={"class_id": 2, "seed": 3, "num_steps": 4, "stream": True,
                                                         "preview_every": 1})

    r = asyncio.run(main())
    assert r.status_code == 200  # the stream had started
    events = sse_events(r.text)
    assert [name for name, _ in events] == ["preview", "error"]
    error = events[-1][1]["error"]
    assert error["code"] == "deadline_exceeded" and error["request_id"] == r.headers["X-Request-Id"]
