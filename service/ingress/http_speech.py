"""REST routes of the speech generator: `POST /v1/speech` and its OpenAI-style alias `POST /v1/audio/speech`
(service.md), added to the app of http.py.

One body for both: `text` (or OpenAI's `input`), `seed`, `model`, `voice` (the default voice's name, GET
/v1/models), `response_format` (`wav` default, `flac`, `pcm`: 16-bit little-endian mono) and `speed`. The answer
is the audio bytes with `X-Seed`, `X-Model`, `X-Sample-Rate` and `X-Samples` headers. Errors take the one
mapping of errors.py; with no speech model deployed both routes answer 501 `not_deployed`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, Literal

from fastapi import FastAPI, Request, Response
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from service.batching import MAX_NAME_CHARS, MAX_SPEED, MIN_SPEED, expand_speech
from service.errors import InvalidRequest
from service.ingress.common import SpeechBackend, generate_speech
from service.ingress.http_media import MediaRoute, Rendered
from service.metrics import ServiceMetrics
from service.types import GeneratedSpeech, ModelInfo, SpeechRequest

Name = Annotated[str, StringConstraints(max_length=MAX_NAME_CHARS)]
SPEECH_PATHS = ("/v1/speech", "/v1/audio/speech")


class SpeechBody(BaseModel):
    """A text to speak."""

    model_config = ConfigDict(extra="forbid", strict=True, json_schema_extra={"examples": [
        {"text": "Hello there, how are you?", "seed": 7}, {"input": "Hello.", "voice": "default", "speed": 1.5}]})

    text: str | None = Field(None, description="The text to speak: 1 to the configured maximum of characters (GET "
                                                "/v1/models: output.max_text_chars; 500 by default). Required "
                                                "unless `input` gives it.")
    input: str | None = Field(None, description="OpenAI compatibility: the text, when `text` is absent.")
    seed: int | None = Field(None, ge=0, description="Seed of the audio: same seed, text and settings, same "
                                                     "bytes. Random when absent.")
    model: Name | None = Field(None, description="Speech model id (GET /v1/models); default: the served one.")
    voice: Name | None = Field(None, description="Voice name (GET /v1/models: output.voices); the model has one.")
    response_format: Literal["wav", "flac", "pcm"] = Field(
        "wav", description="`wav` (16-bit PCM, default), `flac` (lossless, the same samples) or `pcm` (raw 16-bit "
                           "little-endian mono samples at the model's sample rate).")
    speed: float | None = Field(None, ge=MIN_SPEED, le=MAX_SPEED, allow_inf_nan=False,
                                description=f"Speaking rate, {MIN_SPEED} to {MAX_SPEED} (default 1): the "
                                            "duration is divided by it.")

    def to_domain(self) -> SpeechRequest:
        if self.text is not None and self.input is not None and self.text != self.input:
            raise InvalidRequest("give the text as `text` or as `input`, not both", "text")
        text = self.text if self.text is not None else self.input
        if text is None:
            raise InvalidRequest("give `text` (the text to speak)", "text")
        return SpeechRequest(text=text, seed=self.seed, speed=self.speed, model=self.model, voice=self.voice,
                             response_format=self.response_format)


def add_speech_routes(app: FastAPI, backend: SpeechBackend | None, stats: ServiceMetrics,
                      deadline_of: Callable[[Request], float], request_id_of: Callable[[Request], str],
                      errors: dict[int | str, dict[str, Any]] | None = None) -> None:
    """Register POST /v1/speech and POST /v1/audio/speech on `app` (backend None: every call answers 501)."""
    route = MediaRoute("speech", backend, stats, deadline_of, request_id_of)

    def render(info: ModelInfo, result: GeneratedSpeech) -> Rendered:
        out = result.output
        return out.data, out.media_type, {"X-Seed": str(out.seed), "X-Model": info.id,
                                          "X-Sample-Rate": str(out.sample_rate), "X-Samples": str(out.samples)}

    async def speak(body: SpeechBody, request: Request) -> Response:
        return await route.answer(request, lambda info: expand_speech(body.to_domain(), info), generate_speech,
                                  render)

    media: dict[int | str, dict[str, Any]] = {200: {
        "description": "The audio: audio/wav, audio/flac, or audio/pcm;rate=<sample rate> (16-bit little-endian "
                       "mono samples).",
        "content": {"audio/wav": {}, "audio/flac": {}, "audio/pcm": {}}}}

    @app.post(SPEECH_PATHS[0], responses={**media, **(errors or {})}, response_class=Response,
              summary="Speak a text")
    async def create_speech(body: SpeechBody, request: Request) -> Response:
        return await speak(body, request)

    @app.post(SPEECH_PATHS[1], responses={**media, **(errors or {})}, response_class=Response,
              summary="OpenAI-style alias of POST /v1/speech")
    async def create_speech_openai(body: SpeechBody, request: Request) -> Response:
        return await speak(body, request)
