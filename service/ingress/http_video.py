"""REST route of the video generator: `POST /v1/videos` (service.md), added to the app of http.py.

Answers the media bytes: GIF (default), animated WebP or `.npz` (frames uint8 [T, H, W, C], fps,
class_id, seed), with `X-Seed`, `X-Class-Id`, `X-Num-Frames` and `X-Model` headers. Errors take the
one mapping of errors.py; with no video model deployed the route answers 501 `not_deployed`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, Literal

from fastapi import FastAPI, Request, Response
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from service.batching import MAX_NAME_CHARS, expand_video
from service.ingress.common import VideoBackend, generate_video
from service.ingress.http_media import MediaRoute, Rendered
from service.metrics import ServiceMetrics
from service.types import GeneratedVideo, ModelInfo, VideoRequest

Name = Annotated[str, StringConstraints(max_length=MAX_NAME_CHARS)]


class VideoGenerationBody(BaseModel):
    """A request for one clip of one class."""

    model_config = ConfigDict(extra="forbid", strict=True,
                              json_schema_extra={"examples": [{"class_id": 3, "seed": 7, "num_frames": 8}]})

    class_id: int | Name = Field(description="Class to generate: its integer id, or its name as listed by "
                                             "GET /v1/models.")
    seed: int | None = Field(None, ge=0, description="Seed of the clip: same seed and settings, same clip. "
                                                     "Random when absent.")
    num_frames: int | None = Field(None, ge=1, description="Frames, 1 to the model's clip length (GET /v1/models: "
                                                           "output.num_frames). Default: all of them.")
    cfg_scale: float | None = Field(None, ge=0, allow_inf_nan=False,
                                    description="Classifier-free guidance scale (1 disables it). Default: the model's.")
    temperature: float | None = Field(None, gt=0, allow_inf_nan=False, description="Sampling temperature (> 0).")
    num_steps: int | None = Field(None, ge=1, description="Masked-autoregressive steps over all space-time tokens.")
    order: Literal["random", "frames"] | None = Field(
        None, description="Generation order: `random` over all space-time tokens (default) or `frames` (frame by "
                          "frame).")
    model: Name | None = Field(None, description="Video model id (GET /v1/models); default: the served one.")
    response_format: Literal["gif", "webp", "npz"] = Field(
        "gif", description="`gif` (looping, default), `webp` (animated, lossless) or `npz` (numpy frames uint8 "
                           "[T, H, W, C] at the native size, with fps, class_id and seed).")

    def to_domain(self) -> VideoRequest:
        return VideoRequest(class_id=self.class_id, seed=self.seed, num_frames=self.num_frames,
                            cfg_scale=self.cfg_scale, temperature=self.temperature, num_steps=self.num_steps,
                            order=self.order, model=self.model, response_format=self.response_format)


def add_video_routes(app: FastAPI, backend: VideoBackend | None, stats: ServiceMetrics,
                     deadline_of: Callable[[Request], float], request_id_of: Callable[[Request], str],
                     errors: dict[int | str, dict[str, Any]] | None = None) -> None:
    """Register POST /v1/videos on `app` (backend None: no video model, every call answers 501)."""
    route = MediaRoute("video", backend, stats, deadline_of, request_id_of)

    def render(info: ModelInfo, result: GeneratedVideo) -> Rendered:
        out = result.output
        return out.data, out.media_type, {"X-Seed": str(out.seed), "X-Class-Id": str(out.class_id),
                                          "X-Num-Frames": str(out.num_frames), "X-Model": info.id}

    media: dict[int | str, dict[str, Any]] = {200: {
        "description": "The clip: image/gif, image/webp or application/x-npz.",
        "content": {"image/gif": {}, "image/webp": {}, "application/x-npz": {}}}}

    @app.post("/v1/videos", responses={**media, **(errors or {})}, response_class=Response,
              summary="Generate a video clip of one class")
    async def create_video(body: VideoGenerationBody, request: Request) -> Response:
        return await route.answer(request, lambda info: expand_video(body.to_domain(), info), generate_video, render)
