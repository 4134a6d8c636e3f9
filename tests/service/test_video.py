"""POST /v1/videos and gRPC GenerateVideo on real Ray Serve (the session fixture's main app serves an untrained
`djepa-video-tiny`: 8 frames of 16x16, GIF/WebP enlarged x2), decoded with Pillow and numpy."""

from __future__ import annotations

import asyncio
import io
from typing import Any

import grpc
import httpx
import numpy as np
import pytest
from PIL import Image, ImageSequence

from service.proto_gen.djepa.v1 import generation_pb2 as pb
from tests.service.conftest import Served
from tests.service.test_grpc import stub
from tests.service.test_serve import client, metric

FRAMES, SIZE, UPSCALE = 8, 16, 2
MAIN = (("application", "djepa"),)


def frames_of(data: bytes, fmt: str) -> list[np.ndarray]:
    """Every frame of an animated GIF or WebP, as grayscale uint8 arrays."""
    with Image.open(io.BytesIO(data)) as im:
        assert im.format == fmt
        return [np.asarray(frame.convert("L")) for frame in ImageSequence.Iterator(im)]


def test_gif_is_the_default_with_every_frame(served: Served) -> None:
    with client(served.url) as c:
        r = c.post("/v1/videos", json={"class_id": 3, "seed": 5})
        again = c.post("/v1/videos", json={"class_id": "3", "seed": 5})  # by class name
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "image/gif"
    assert (r.headers["x-seed"], r.headers["x-class-id"], r.headers["x-num-frames"]) == ("5", "3", str(FRAMES))
    assert r.headers["x-model"] == "djepa-video-tiny"
    frames = frames_of(r.content, "GIF")
    assert len(frames) == FRAMES and frames[0].shape == (SIZE * UPSCALE, SIZE * UPSCALE)
    with Image.open(io.BytesIO(r.content)) as im:
        assert im.info.get("loop") == 0 and abs(im.info["duration"] - 125) <= 5  # 8 fps (GIF: centiseconds), looping
    assert again.content == r.content  # same seed and settings, same clip


def test_num_frames_webp_and_npz_hold_the_same_clip(served: Served) -> None:
    body = {"class_id": 7, "seed": 2, "num_frames": 5}
    with client(served.url) as c:
        gif, webp, npz = (c.post("/v1/videos", json={**body, "response_format": f}) for f in ("gif", "webp", "npz"))
    assert [x.status_code for x in (gif, webp, npz)] == [200, 200, 200], npz.text
    assert (webp.headers["content-type"], npz.headers["content-type"]) == ("image/webp", "application/x-npz")
    arrays = np.load(io.BytesIO(npz.content), allow_pickle=False)
    raw = arrays["frames"]
    assert raw.shape == (5, SIZE, SIZE, 1) and raw.dtype == np.uint8  # native size
    assert (int(arrays["class_id"]), int(arrays["seed"]), float(arrays["fps"])) == (7, 2, 8.0)
    enlarged = raw[..., 0].repeat(UPSCALE, axis=1).repeat(UPSCALE, axis=2)
    for fmt, answer in (("GIF", gif), ("WEBP", webp)):  # lossless formats: the same pixels, enlarged
        frames = frames_of(answer.content, fmt)
        assert len(frames) == 5
        np.testing.assert_array_equal(np.stack(frames), enlarged)


def test_frame_by_frame_order_is_a_request_option(served: Served) -> None:
    with client(served.url) as c:
        random_order = c.post("/v1/videos", json={"class_id": 1, "seed": 4, "response_format": "npz"})
        frames_order = c.post("/v1/videos", json={"class_id": 1, "seed": 4, "response_format": "npz",
                                                  "order": "frames"})
    assert random_order.status_code == frames_order.status_code == 200
    a = np.load(io.BytesIO(random_order.content))["frames"]
    b = np.load(io.BytesIO(frames_order.content))["frames"]
    assert a.shape == b.shape and not np.array_equal(a, b)


def test_models_list_the_video_model(served: Served) -> None:
    with client(served.url) as c:
        data = c.get("/v1/models").json()["data"]
    card = next(m for m in data if m["modality"] == "video")
    assert card["id"] == "djepa-video-tiny" and card["classes"][9] == {"id": 9, "name": "9"}
    assert card["output"] == {"width": SIZE * UPSCALE, "height": SIZE * UPSCALE, "channels": 1, "format": "gif",
                              "num_frames": FRAMES, "fps": 8.0, "formats": ["gif", "webp", "npz"]}
    assert card["defaults"]["num_frames"] == FRAMES and card["defaults"]["order"] == "random"


@pytest.mark.parametrize(("body", "field"), [
    ({"class_id": 10}, "class_id"),
    ({"class_id": "ten"}, "class_id"),
    ({"class_id": 1.5}, "class_id"),
    ({}, "class_id"),
    ({"class_id": 1, "num_frames": 0}, "num_frames"),
    ({"class_id": 1, "num_frames": FRAMES + 1}, "num_frames"),
    ({"class_id": 1, "num_frames": "8"}, "num_frames"),
    ({"class_id": 1, "response_format": "mp4"}, "response_format"),
    ({"class_id": 1, "model": "djepa-tiny"}, "model"),
    ({"class_id": 1, "model": "nope"}, "model"),
    ({"class_id": 1, "order": "backwards"}, "order"),
    ({"class_id": 1, "seed": -1}, "seed"),
    ({"class_id": 1, "num_steps": 100000}, "num_steps"),
    ({"class_id": 1, "fps": 30}, "fps"),
])
def test_invalid_fields_answer_422_naming_the_field(served: Served, body: dict[str, object], field: str) -> None:
    with client(served.url) as c:
        r = c.post("/v1/videos", json=body)
    assert r.status_code == 422, r.text
    error = r.json()["error"]
    assert (error["field"], error["code"]) == (field, "invalid_request") and error["message"]


def test_malformed_json_answers_400(served: Served) -> None:
    with client(served.url) as c:
        r = c.post("/v1/videos", content=b'{"class_id": 1', headers={"content-type": "application/json"})
    assert r.status_code == 400 and r.json()["error"]["code"] == "malformed_request"


def test_apps_without_a_video_model_answer_501(served: Served) -> None:
    r = httpx.post(served.broken_url + "/v1/videos", json={"class_id": 1}, timeout=60)
    assert r.status_code == 501 and r.json()["error"]["code"] == "not_deployed"


def test_full_video_queue_answers_429(served: Served) -> None:
    async def burst() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=served.limited_url, timeout=60) as c:
            return await asyncio.gather(*[c.post("/v1/videos", json={"class_id": 1, "seed": i, "num_steps": 32})
                                          for i in range(8)])

    codes = sorted(r.status_code for r in asyncio.run(burst()))
    assert set(codes) <= {200, 429} and 429 in codes and 200 in codes, codes


def test_video_metrics_carry_the_video_modality(served: Served) -> None:
    with client(served.url) as c:
        before = metric(c.get("/metrics").text, "djepa_outputs_total", modality="video")
        assert c.post("/v1/videos", json={"class_id": 2, "seed": 1}).status_code == 200
        text = c.get("/metrics").text
    assert metric(text, "djepa_outputs_total", model="djepa-video-tiny", modality="video") - before == 1
    assert metric(text, "djepa_request_duration_seconds_count", endpoint="/v1/videos", status="200") >= 1


# gRPC: the same generator through Ray Serve's gRPC proxy


def test_grpc_generate_video_matches_rest(served: Served, channel: grpc.Channel) -> None:
    answer = stub(channel).GenerateVideo(pb.GenerateVideoRequest(class_id=6, seed=9), metadata=MAIN, timeout=60)
    assert (answer.model, answer.seed, answer.class_id, answer.content_type) == ("djepa-video-tiny", 9, 6,
                                                                                  "image/gif")
    assert len(frames_of(answer.data, "GIF")) == FRAMES
    npz = stub(channel).GenerateVideo(pb.GenerateVideoRequest(class_name="6", seed=9, num_frames=3,
                                                              response_format=pb.VIDEO_FORMAT_NPZ),
                                      metadata=MAIN, timeout=60)
    assert np.load(io.BytesIO(npz.data))["frames"].shape == (3, SIZE, SIZE, 1)
    rest = httpx.post(served.url + "/v1/videos", json={"class_id": 6, "seed": 9}, timeout=60)
    assert rest.content == answer.data  # one engine behind both doors
    models = stub(channel).ListModels(pb.ListModelsRequest(), metadata=MAIN, timeout=30).models
    video = next(m for m in models if m.modality == "video")
    assert (video.output.width, video.output.format, video.defaults["num_frames"]) == (SIZE * UPSCALE, "gif", FRAMES)


@pytest.mark.parametrize(("request_pb", "field"), [
    (pb.GenerateVideoRequest(class_id=10), "class_id"),
    (pb.GenerateVideoRequest(class_name="ten"), "class_id"),
    (pb.GenerateVideoRequest(), "class_id"),
    (pb.GenerateVideoRequest(class_id=1, num_frames=FRAMES + 1), "num_frames"),
    (pb.GenerateVideoRequest(class_id=1, num_frames=0), "num_frames"),
    (pb.GenerateVideoRequest(class_id=1, model="nope"), "model"),
    (pb.GenerateVideoRequest(class_id=1, response_format=7), "response_format"),  # type: ignore[arg-type]
])
def test_grpc_invalid_requests_answer_invalid_argument(channel: grpc.Channel, request_pb: Any, field: str) -> None:
    with pytest.raises(grpc.RpcError) as info:
        stub(channel).GenerateVideo(request_pb, metadata=MAIN, timeout=30)
    err: Any = info.value
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT and err.details().startswith(field)
    assert ("djepa-error-field", field) in tuple(err.trailing_metadata())
