"""The gRPC ingress on real Ray Serve (its gRPC proxy), over real gRPC calls on loopback."""

from __future__ import annotations

import asyncio
import io
import time
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase
from PIL import Image

from service.proto_gen.djepa.v1 import generation_pb2 as pb
from service.proto_gen.djepa.v1 import generation_pb2_grpc as pb_grpc
from tests.service.conftest import Served
from tests.service.test_serve import metric

MAIN = (("application", "djepa"),)  # two apps are served: the metadata key `application` picks one
LIMITED = (("application", "limited"),)
RPC = "/djepa.v1.Generation/"


def stub(channel: grpc.Channel) -> Any:
    return pb_grpc.GenerationStub(channel)


def failure(call: Any) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as info:
        call()
    return info.value


def test_generate_images_answers_pngs_and_matches_rest(served: Served, channel: grpc.Channel) -> None:
    answer = stub(channel).GenerateImages(pb.GenerateImagesRequest(class_id=3, n=2, seed=11), metadata=MAIN,
                                          timeout=60)
    assert answer.model == "djepa-tiny" and answer.created > 0
    assert [(i.seed, i.class_id, i.width, i.height) for i in answer.images] == [(11, 3, 16, 16), (12, 3, 16, 16)]
    assert Image.open(io.BytesIO(answer.images[0].png)).size == (16, 16)
    named = stub(channel).GenerateImages(pb.GenerateImagesRequest(class_name="3", seed=11), metadata=MAIN, timeout=60)
    raw = httpx.post(served.url + "/v1/images", json={"class_id": 3, "seed": 11, "response_format": "png"}, timeout=60)
    assert named.images[0].png == answer.images[0].png == raw.content  # one engine behind both doors


def test_list_models(channel: grpc.Channel) -> None:
    models = stub(channel).ListModels(pb.ListModelsRequest(), metadata=MAIN, timeout=30).models
    assert [m.id for m in models] == ["djepa-tiny", "djepa-video-tiny", "djepa-speech-tiny"]
    assert models[0].modality == "image"
    assert (models[0].classes[3].id, models[0].classes[3].name) == (3, "3")
    assert models[0].output.width == 16 and models[0].defaults["num_steps"] == 4


def test_speech_and_video_answer_unimplemented(served: Served, channel: grpc.Channel) -> None:
    # an app without a speech generator (the main one has one: test_speech.py)
    no_speech = (("application", "faulty"), ("authorization", f"Bearer {served.api_key}"))
    speech = failure(lambda: list(stub(channel).GenerateSpeech(pb.GenerateSpeechRequest(text="hi"), metadata=no_speech,
                                                                timeout=30)))
    no_video = (("application", "broken"),)  # an app without a video generator (the main one has one: test_video.py)
    video = failure(lambda: stub(channel).GenerateVideo(pb.GenerateVideoRequest(class_id=1), metadata=no_video,
                                                        timeout=30))
    assert (speech.code(), speech.details()) == (grpc.StatusCode.UNIMPLEMENTED, "no speech model is deployed")
    assert (video.code(), video.details()) == (grpc.StatusCode.UNIMPLEMENTED, "no video model is deployed")


@pytest.mark.parametrize(("request_", "field"), [
    (pb.GenerateImagesRequest(class_id=10), "class_id"),
    (pb.GenerateImagesRequest(class_name="cat"), "class_id"),
    (pb.GenerateImagesRequest(), "class_id"),
    (pb.GenerateImagesRequest(class_id=1, n=17), "n"),
    (pb.GenerateImagesRequest(class_id=1, n=0), "n"),
    (pb.GenerateImagesRequest(class_id=1, model="dall-e-3"), "model"),
    (pb.GenerateImagesRequest(class_id=1, num_steps=0), "num_steps"),
    (pb.GenerateImagesRequest(class_id=1, cfg_scale=-1), "cfg_scale"),
    (pb.GenerateImagesRequest(class_id=1, temperature=0), "temperature"),
    (pb.GenerateImagesRequest(class_id=1, seed=-1), "seed"),
])
def test_invalid_fields_answer_invalid_argument_naming_the_field(channel: grpc.Channel, request_: Any,
                                                                  field: str) -> None:
    error = failure(lambda: stub(channel).GenerateImages(request_, metadata=MAIN, timeout=30))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert (error.details() or "").startswith(f"{field}: ")
    assert dict(error.trailing_metadata() or ())["djepa-error-field"] == field


def test_bad_timeout_metadata_is_invalid_argument(channel: grpc.Channel) -> None:
    error = failure(lambda: stub(channel).GenerateImages(pb.GenerateImagesRequest(class_id=1),
                                                         metadata=(*MAIN, ("x-request-timeout", "soon")), timeout=30))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT and (error.details() or "").startswith("x-request-timeout")


def test_deadlines_answer_deadline_exceeded_and_the_service_goes_on(served: Served, channel: grpc.Channel) -> None:
    heavy = pb.GenerateImagesRequest(class_id=1, n=16, num_steps=64)
    # the service's own deadline (metadata, as REST's X-Request-Timeout): our mapping, our message
    own = failure(lambda: stub(channel).GenerateImages(heavy, metadata=(*MAIN, ("x-request-timeout", "0.05")),
                                                       timeout=60))
    assert own.code() == grpc.StatusCode.DEADLINE_EXCEEDED and "0.05s" in (own.details() or "")
    # the client's gRPC deadline: the call ends then, and the ingress stops the request (not counted as OK)
    client = failure(lambda: stub(channel).GenerateImages(heavy, metadata=MAIN, timeout=0.2))
    assert client.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    for _ in range(100):
        text = httpx.get(served.url + "/metrics", timeout=30).text
        if metric(text, "djepa_request_duration_seconds_count", endpoint=RPC + "GenerateImages",
                  status="CANCELLED") + metric(text, "djepa_request_duration_seconds_count",
                                                endpoint=RPC + "GenerateImages", status="DEADLINE_EXCEEDED") >= 2:
            break
        time.sleep(0.1)
    else:
        pytest.fail("the client's expired call was not ended at the ingress")
    assert metric(text, "djepa_requests_in_flight", model="djepa-tiny") == 0
    assert len(stub(channel).GenerateImages(pb.GenerateImagesRequest(class_id=1), metadata=MAIN,
                                            timeout=60).images) == 1


def test_full_queue_answers_resource_exhausted(served: Served) -> None:
    async def burst() -> list[grpc.StatusCode]:
        async with grpc.aio.insecure_channel(served.grpc_target) as ch:
            s = pb_grpc.GenerationStub(ch)

            async def one(i: int) -> grpc.StatusCode:
                try:
                    await s.GenerateImages(pb.GenerateImagesRequest(class_id=1, seed=i, num_steps=32),
                                           metadata=LIMITED, timeout=60)
                    return grpc.StatusCode.OK
                except grpc.aio.AioRpcError as e:
                    assert e.code() != grpc.StatusCode.RESOURCE_EXHAUSTED or \
                        dict(e.trailing_metadata() or ())["retry-after"] == "2"
                    return e.code()

            return await asyncio.gather(*[one(i) for i in range(8)])

    codes = asyncio.run(burst())
    assert set(codes) <= {grpc.StatusCode.OK, grpc.StatusCode.RESOURCE_EXHAUSTED}, codes
    assert grpc.StatusCode.OK in codes and grpc.StatusCode.RESOURCE_EXHAUSTED in codes


def test_grpc_and_rest_requests_are_batched_together(served: Served) -> None:
    async def burst() -> tuple[list[Any], list[httpx.Response]]:
        async with grpc.aio.insecure_channel(served.grpc_target) as ch, \
                httpx.AsyncClient(base_url=served.url, timeout=60) as http:
            s = pb_grpc.GenerationStub(ch)
            grpc_calls = [s.GenerateImages(pb.GenerateImagesRequest(class_id=i, seed=100 + i), metadata=MAIN,
                                           timeout=60) for i in range(8)]
            rest_calls = [http.post("/v1/images", json={"class_id": i, "seed": 200 + i}) for i in range(8)]
            both = await asyncio.gather(*grpc_calls, *rest_calls)
            return list(both[:8]), list(both[8:])

    before = httpx.get(served.url + "/metrics", timeout=30).text
    grpc_answers, rest_answers = asyncio.run(burst())
    after = httpx.get(served.url + "/metrics", timeout=30).text
    assert [a.images[0].seed for a in grpc_answers] == [100 + i for i in range(8)]
    assert all(r.status_code == 200 for r in rest_answers)
    images = metric(after, "djepa_batch_size_sum") - metric(before, "djepa_batch_size_sum")
    passes = metric(after, "djepa_batch_size_count") - metric(before, "djepa_batch_size_count")
    assert images == 16 and passes < 16, f"16 images in {passes} passes: no batching"
    done = metric(after, "djepa_request_duration_seconds_count", endpoint=RPC + "GenerateImages", status="OK") - \
        metric(before, "djepa_request_duration_seconds_count", endpoint=RPC + "GenerateImages", status="OK")
    assert done == 8  # gRPC requests are counted, with the RPC as endpoint


def test_reflection_lists_the_service_and_health_answers(channel: grpc.Channel) -> None:
    services = set(ProtoReflectionDescriptorDatabase(channel).get_services())
    assert {"djepa.v1.Generation", "grpc.health.v1.Health"} <= services
    health = health_pb2_grpc.HealthStub(channel)
    for name in ("", "djepa.v1.Generation"):
        answer = health.Check(health_pb2.HealthCheckRequest(service=name), metadata=MAIN, timeout=30)
        assert answer.status == health_pb2.HealthCheckResponse.SERVING
    unknown = failure(lambda: health.Check(health_pb2.HealthCheckRequest(service="x"), metadata=MAIN, timeout=30))
    assert unknown.code() == grpc.StatusCode.NOT_FOUND


def test_ray_serve_own_health_and_application_list(channel: grpc.Channel) -> None:
    from ray.serve.generated import serve_pb2, serve_pb2_grpc

    ray_api = serve_pb2_grpc.RayServeAPIServiceStub(channel)
    pb2: Any = serve_pb2  # Ray ships no stubs for its generated messages
    assert ray_api.Healthz(pb2.HealthzRequest(), timeout=30).message == "success"
    names = set(ray_api.ListApplications(pb2.ListApplicationsRequest(), timeout=30).application_names)
    assert {"djepa", "limited"} <= names  # and the reliability apps of conftest.py


def test_client_writes_images_over_both_transports(served: Served, tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    from djepa_core.cli import main

    common = ["--class-id", "4", "-n", "2", "--seed", "5"]
    assert main(["client", "image", *common, "--url", served.url, "--out", str(tmp_path / "rest")]) == 0
    assert main(["client", "image", *common, "--transport", "grpc", "--target", served.grpc_target,
                 "--application", "djepa", "--out", str(tmp_path / "grpc")]) == 0
    names = ["class4_seed5.png", "class4_seed6.png"]
    assert sorted(p.name for p in (tmp_path / "rest").iterdir()) == names
    for name in names:
        assert (tmp_path / "rest" / name).read_bytes() == (tmp_path / "grpc" / name).read_bytes()
    code = main(["client", "speech", "--text", "hi", "--transport", "grpc", "--target", served.grpc_target,
                 "--application", "broken", "--out", str(tmp_path / "a.wav")])  # its speech model failed to load
    assert code == 1 and "UNAVAILABLE: the speech model failed to load" in capsys.readouterr().err
    assert not (tmp_path / "a.wav").exists()
