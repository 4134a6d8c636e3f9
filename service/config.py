"""Typed configuration of the image service (the `args` and `user_config` blocks of deploy/serve.yaml).

Dicts are read with strict keys (an unknown key is an error that names it), as djepa_core's configs.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from djepa_core.config import from_dict_strict
from djepa_core.fastpath import FastPath

# grpc_options.grpc_servicer_functions (deploy/serve.yaml): the services Ray Serve's gRPC proxy registers;
# it routes each RPC to the ingress deployment's method of the same name (GenerateImages, ..., Check, Watch)
GRPC_SERVICER_FUNCTIONS = (
    "service.proto_gen.djepa.v1.generation_pb2_grpc.add_GenerationServicer_to_server",
    "grpc_health.v1.health_pb2_grpc.add_HealthServicer_to_server",
)


@dataclass(frozen=True)
class EngineConfig:
    """Which model bundle the engine loads, and where it runs.

    Source, first given wins: `checkpoint` (our .safetensors), `reference` + `vae` (a reference .pth
    imported at load), `preset` (an untrained preset, for tests and smoke runs), else the embedded
    default model, else an untrained `djepa-s`.
    """

    checkpoint: str | None = None
    reference: str | None = None  # reference .pth (needs `vae`)
    vae: str | None = None  # MAR's KL-16 VAE weights for `reference`
    preset: str | None = None
    init_seed: int = 0  # random init of an untrained preset
    name: str | None = None  # model id served (default: the checkpoint's config name)
    device: str = "cpu"  # "cpu", "cuda", "cuda:1", ...
    threads: int | None = None  # torch intra-op threads in this process (None: torch's default)
    # opt-in fast paths (djepa_core/fastpath.py): "bf16" autocast; torch.compile of "head", "backbone" or "all"
    precision: str = "fp32"
    compile: str = "none"
    compile_mode: str = "default"  # "reduce-overhead": CUDA graphs (GPU replicas)
    # service-wide sampling defaults over the model's own (None: the model's)
    num_steps: int | None = None
    cfg_scale: float | None = None
    temperature: float | None = None
    head_steps: int | None = None
    max_num_steps: int = 256  # largest `num_steps` a request may ask for

    def __post_init__(self) -> None:
        if self.reference is not None and self.vae is None:
            raise ValueError("engine: `reference` needs `vae` (the VAE weights the reference was trained with)")
        if self.threads is not None and self.threads < 1:
            raise ValueError(f"engine: threads must be >= 1, got {self.threads}")
        if self.max_num_steps < 1:
            raise ValueError(f"engine: max_num_steps must be >= 1, got {self.max_num_steps}")
        try:
            self.fast_path()
        except ValueError as e:
            raise ValueError(f"engine: {e}") from None

    def fast_path(self) -> FastPath:
        return FastPath(precision=self.precision, compile=self.compile,  # type: ignore[arg-type]
                        compile_mode=self.compile_mode)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EngineConfig:
        return from_dict_strict(cls, data, "engine")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


BATCHING_MODES = ("static", "continuous")


@dataclass(frozen=True)
class BatchConfig:
    """The image generator's batching, its `user_config` (changeable live via reconfigure): `@serve.batch`
    parameters, or continuous batching and its limits."""

    max_batch_size: int = 16
    batch_wait_timeout_s: float = 0.01
    # "static": `@serve.batch` above (whole requests per forward pass); "continuous": the step scheduler
    # (scheduler.py): images join and leave at AR step boundaries (streams with previews use it either way)
    batching: str = "static"
    max_in_flight: int = 32  # continuous: images advanced together, one AR step per forward pass
    max_waiting: int = 64  # continuous: images waiting for a slot; past in flight + waiting: 429

    def __post_init__(self) -> None:
        if self.max_batch_size < 1:
            raise ValueError(f"max_batch_size must be >= 1, got {self.max_batch_size}")
        if self.batching not in BATCHING_MODES:
            raise ValueError(f"batching must be one of {', '.join(BATCHING_MODES)}, got {self.batching!r}")
        if self.max_in_flight < 1 or self.max_waiting < 0:
            raise ValueError(f"max_in_flight must be >= 1 and max_waiting >= 0, got {self.max_in_flight}, "
                             f"{self.max_waiting}")
        if not 0 <= self.batch_wait_timeout_s <= 60:
            raise ValueError(f"batch_wait_timeout_s must be in [0, 60], got {self.batch_wait_timeout_s}")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BatchConfig:
        return from_dict_strict(cls, data, "user_config")


@dataclass(frozen=True)
class VideoConfig:
    """The video generator of an application (`args.video` of deploy/serve.yaml; absent: no video model).

    `engine` names the model as the image engine does (no checkpoint and no preset: the embedded default
    video model, else an untrained `djepa-video-tiny`). GIF and WebP answers play at `fps` with every
    pixel enlarged `upscale` times (nearest); `.npz` answers keep the native size.
    """

    engine: EngineConfig = field(default_factory=EngineConfig)
    fps: float = 8.0
    upscale: int = 4

    def __post_init__(self) -> None:
        if not 0 < self.fps <= 100:
            raise ValueError(f"video: fps must be in (0, 100], got {self.fps}")
        if not 1 <= self.upscale <= 32:
            raise ValueError(f"video: upscale must be in [1, 32], got {self.upscale}")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> VideoConfig:
        data = dict(data)
        engine = EngineConfig.from_dict(dict(data.pop("engine", None) or {}))
        if not engine.fast_path().plain:
            raise ValueError("video: engine precision / compile are for image models only (for now)")
        return dataclasses.replace(from_dict_strict(cls, data, "video"), engine=engine)


@dataclass(frozen=True)
class SpeechConfig:
    """The speech generator of an application (`args.speech` of deploy/serve.yaml; absent: no speech model).

    `engine` names the model (`checkpoint`: a djepa speech .safetensors; `preset`: an untrained speech preset, for
    smoke runs; neither: the embedded default voice, and the generator stays not ready, with the reason, while
    this build ships none). Texts are 1 to `max_text_chars` characters; the Griffin-Lim vocoder runs
    `vocoder_iters` iterations; `voice` is the name of the one voice (OpenAI's `voice` field).
    """

    engine: EngineConfig = field(default_factory=EngineConfig)
    max_text_chars: int = 500
    vocoder_iters: int = 32
    voice: str = "default"

    def __post_init__(self) -> None:
        if not 1 <= self.max_text_chars <= 100_000:
            raise ValueError(f"speech: max_text_chars must be in [1, 100000], got {self.max_text_chars}")
        if not 1 <= self.vocoder_iters <= 1000:
            raise ValueError(f"speech: vocoder_iters must be in [1, 1000], got {self.vocoder_iters}")
        if not self.voice:
            raise ValueError("speech: voice must be a non-empty name")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SpeechConfig:
        data = dict(data)
        engine = EngineConfig.from_dict(dict(data.pop("engine", None) or {}))
        if not engine.fast_path().plain:
            raise ValueError("speech: engine precision / compile are for image models only (for now)")
        return dataclasses.replace(from_dict_strict(cls, data, "speech"), engine=engine)


@dataclass(frozen=True)
class AppConfig:
    """The application's `args`: the engine plus the ingress's limits."""

    engine: EngineConfig = field(default_factory=EngineConfig)
    max_images_per_request: int = 16  # `n` above this is a 422
    request_timeout_s: float = 60.0  # deadline of a request (504 past it); X-Request-Timeout may lower it
    retry_after_s: int = 1  # Retry-After of a 429
    ready_timeout_s: float = 5.0  # how long /readyz waits for the generator's answer
    max_body_bytes: int = 65536  # a larger request body is a 413
    # API keys (`Authorization: Bearer <key>`; gRPC metadata `authorization`): from a file (one key a
    # line, `#` comments) and/or the environment variable named here (keys separated by commas or
    # whitespace). Neither set: no keys asked. Health, readiness and metrics stay open.
    api_keys_file: str | None = None
    api_keys_env: str | None = None
    video: VideoConfig | None = None  # the video generator (None: POST /v1/videos answers 501 not_deployed)
    speech: SpeechConfig | None = None  # the speech generator (None: POST /v1/speech answers 501 not_deployed)

    def __post_init__(self) -> None:
        if not 1 <= self.max_images_per_request <= 1024:
            raise ValueError(f"max_images_per_request must be in [1, 1024], got {self.max_images_per_request}")
        if self.max_body_bytes < 1024:
            raise ValueError(f"max_body_bytes must be >= 1024, got {self.max_body_bytes}")
        if self.request_timeout_s <= 0 or self.ready_timeout_s <= 0:
            raise ValueError("request_timeout_s and ready_timeout_s must be > 0")
        if self.retry_after_s < 0:
            raise ValueError(f"retry_after_s must be >= 0, got {self.retry_after_s}")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AppConfig:
        data = dict(data)
        engine = EngineConfig.from_dict(dict(data.pop("engine", None) or {}))
        video_data = data.pop("video", None)
        video = VideoConfig.from_dict(dict(video_data)) if video_data is not None else None
        speech_data = data.pop("speech", None)
        speech = SpeechConfig.from_dict(dict(speech_data)) if speech_data is not None else None
        rest = from_dict_strict(cls, data, "args")
        return dataclasses.replace(rest, engine=engine, video=video, speech=speech)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)
