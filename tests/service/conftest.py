"""One Ray Serve session for the service tests: a private local Ray on loopback (service/ray_local.py),
free HTTP and gRPC ports chosen at run time, several apps (the main one, a tightly limited one, and for
test_reliability*/test_security*: "faulty", API keys on, whose generator a test kills, and "broken", whose
checkpoints (image and speech) are not checkpoints), shut down at the end."""

from __future__ import annotations

import faulthandler
import secrets
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from service.config import GRPC_SERVICER_FUNCTIONS, AppConfig, EngineConfig, SpeechConfig, VideoConfig

# Ray + Serve + the six apps start in ~40 s on 2 idle cores (several minutes on a loaded machine); past this
# the session is stuck: dump every thread's stack to the real stderr (pytest captures sys.stderr) and exit
SETUP_LIMIT_S = 600
TINY = EngineConfig(preset="djepa-tiny", threads=1)
# the video generator of the main and limited apps: an untrained tiny video preset (8 frames of 16x16), GIF/WebP x2
TINY_VIDEO = VideoConfig(engine=EngineConfig(preset="djepa-video-tiny", threads=1), upscale=2)
VIDEO_OPTIONS: dict[str, Any] = {"ray_actor_options": {"num_cpus": 0.1},
                                 "user_config": {"max_batch_size": 8, "batch_wait_timeout_s": 0.05}}
LIMITED_VIDEO_OPTIONS: dict[str, Any] = {"ray_actor_options": {"num_cpus": 0.05}, "max_ongoing_requests": 1,
                                         "max_queued_requests": 1,
                                         "user_config": {"max_batch_size": 1, "batch_wait_timeout_s": 0.0}}
# Ray has 2 CPUs here: the replicas of these apps reserve 1.89 of them (0.04 the speech ones), leaving room for the
# apps a test module adds (test_streaming.py: 0.1); a replica that does not fit is never placed and the session hangs
SPEECH_OPTIONS: dict[str, Any] = {"ray_actor_options": {"num_cpus": 0.02},
                                  "user_config": {"max_batch_size": 8, "batch_wait_timeout_s": 0.05}}
LIMITED_SPEECH_OPTIONS: dict[str, Any] = {"ray_actor_options": {"num_cpus": 0.01}, "max_ongoing_requests": 1,
                                          "max_queued_requests": 1,
                                          "user_config": {"max_batch_size": 1, "batch_wait_timeout_s": 0.0}}
# the speech model of the main and limited apps (test_speech.py): an untrained `djepa-speech-tiny` (texts of at
# most 48 symbols, 256 mel frames = 2.97 s) whose length model says 8 + 5 frames per symbol (58 ms)
SPEECH_FRAMES_PER_SYMBOL, SPEECH_FRAMES_BIAS = 5.0, 8.0


def tiny_speech_checkpoint(path: Path) -> SpeechConfig:
    """Save the tiny speech model at `path`; the speech config that serves it."""
    import torch

    from djepa_core.speech_pipeline import SPEECH_PRESETS, SpeechGenerator, save_speech_generator

    gen = SpeechGenerator.from_config(SPEECH_PRESETS["djepa-speech-tiny"], seed=0)
    with torch.no_grad():
        gen.model.length_model.durations.fill_(SPEECH_FRAMES_PER_SYMBOL)
        gen.model.length_model.bias.fill_(SPEECH_FRAMES_BIAS)
    save_speech_generator(path, gen)
    return SpeechConfig(engine=EngineConfig(checkpoint=str(path), threads=1), vocoder_iters=8)


# the limited app: one image at a time, one queued, so a burst overflows the queue (429)
LIMITED_OPTIONS = {"ImageGenerator": {"max_ongoing_requests": 1, "max_queued_requests": 1,
                                      "user_config": {"max_batch_size": 1, "batch_wait_timeout_s": 0.0}}}


# the reliability apps take little of Ray's CPUs (their replicas idle but for their own tests)
SMALL: dict[str, dict[str, Any]] = {
    "ImageGenerator": {"ray_actor_options": {"num_cpus": 0.05}, "max_ongoing_requests": 32},
    "Ingress": {"ray_actor_options": {"num_cpus": 0.05}}}


@dataclass
class Served:
    url: str  # the main app, at /
    limited_url: str  # the limited app, at /limited
    grpc_target: str  # Ray Serve's gRPC proxy, "127.0.0.1:port"; metadata `application` picks the app
    faulty_url: str = ""  # app "faulty" at /faulty: API keys on (`api_key`), its generator may be killed
    broken_url: str = ""  # app "broken" at /broken: its model fails to load
    api_key: str = ""
    ray_metrics_url: str = ""  # Ray's metrics port (ray_serve_*): "http://127.0.0.1:port/metrics"


@pytest.fixture
def channel(served: Served) -> Iterator[Any]:
    """A gRPC channel to Ray Serve's gRPC proxy (metadata `application` picks the app)."""
    import grpc

    with grpc.insecure_channel(served.grpc_target) as ch:
        yield ch


@pytest.fixture(scope="session")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    pytest.importorskip("ray.serve")
    from ray import serve

    from service import ray_local
    from service.deployments import build_app

    faulthandler.dump_traceback_later(SETUP_LIMIT_S, exit=True, file=sys.__stderr__ or sys.stderr)
    try:
        ray_local.start_ray(num_cpus=2, metrics_port=ray_local.free_port())  # scraped by test_prometheus.py
        local = ray_local.start_serve(access_log=False, grpc_servicer_functions=GRPC_SERVICER_FUNCTIONS)
        speech = tiny_speech_checkpoint(tmp_path_factory.mktemp("speech") / "tiny_speech.safetensors")
        main = AppConfig(engine=TINY, request_timeout_s=30, video=TINY_VIDEO, speech=speech)
        serve.run(build_app(main, {"ImageGenerator": {"user_config": {"max_batch_size": 16,
                                                                       "batch_wait_timeout_s": 0.05}},
                                   "VideoGenerator": VIDEO_OPTIONS, "SpeechGenerator": SPEECH_OPTIONS}),
                  name="djepa", route_prefix="/")
        serve.run(build_app(AppConfig(engine=TINY, retry_after_s=2, video=TINY_VIDEO, speech=speech),
                            {**LIMITED_OPTIONS, "VideoGenerator": LIMITED_VIDEO_OPTIONS,
                             "SpeechGenerator": LIMITED_SPEECH_OPTIONS}), name="limited",
                  route_prefix="/limited")
        folder = tmp_path_factory.mktemp("reliability")
        api_key = secrets.token_urlsafe(24)
        (folder / "keys").write_text(f"# API keys of the faulty app\n{secrets.token_urlsafe(24)}\n{api_key}\n")
        (folder / "broken.safetensors").write_bytes(b"\x00" * 64)  # not a checkpoint
        # small limits: every request the fuzz test (test_fuzz.py) makes valid stays cheap
        faulty = AppConfig(engine=EngineConfig(preset="djepa-tiny", threads=1, name="djepa-faulty", max_num_steps=8),
                           api_keys_file=str(folder / "keys"), request_timeout_s=30, max_images_per_request=4)
        broken = AppConfig(engine=EngineConfig(checkpoint=str(folder / "broken.safetensors"), threads=1),
                           ready_timeout_s=10, speech=SpeechConfig(engine=EngineConfig(
                               checkpoint=str(folder / "broken.safetensors"), threads=1)))
        serve.run(build_app(faulty, SMALL), name="faulty", route_prefix="/faulty")
        serve.run(build_app(broken, {**SMALL, "SpeechGenerator": {"ray_actor_options": {"num_cpus": 0.01}}}),
                  name="broken", route_prefix="/broken")
    except BaseException:
        ray_local.shutdown()
        raise
    finally:
        faulthandler.cancel_dump_traceback_later()
    try:
        yield Served(url=local.url, limited_url=local.url + "/limited",
                     grpc_target=f"{ray_local.LOOPBACK}:{local.grpc_port}", faulty_url=local.url + "/faulty",
                     broken_url=local.url + "/broken", api_key=api_key,
                     ray_metrics_url=f"http://{ray_local.LOOPBACK}:{local.metrics_port}/metrics")
    finally:
        ray_local.shutdown()
