"""Security: API keys (REST and gRPC, on the real "faulty" app of the session fixture), error bodies
without internals, loopback by default; the key rules themselves without Ray."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest

from djepa_core.cli import build_parser
from service.auth import ApiKeys
from service.cli import LOOPBACK, load_plan
from service.config import AppConfig
from service.errors import Unauthenticated
from service.ingress.http import create_app
from service.proto_gen.djepa.v1 import generation_pb2 as pb
from service.proto_gen.djepa.v1 import generation_pb2_grpc as pb_grpc
from service.types import GeneratedImage, ImageItem, ModelInfo
from tests.service.conftest import Served

FAULTY = (("application", "faulty"),)
KEY_A, KEY_B = "a" * 20 + "-first-key", "b" * 20 + "-second-key"


# ---------------------------------------------------------------- the key rules (no Ray)

def test_keys_from_a_file_and_an_environment_variable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "keys").write_text(f"# comment\n\n{KEY_A}  # trailing comment\n")
    monkeypatch.setenv("DJEPA_TEST_KEYS", f"{KEY_B}, {'c' * 24}")
    keys = ApiKeys.from_sources(tmp_path / "keys", "DJEPA_TEST_KEYS")
    assert keys is not None and len(keys) == 3
    for good in (KEY_A, KEY_B, "c" * 24):
        keys.check(f"Bearer {good}")
    keys.check(f"bearer   {KEY_A}  ")  # the scheme is case-insensitive
    assert ApiKeys.from_sources(None, None) is None  # nothing configured: nothing asked


@pytest.mark.parametrize("header", [None, "", "Bearer", f"Basic {KEY_A}", f"Bearer {KEY_A}x", f"Bearer {KEY_A[:-1]}",
                                    f"{KEY_A}", "Bearer " + "x" * 10000])
def test_every_failure_is_the_same_unauthenticated(header: str | None) -> None:
    keys = ApiKeys([KEY_A, KEY_B])
    with pytest.raises(Unauthenticated) as info:
        keys.check(header)
    assert info.value.message == "missing or invalid API key"


def test_misconfigured_keys_fail_at_start(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DJEPA_NO_SUCH_VAR", raising=False)
    with pytest.raises(ValueError, match="DJEPA_NO_SUCH_VAR"):
        ApiKeys.from_sources(None, "DJEPA_NO_SUCH_VAR")
    with pytest.raises(ValueError, match="no such file"):
        ApiKeys.from_sources(tmp_path / "missing", None)
    (tmp_path / "short").write_text("short\n")
    with pytest.raises(ValueError, match="shorter than"):
        ApiKeys.from_sources(tmp_path / "short", None)
    (tmp_path / "empty").write_text("# nothing\n")
    with pytest.raises(ValueError, match="no API keys"):
        ApiKeys.from_sources(tmp_path / "empty", None)


# ---------------------------------------------------------------- REST and gRPC on real Ray Serve

def test_rest_asks_for_a_key_and_leaves_probes_open(served: Served) -> None:
    good = {"Authorization": f"Bearer {served.api_key}"}
    with httpx.Client(base_url=served.faulty_url, timeout=60) as c:
        answers = [c.post("/v1/images", json={"class_id": 1}, headers=h) for h in (
            {}, {"Authorization": "Bearer wrong-key-wrong-key-wrong"}, {"Authorization": f"Basic {served.api_key}"})]
        answers.append(c.get("/v1/models"))
        answers.append(c.post("/v1/images", content=b"{not json"))  # a 401 comes before any parsing
        ok = c.post("/v1/images", json={"class_id": 1, "seed": 3}, headers=good)
        models = c.get("/v1/models", headers=good)
        probes = [c.get(p) for p in ("/healthz", "/readyz", "/metrics", "/openapi.json")]
    bodies = set()
    for r in answers:
        assert r.status_code == 401, r.text
        assert r.headers["www-authenticate"] == "Bearer"
        error = r.json()["error"]
        bodies.add((error["code"], error["message"]))
    assert bodies == {("unauthorized", "missing or invalid API key")}  # never says which part failed
    assert ok.status_code == 200, ok.text
    assert ok.json()["model"] == "djepa-faulty" and models.status_code == 200
    assert [p.status_code for p in probes] == [200, 200, 200, 200]


def test_grpc_asks_for_the_key_in_metadata(served: Served) -> None:
    with grpc.insecure_channel(served.grpc_target) as channel:
        stub: Any = pb_grpc.GenerationStub(channel)
        request = pb.GenerateImagesRequest(class_id=2, seed=1)
        for md in (FAULTY, (*FAULTY, ("authorization", "Bearer not-the-key-not-the-key"))):
            with pytest.raises(grpc.RpcError) as info:
                stub.GenerateImages(request, metadata=md, timeout=60)
            assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
            assert info.value.details() == "missing or invalid API key"
        answer = stub.GenerateImages(request, metadata=(*FAULTY, ("authorization", f"Bearer {served.api_key}")),
                                     timeout=60)
        assert answer.model == "djepa-faulty" and len(answer.images) == 1


# ---------------------------------------------------------------- no internals in error bodies

class ExplodingBackend:
    """A backend whose failure message holds a path, as a real one's might."""

    async def model_info(self) -> ModelInfo:
        return ModelInfo(id="m", modality="image", classes=("a", "b"), width=8, height=8, channels=1,
                         defaults={"num_steps": 1, "cfg_scale": 1.0, "temperature": 1.0})

    async def generate(self, item: ImageItem, deadline: float | None = None) -> GeneratedImage:
        raise RuntimeError("cannot open /srv/secret/models/weights.safetensors")


def test_an_internal_error_answers_500_without_stack_or_path() -> None:
    app = create_app(ExplodingBackend(), AppConfig())

    async def go() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
            return await c.post("/v1/images", json={"class_id": "a"}, headers={"x-request-id": "req-42"})

    r = asyncio.run(go())
    assert r.status_code == 500
    text = r.text
    assert "/srv" not in text and "secret" not in text and "Traceback" not in text and "RuntimeError" not in text
    assert r.json() == {"error": {"code": "internal_error", "message": "internal error (request id req-42)",
                                  "request_id": "req-42"}}


def test_a_model_that_failed_to_load_names_no_path(served: Served) -> None:
    r = httpx.get(served.broken_url + "/readyz", timeout=60)
    assert r.status_code == 503
    message = r.json()["error"]["message"]
    assert "failed to load" in message and "broken" not in message and "/" not in message.replace("<path>", "")


def test_request_ids_are_echoed_only_when_plain(served: Served) -> None:
    with httpx.Client(base_url=served.url, timeout=60) as c:
        plain = c.post("/v1/images", json={"class_id": 99}, headers={"x-request-id": "abc-123"})
        odd = c.post("/v1/images", json={"class_id": 99}, headers={"x-request-id": "<script>" + "x" * 100})
    assert plain.json()["error"]["request_id"] == "abc-123"
    assert "<script>" not in odd.text and json.loads(odd.text)["error"]["request_id"] != ""


# ---------------------------------------------------------------- loopback unless told otherwise

def test_serve_binds_loopback_unless_told_otherwise(tmp_path: Path) -> None:
    args = build_parser().parse_args(["serve", "--config", str(tmp_path / "none.yaml")])
    assert args.host is None  # the flag has no default of its own: the config's, else loopback
    bare = tmp_path / "bare.yaml"
    bare.write_text("applications:\n  - name: x\n    args: {}\n")
    assert load_plan(bare).host == LOOPBACK == "127.0.0.1"
    assert load_plan(None).host == LOOPBACK
    assert load_plan(bare, host="0.0.0.0").host == "0.0.0.0"  # only when asked


def test_serve_flags_set_api_keys(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    keys.write_text(KEY_A + "\n")
    args = build_parser().parse_args(["serve", "--api-keys-file", str(keys), "--api-keys-env", "MY_KEYS"])
    assert args.api_keys_file == keys and args.api_keys_env == "MY_KEYS"
    bare = tmp_path / "bare.yaml"
    bare.write_text("applications:\n  - name: x\n    args: {api_keys_env: FROM_FILE}\n")
    plan = load_plan(bare, app_overrides={"api_keys_file": str(keys), "api_keys_env": None})
    assert (plan.config.api_keys_file, plan.config.api_keys_env) == (str(keys), "FROM_FILE")
