"""POST /v1/speech, POST /v1/audio/speech and gRPC GenerateSpeech on real Ray Serve (the session fixture's main and
limited apps serve an untrained `djepa-speech-tiny` whose length model says 8 + 5 mel frames per symbol),
decoded with the standard library's `wave`, `soundfile` (FLAC) and numpy."""

from __future__ import annotations

import asyncio
import io
import wave
from pathlib import Path
from typing import Any

import grpc
import httpx
import numpy as np
import pytest

from service.proto_gen.djepa.v1 import generation_pb2 as pb
from tests.service.conftest import SPEECH_FRAMES_BIAS, SPEECH_FRAMES_PER_SYMBOL, Served
from tests.service.test_grpc import stub
from tests.service.test_serve import client, metric

RATE, HOP, MODEL = 22050, 256, "djepa-speech-tiny"
MAIN = (("application", "djepa"),)
TEXT = "hello world"  # 11 symbols: 8 + 5 x 11 = 63 mel frames = 16,128 samples at speed 1


def samples_of_wav(data: bytes) -> tuple[np.ndarray, int]:
    with wave.open(io.BytesIO(data), "rb") as w:
        assert (w.getnchannels(), w.getsampwidth()) == (1, 2)
        return np.frombuffer(w.readframes(w.getnframes()), dtype="<i2"), w.getframerate()


def expected_samples(symbols: int, speed: float = 1.0) -> int:
    return round((SPEECH_FRAMES_BIAS + SPEECH_FRAMES_PER_SYMBOL * symbols) / speed) * HOP


def test_wav_is_the_default_with_a_plausible_duration(served: Served) -> None:
    with client(served.url) as c:
        r = c.post("/v1/speech", json={"text": TEXT, "seed": 3})
        again = c.post("/v1/speech", json={"text": TEXT, "seed": 3})
        other = c.post("/v1/speech", json={"text": TEXT, "seed": 4})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "audio/wav"
    assert (r.headers["x-seed"], r.headers["x-model"], r.headers["x-sample-rate"]) == ("3", MODEL, str(RATE))
    samples, rate = samples_of_wav(r.content)
    assert rate == RATE and len(samples) == int(r.headers["x-samples"]) == expected_samples(len(TEXT))
    assert 0.04 <= len(samples) / rate / len(TEXT) <= 0.15  # seconds per character, as people speak
    assert samples.any()
    assert again.content == r.content  # same seed and text, same bytes
    assert other.status_code == 200 and other.content != r.content and len(other.content) == len(r.content)


def test_flac_and_pcm_hold_the_same_samples(served: Served) -> None:
    soundfile = pytest.importorskip("soundfile")
    body = {"text": "speak the same words", "seed": 8}
    with client(served.url) as c:
        wav, flac, pcm = (c.post("/v1/speech", json={**body, "response_format": f}) for f in ("wav", "flac", "pcm"))
    assert [x.status_code for x in (wav, flac, pcm)] == [200, 200, 200], pcm.text
    assert (flac.headers["content-type"], pcm.headers["content-type"]) == ("audio/flac", f"audio/pcm;rate={RATE}")
    assert flac.content[:4] == b"fLaC"
    reference, _ = samples_of_wav(wav.content)
    decoded, rate = soundfile.read(io.BytesIO(flac.content), dtype="int16")
    assert rate == RATE
    np.testing.assert_array_equal(decoded, reference)  # lossless
    np.testing.assert_array_equal(np.frombuffer(pcm.content, dtype="<i2"), reference)


def test_speed_divides_the_duration(served: Served) -> None:
    text = "a slower sentence"
    with client(served.url) as c:
        answers = {s: c.post("/v1/speech", json={"text": text, "seed": 1, "speed": s}) for s in (0.5, 1.0, 2.0)}
    for speed, r in answers.items():
        assert r.status_code == 200, r.text
        assert len(samples_of_wav(r.content)[0]) == expected_samples(len(text), speed)
    assert len(answers[0.5].content) > len(answers[1.0].content) > len(answers[2.0].content)


def test_batched_texts_of_different_lengths_answer_as_alone(served: Served) -> None:
    texts = ["hi", "a longer text to speak", "three words here", "and one more, a little longer than that"]

    async def together() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=served.url, timeout=60) as c:
            return await asyncio.gather(*[c.post("/v1/speech", json={"text": t, "seed": 2}) for t in texts])

    batched = asyncio.run(together())
    with client(served.url) as c:
        alone = [c.post("/v1/speech", json={"text": t, "seed": 2}) for t in texts]
    assert [r.status_code for r in batched + alone] == [200] * 8
    assert [r.content for r in batched] == [r.content for r in alone]  # padding does not change a row


def test_openai_alias_takes_the_openai_body(served: Served) -> None:
    with client(served.url) as c:
        ours = c.post("/v1/speech", json={"text": TEXT, "seed": 5, "speed": 1.5})
        alias = c.post("/v1/audio/speech", json={"input": TEXT, "model": MODEL, "voice": "default", "seed": 5,
                                                 "response_format": "wav", "speed": 1.5})
        voice_on_ours = c.post("/v1/speech", json={"text": TEXT, "seed": 5, "speed": 1.5, "voice": "default"})
    assert alias.status_code == 200, alias.text
    assert alias.headers["content-type"] == "audio/wav" and alias.content == ours.content == voice_on_ours.content


def test_models_list_the_speech_model(served: Served) -> None:
    with client(served.url) as c:
        data = c.get("/v1/models").json()["data"]
        ready = c.get("/readyz")
    card = next(m for m in data if m["modality"] == "speech")
    assert card["id"] == MODEL and card["classes"] == []
    assert card["output"] == {"width": 0, "height": 0, "channels": 1, "format": "wav", "sample_rate": RATE,
                              "max_text_chars": 500, "formats": ["wav", "flac", "pcm"], "voices": ["default"]}
    assert card["defaults"]["speed"] == 1.0 and card["defaults"]["voice"] == "default"
    assert ready.status_code == 200 and MODEL in ready.json()["models"]


@pytest.mark.parametrize(("path", "body", "field"), [
    ("/v1/speech", {"text": ""}, "text"),
    ("/v1/speech", {"text": "x" * 501}, "text"),  # over the configured 500 characters
    ("/v1/speech", {}, "text"),
    ("/v1/speech", {"text": 5}, "text"),
    ("/v1/speech", {"text": "hi", "response_format": "mp3"}, "response_format"),
    ("/v1/speech", {"text": "hi", "speed": 0.25}, "speed"),
    ("/v1/speech", {"text": "hi", "speed": 2.5}, "speed"),
    ("/v1/speech", {"text": "hi", "speed": "fast"}, "speed"),
    ("/v1/speech", {"text": "hi", "seed": -1}, "seed"),
    ("/v1/speech", {"text": "hi", "model": "djepa-tiny"}, "model"),
    ("/v1/speech", {"text": "hi", "model": "tts-1"}, "model"),
    ("/v1/speech", {"text": "hi", "voice": "alloy"}, "voice"),
    ("/v1/speech", {"text": "hi", "lang": "en"}, "lang"),
    ("/v1/audio/speech", {"input": "hi", "voice": "alloy"}, "voice"),
    ("/v1/audio/speech", {"input": "hi", "text": "ho"}, "text"),
    ("/v1/audio/speech", {"input": "", "voice": "default"}, "text"),
    ("/v1/audio/speech", {"input": "hi", "response_format": "opus"}, "response_format"),
])
def test_invalid_fields_answer_422_naming_the_field(served: Served, path: str, body: dict[str, object],
                                                    field: str) -> None:
    with client(served.url) as c:
        r = c.post(path, json=body)
    assert r.status_code == 422, r.text
    error = r.json()["error"]
    assert (error["field"], error["code"]) == (field, "invalid_request") and error["message"]


@pytest.mark.parametrize(("body", "says"), [
    ({"text": "..."}, "nothing to say"),  # empty after normalization
    ({"text": "x" * 60}, "at most 48"),  # more symbols than the model takes
    ({"text": "x" * 45, "speed": 0.5}, "longer than the model"),  # too long at this speed
])
def test_texts_the_model_cannot_take_answer_422_with_its_message(served: Served, body: dict[str, object],
                                                                 says: str) -> None:
    with client(served.url) as c:
        r = c.post("/v1/speech", json=body)
    assert r.status_code == 422, r.text
    error = r.json()["error"]
    assert error["field"] == "text" and says in error["message"]


def test_openapi_documents_the_speech_routes(served: Served) -> None:
    with client(served.url) as c:
        schema = c.get("/openapi.json").json()
    assert {"/v1/speech", "/v1/audio/speech"} <= set(schema["paths"])
    body = schema["components"]["schemas"]["SpeechBody"]["properties"]
    for field in ("text", "input", "seed", "model", "voice", "response_format", "speed"):
        assert body[field].get("description"), field
    assert "audio/wav" in schema["paths"]["/v1/speech"]["post"]["responses"]["200"]["content"]


def test_malformed_json_answers_400(served: Served) -> None:
    with client(served.url) as c:
        r = c.post("/v1/speech", content=b'{"text": "hi"', headers={"content-type": "application/json"})
    assert r.status_code == 400 and r.json()["error"]["code"] == "malformed_request"


def test_a_passed_deadline_answers_504(served: Served) -> None:
    with client(served.url) as c:
        r = c.post("/v1/speech", json={"text": TEXT}, headers={"X-Request-Timeout": "0.001"})
    assert r.status_code == 504 and r.json()["error"]["code"] == "deadline_exceeded"


def test_full_speech_queue_answers_429(served: Served) -> None:
    async def burst() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=served.limited_url, timeout=60) as c:
            return await asyncio.gather(*[c.post("/v1/speech", json={"text": "x" * 40, "seed": i})
                                          for i in range(12)])

    answers = asyncio.run(burst())
    codes = sorted(r.status_code for r in answers)
    assert set(codes) <= {200, 429} and 429 in codes and 200 in codes, codes
    assert all(r.headers["retry-after"] == "2" for r in answers if r.status_code == 429)


def test_api_keys_guard_the_speech_routes(served: Served) -> None:
    """The faulty app asks for keys and deploys no speech model: 401 without a key, 501 with one."""
    anonymous = httpx.post(served.faulty_url + "/v1/speech", json={"text": "hi"}, timeout=60)
    keyed = httpx.post(served.faulty_url + "/v1/audio/speech", json={"input": "hi"}, timeout=60,
                       headers={"Authorization": f"Bearer {served.api_key}"})
    assert anonymous.status_code == 401 and anonymous.headers["www-authenticate"] == "Bearer"
    error = keyed.json()["error"]
    assert keyed.status_code == 501 and (error["code"], error["message"]) == ("not_deployed",
                                                                             "no speech model is deployed")


def test_a_speech_model_that_fails_to_load_is_not_ready_with_the_reason(served: Served) -> None:
    r = httpx.post(served.broken_url + "/v1/speech", json={"text": "hi"}, timeout=60)
    assert r.status_code == 503 and r.json()["error"]["code"] == "not_ready"
    message = r.json()["error"]["message"]
    assert message.startswith("the speech model failed to load") and "/" not in message  # no paths
    assert httpx.get(served.broken_url + "/readyz", timeout=60).status_code == 503


def test_a_missing_default_voice_is_a_clear_reason(tmp_path: Path) -> None:
    from service.config import EngineConfig
    from service.speech_engine import load_speech_bundle

    with pytest.raises(FileNotFoundError, match="embedded default voice"):
        load_speech_bundle(EngineConfig(), default=tmp_path / "default_speech.safetensors")


def test_speech_metrics_carry_the_speech_modality(served: Served) -> None:
    with client(served.url) as c:
        before = metric(c.get("/metrics").text, "djepa_outputs_total", modality="speech")
        assert c.post("/v1/speech", json={"text": "count me", "seed": 1}).status_code == 200
        assert c.post("/v1/audio/speech", json={"input": "count me", "voice": "nobody"}).status_code == 422
        text = c.get("/metrics").text
    assert metric(text, "djepa_outputs_total", model=MODEL, modality="speech") - before == 1
    assert metric(text, "djepa_request_duration_seconds_count", endpoint="/v1/speech", status="200") >= 1
    assert metric(text, "djepa_request_duration_seconds_count", endpoint="/v1/audio/speech", status="422") >= 1
    assert metric(text, "djepa_batch_size_count", model=MODEL) >= 1
    assert metric(text, "djepa_generation_duration_seconds_count", model=MODEL) >= 1
    assert metric(text, "djepa_queue_wait_seconds_count", model=MODEL) >= 1
    assert metric(text, "djepa_rejected_total", model=MODEL, reason="invalid") >= 1


# gRPC: the same generator through Ray Serve's gRPC proxy


def test_grpc_streams_the_same_audio_as_rest(served: Served, channel: grpc.Channel) -> None:
    text = "stream this sentence in chunks"  # 8 + 5 x 30 = 158 frames: 80,896 bytes of PCM, two chunks
    request = pb.GenerateSpeechRequest(text=text, seed=6, speed=1.0, response_format=pb.AUDIO_FORMAT_PCM)
    chunks = list(stub(channel).GenerateSpeech(request, metadata=MAIN, timeout=60))
    rest = httpx.post(served.url + "/v1/speech", json={"text": text, "seed": 6, "speed": 1.0,
                                                       "response_format": "pcm"}, timeout=60)
    assert rest.status_code == 200, rest.text
    assert len(chunks) == 2 and all(0 < len(c.data) <= 65536 for c in chunks)
    first = chunks[0]
    assert (first.content_type, first.sample_rate, first.seed) == (f"audio/pcm;rate={RATE}", RATE, 6)
    assert all((c.content_type, c.sample_rate) == ("", 0) for c in chunks[1:])
    assert b"".join(c.data for c in chunks) == rest.content  # one engine behind both doors
    wav = list(stub(channel).GenerateSpeech(pb.GenerateSpeechRequest(text=TEXT, seed=3), metadata=MAIN, timeout=60))
    assert wav[0].content_type == "audio/wav"
    assert samples_of_wav(b"".join(c.data for c in wav))[0].size == expected_samples(len(TEXT))
    models = stub(channel).ListModels(pb.ListModelsRequest(), metadata=MAIN, timeout=30).models
    speech = next(m for m in models if m.modality == "speech")
    assert (speech.id, speech.output.sample_rate, speech.output.max_text_chars, speech.output.format) == (
        MODEL, RATE, 500, "wav")


@pytest.mark.parametrize(("request_pb", "field"), [
    (pb.GenerateSpeechRequest(), "text"),
    (pb.GenerateSpeechRequest(text="x" * 501), "text"),
    (pb.GenerateSpeechRequest(text="..."), "text"),
    (pb.GenerateSpeechRequest(text="hi", speed=3.0), "speed"),
    (pb.GenerateSpeechRequest(text="hi", model="nope"), "model"),
    (pb.GenerateSpeechRequest(text="hi", seed=-2), "seed"),
    (pb.GenerateSpeechRequest(text="hi", response_format=9), "response_format"),  # type: ignore[arg-type]
])
def test_grpc_invalid_requests_answer_invalid_argument(channel: grpc.Channel, request_pb: Any, field: str) -> None:
    with pytest.raises(grpc.RpcError) as info:
        list(stub(channel).GenerateSpeech(request_pb, metadata=MAIN, timeout=30))
    err: Any = info.value  # a stream that fails before its first chunk: Ray's proxy keeps the code and details only
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT and err.details().startswith(field + ": ")


def test_client_writes_speech_over_both_transports(served: Served, tmp_path: Path) -> None:
    from djepa_core.cli import main

    common = ["speech", "--text", TEXT, "--seed", "3"]
    assert main(["client", *common, "--url", served.url, "--out", str(tmp_path / "rest.wav")]) == 0
    assert main(["client", *common, "--transport", "grpc", "--target", served.grpc_target, "--application", "djepa",
                 "--out", str(tmp_path / "grpc.wav")]) == 0
    assert (tmp_path / "rest.wav").read_bytes() == (tmp_path / "grpc.wav").read_bytes()
    assert samples_of_wav((tmp_path / "rest.wav").read_bytes())[1] == RATE
