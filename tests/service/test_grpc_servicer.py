"""The gRPC servicer over an injected backend on a plain in-process grpc.aio server (no Ray): the
codes a healthy Ray fixture cannot produce (UNAVAILABLE, INTERNAL), conversions, generated code."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import grpc
import pytest

from service.ingress.grpc import GenerationServicer, grpc_timeout_s, image_request_from_pb
from service.metrics import ServiceMetrics
from service.proto_gen.djepa.v1 import generation_pb2 as pb
from service.proto_gen.djepa.v1 import generation_pb2_grpc as pb_grpc
from service.types import ImageRequest
from tests.service.test_http import INFO, FailingBackend, NotReadyBackend

ROOT = Path(__file__).resolve().parents[2]


class _Adapter(pb_grpc.GenerationServicer):
    """grpc.aio's servicer shape over GenerationServicer (Ray Serve's proxy does this in deployments.py)."""

    def __init__(self, servicer: GenerationServicer) -> None:
        self.s = servicer

    async def GenerateImages(self, request: Any, context: Any) -> Any:
        return await self.s.generate_images(request, context)

    async def GenerateSpeech(self, request: Any, context: Any) -> AsyncIterator[Any]:
        async for chunk in self.s.generate_speech(request, context):
            yield chunk

    async def ListModels(self, request: Any, context: Any) -> Any:
        return await self.s.list_models(request, context)


def with_server(backend: Any, test: Callable[[Any, ServiceMetrics], Awaitable[None]]) -> None:
    async def go() -> None:
        metrics = ServiceMetrics()
        server = grpc.aio.server()
        pb_grpc.add_GenerationServicer_to_server(_Adapter(GenerationServicer(backend, metrics=metrics)), server)
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        try:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
                await test(pb_grpc.GenerationStub(channel), metrics)
        finally:
            await server.stop(None)

    asyncio.run(go())


def test_not_ready_answers_unavailable() -> None:
    async def test(stub: Any, metrics: ServiceMetrics) -> None:
        calls = (stub.GenerateImages(pb.GenerateImagesRequest(class_id=0)), stub.ListModels(pb.ListModelsRequest()))
        for call in calls:
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await call
            assert info.value.code() == grpc.StatusCode.UNAVAILABLE and "loading" in (info.value.details() or "")

    with_server(NotReadyBackend(), test)


def test_unexpected_failure_answers_internal_without_internals() -> None:
    async def test(stub: Any, metrics: ServiceMetrics) -> None:
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await stub.GenerateImages(pb.GenerateImagesRequest(class_id=1))
        error = info.value
        assert error.code() == grpc.StatusCode.INTERNAL
        assert "secret" not in (error.details() or "") and "CUDA" not in (error.details() or "")
        trailing = dict(error.trailing_metadata() or ())
        assert trailing["x-request-id"] in (error.details() or "")  # the id to find it in the logs
        # bad input is never INTERNAL, even over a failing backend
        with pytest.raises(grpc.aio.AioRpcError) as bad:
            await stub.GenerateImages(pb.GenerateImagesRequest(class_name="z"))
        assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        text = metrics.exposition()[0].decode()
        assert 'endpoint="/djepa.v1.Generation/GenerateImages",model="fake",status="INTERNAL"' in text

    with_server(FailingBackend(), test)


def test_speech_answers_unimplemented_in_process() -> None:
    async def test(stub: Any, metrics: ServiceMetrics) -> None:
        with pytest.raises(grpc.aio.AioRpcError) as info:
            _ = [c async for c in stub.GenerateSpeech(pb.GenerateSpeechRequest(text="hello"))]
        assert info.value.code() == grpc.StatusCode.UNIMPLEMENTED
        assert info.value.details() == "no speech model is deployed"

    with_server(FailingBackend(), test)


def test_protobuf_to_domain_keeps_absent_fields_absent() -> None:
    assert image_request_from_pb(pb.GenerateImagesRequest(class_name="b")) == ImageRequest(class_id="b")
    full = pb.GenerateImagesRequest(class_id=1, n=2, seed=0, cfg_scale=0.0, temperature=0.5, num_steps=3, model="m")
    assert image_request_from_pb(full) == ImageRequest(1, 2, 0, 0.0, 0.5, 3, "m")  # zeros are given, not absent
    assert INFO.id == "fake"


def test_grpc_timeout_header() -> None:
    assert grpc_timeout_s("250m") == pytest.approx(0.25) and grpc_timeout_s("2S") == 2.0
    assert grpc_timeout_s("") is None and grpc_timeout_s("xS") is None


def test_generated_code_is_current() -> None:
    result = subprocess.run([sys.executable, "scripts/gen_proto.py", "--check"], cwd=ROOT, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr
