"""Reliability on real Ray Serve: deadlines and disconnects skip unstarted work, a killed generator
fails its requests fast (503 / UNAVAILABLE) and comes back, a model that fails to load is never served.

The kill and the skip tests use the "faulty" app of the session fixture (API keys on), so the other
tests' apps are never disturbed.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from typing import Any

import grpc
import httpx
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from service.errors import DeadlineExceeded, NotReady, translate
from service.proto_gen.djepa.v1 import generation_pb2 as pb
from service.proto_gen.djepa.v1 import generation_pb2_grpc as pb_grpc
from service.types import ImageItem
from tests.service.conftest import Served
from tests.service.test_serve import metric


def generator(app: str) -> Any:
    from ray import serve

    return serve.get_deployment_handle("ImageGenerator", app_name=app)


def stats(app: str) -> dict[str, Any]:
    answer: dict[str, Any] = generator(app).work_stats.remote().result(timeout_s=60)
    return answer


def skipped(app: str) -> int:
    return sum(stats(app)["skipped"].values())


def keyed(served: Served) -> dict[str, str]:
    return {"Authorization": f"Bearer {served.api_key}"}


def busy(app: str, items: int) -> list[Any]:
    """Fill the generator of `app` with `items` heavy items (handle calls, answers awaited later). Each has its
    own temperature, so a batch of them runs as one forward pass per item, one after another: long enough, even
    on an idle machine, for a caller's hang-up or deadline to reach the generator before the next batch."""
    handle = generator(app)
    return [handle.generate.remote(ImageItem(1, i, 16, 2.0, 1.0 + i / 1000)) for i in range(items)]


def test_an_expired_item_is_skipped_at_batch_start(served: Served) -> None:
    before = stats("faulty")["skipped"].get("deadline", 0)
    from service.deployments import LATE  # imports Ray Serve: not at collection

    late = generator("faulty").generate.remote(ImageItem(1, 0, 4, 1.0, 1.0), time.time() - 1)
    assert late.result(timeout_s=60) == LATE  # refused on arrival
    ahead = busy("faulty", 24)  # a batch and a half ahead: the next item waits past its deadline
    queued = generator("faulty").generate.remote(ImageItem(1, 99, 4, 1.0, 1.0), time.time() + 0.2)
    refused = queued.result(timeout_s=60)  # dropped when its batch started
    assert refused == LATE and isinstance(refused.error(), DeadlineExceeded)
    for r in ahead:
        r.result(timeout_s=120)
    assert stats("faulty")["skipped"].get("deadline", 0) - before == 2


def test_a_tiny_deadline_answers_504_and_its_work_is_skipped(served: Served) -> None:
    before_skipped = skipped("faulty")
    with httpx.Client(base_url=served.faulty_url, timeout=60, headers=keyed(served)) as c:
        before = metric(c.get("/metrics").text, "djepa_rejected_total", reason="deadline")
        ahead = busy("faulty", 24)
        r = c.post("/v1/images", json={"class_id": 2, "seed": 1}, headers={"X-Request-Timeout": "0.1"})
        for a in ahead:
            a.result(timeout_s=120)
        after = metric(c.get("/metrics").text, "djepa_rejected_total", reason="deadline")
    assert r.status_code == 504 and r.json()["error"]["code"] == "deadline_exceeded"
    assert after - before == 1
    assert skipped("faulty") - before_skipped >= 1  # dropped before its batch (deadline or cancel), never run


def test_a_client_that_disconnects_cancels_its_queued_work(served: Served) -> None:
    before = skipped("faulty")
    ahead = busy("faulty", 24)
    with httpx.Client(base_url=served.faulty_url, timeout=0.3, headers=keyed(served)) as c, \
            pytest.raises(httpx.ReadTimeout):
        c.post("/v1/images", json={"class_id": 3, "n": 4, "seed": 5})  # the client gives up and hangs up
    for a in ahead:
        a.result(timeout_s=120)
    for _ in range(100):  # the proxy notices the disconnect, the ingress cancels, the generator drops the items
        if skipped("faulty") - before >= 4:
            break
        time.sleep(0.1)
    assert skipped("faulty") - before >= 4, stats("faulty")


def test_skipped_work_is_exported_on_rays_metrics_port(served: Served) -> None:
    """The generator's skip count also goes to Ray's metrics port (summed over replicas by Prometheus)."""
    if not served.ray_metrics_url:
        pytest.skip("the fixture has no Ray metrics port")
    counted = skipped("faulty")
    assert counted > 0  # the tests above skipped work
    exported = 0.0
    for _ in range(60):  # Ray exports every second or so
        text = httpx.get(served.ray_metrics_url, timeout=30).text
        exported = sum(metric(text, name, model="djepa-faulty")
                       for name in ("djepa_skipped_items_total", "ray_djepa_skipped_items_total"))
        if exported >= counted:
            break
        time.sleep(0.5)
    assert exported == counted


def test_a_killed_generator_fails_fast_then_comes_back(served: Served) -> None:
    pid = stats("faulty")["pid"]

    async def in_flight() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=served.faulty_url, timeout=60, headers=keyed(served)) as c:
            ahead = busy("faulty", 24)  # a batch running, more queued
            calls = [asyncio.ensure_future(c.post("/v1/images", json={"class_id": 1, "n": 4, "num_steps": 8,
                                                                      "seed": i})) for i in range(4)]
            await asyncio.sleep(0.3)
            os.kill(pid, signal.SIGKILL)
            answers = list(await asyncio.gather(*calls))
            for a in ahead:  # the calls in the dead replica fail fast too, as unavailable
                try:
                    await a
                except Exception as e:
                    assert isinstance(translate(e), NotReady), repr(e)
            return answers

    t0 = time.monotonic()
    answers = asyncio.run(in_flight())
    codes = [r.status_code for r in answers]
    assert set(codes) <= {200, 503} and 503 in codes, [r.text for r in answers]
    assert time.monotonic() - t0 < 60  # failed fast, not after the client's timeout
    for r in answers:
        if r.status_code == 503:
            assert r.json()["error"]["code"] == "not_ready" and "Traceback" not in r.text
    with httpx.Client(base_url=served.faulty_url, timeout=60, headers=keyed(served)) as c:
        for _ in range(240):  # Ray restarts the replica
            if c.get("/readyz").status_code == 200:
                break
            time.sleep(0.5)
        else:
            pytest.fail("the killed generator did not come back")
        assert c.post("/v1/images", json={"class_id": 1, "seed": 2}).status_code == 200
    assert stats("faulty")["pid"] != pid


def test_a_model_that_fails_to_load_is_never_served(served: Served) -> None:
    with httpx.Client(base_url=served.broken_url, timeout=60) as c:
        ready = c.get("/readyz")
        images = c.post("/v1/images", json={"class_id": 1})
        models = c.get("/v1/models")
        alive = c.get("/healthz")
    assert ready.status_code == 503 and "the model failed to load: ValueError" in ready.json()["error"]["message"]
    assert images.status_code == 503 and models.status_code == 503
    assert images.json()["error"]["code"] == "not_ready" and "failed to load" in images.json()["error"]["message"]
    assert alive.status_code == 200  # the process lives: liveness is not readiness
    broken = (("application", "broken"),)
    with grpc.insecure_channel(served.grpc_target) as channel:
        health = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), metadata=broken,
                                                           timeout=60)
        assert health.status == health_pb2.HealthCheckResponse.NOT_SERVING
        stub: Any = pb_grpc.GenerationStub(channel)
        with pytest.raises(grpc.RpcError) as info:
            stub.GenerateImages(pb.GenerateImagesRequest(class_id=1), metadata=broken, timeout=60)
        assert info.value.code() == grpc.StatusCode.UNAVAILABLE
