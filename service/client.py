"""`djepa client image|speech|video`: call a running service over REST or gRPC and write the outputs
to files. Registered through the `djepa.commands` entry point (pyproject), as `djepa serve`.

    djepa client image --class-id 3 -n 2 --seed 0 --out out/           # REST, http://127.0.0.1:8000
    djepa client image --class-id 3 --transport grpc --out out/         # gRPC, 127.0.0.1:9000
    djepa client speech --text "hello" --out hello.wav                  # WAV (--format flac / pcm)
"""

from __future__ import annotations

import argparse
import base64
import sys
from pathlib import Path
from typing import Any

DEFAULT_URL = "http://127.0.0.1:8000"
DEFAULT_TARGET = "127.0.0.1:9000"


class ClientError(Exception):
    """The service answered an error: `status` is the HTTP status or the gRPC code name."""

    def __init__(self, status: str, message: str) -> None:
        super().__init__(f"{status}: {message}")


def _class_ref(value: str) -> int | str:
    return int(value) if value.lstrip("-").isdigit() else value


def _write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


# REST

def _rest(args: argparse.Namespace, path: str, body: dict[str, Any]) -> bytes | dict[str, Any]:
    import httpx

    r = httpx.post(args.url.rstrip("/") + path, json={k: v for k, v in body.items() if v is not None},
                   timeout=args.timeout)
    if r.status_code != 200:
        try:
            message = str(r.json()["error"]["message"])
        except (ValueError, KeyError, TypeError):
            message = r.text[:200] or r.reason_phrase
        raise ClientError(str(r.status_code), message)
    if r.headers.get("content-type", "").startswith("application/json"):
        answer: dict[str, Any] = r.json()
        return answer
    return r.content


# gRPC

def _grpc_call(args: argparse.Namespace, rpc: str, request: Any) -> Any:
    import grpc

    from service.proto_gen.djepa.v1 import generation_pb2_grpc as pb_grpc

    metadata = (("application", args.application),) if args.application else ()
    with grpc.insecure_channel(args.target) as channel:
        stub_class: Any = pb_grpc.GenerationStub  # generated, untyped
        method = getattr(stub_class(channel), rpc)
        try:
            answer = method(request, metadata=metadata, timeout=args.timeout)
            return list(answer) if rpc == "GenerateSpeech" else answer
        except grpc.RpcError as e:
            raise ClientError(e.code().name, e.details() or "") from None


def image(args: argparse.Namespace) -> list[Path]:
    fields = {"n": args.n, "seed": args.seed, "cfg_scale": args.cfg_scale, "temperature": args.temperature,
              "num_steps": args.num_steps, "model": args.model}
    class_ref = _class_ref(args.class_id)
    if args.transport == "grpc":
        from service.proto_gen.djepa.v1 import generation_pb2 as pb

        kwargs: dict[str, Any] = {k: v for k, v in fields.items() if v is not None}
        kwargs["class_id" if isinstance(class_ref, int) else "class_name"] = class_ref
        answer = _grpc_call(args, "GenerateImages", pb.GenerateImagesRequest(**kwargs))
        images = [(i.png, i.seed, i.class_id) for i in answer.images]
    else:
        body = _rest(args, "/v1/images", {"class_id": class_ref, **fields})
        assert isinstance(body, dict)
        images = [(base64.b64decode(d["b64_json"]), d["seed"], d["class_id"]) for d in body["data"]]
    return [_write(args.out / f"class{c}_seed{s}.png", png) for png, s, c in images]


def speech(args: argparse.Namespace) -> list[Path]:
    if args.transport == "grpc":
        from service.proto_gen.djepa.v1 import generation_pb2 as pb

        fmt = {"wav": pb.AUDIO_FORMAT_WAV, "flac": pb.AUDIO_FORMAT_FLAC, "pcm": pb.AUDIO_FORMAT_PCM}[args.format]
        request = pb.GenerateSpeechRequest(text=args.text, response_format=fmt, **{
            k: v for k, v in {"seed": args.seed, "model": args.model, "speed": args.speed}.items() if v is not None})
        data = b"".join(chunk.data for chunk in _grpc_call(args, "GenerateSpeech", request))
    else:
        body = _rest(args, "/v1/speech", {"text": args.text, "seed": args.seed, "model": args.model,
                                          "speed": args.speed, "response_format": args.format})
        assert isinstance(body, bytes)
        data = body
    return [_write(args.out, data)]


def video(args: argparse.Namespace) -> list[Path]:
    class_ref = _class_ref(args.class_id)
    if args.transport == "grpc":
        from service.proto_gen.djepa.v1 import generation_pb2 as pb

        fmt = {"gif": pb.VIDEO_FORMAT_GIF, "webp": pb.VIDEO_FORMAT_WEBP, "npz": pb.VIDEO_FORMAT_NPZ}[args.format]
        kwargs = {k: v for k, v in {"seed": args.seed, "model": args.model, "num_frames": args.num_frames}.items()
                  if v is not None}
        kwargs["class_id" if isinstance(class_ref, int) else "class_name"] = class_ref
        request = pb.GenerateVideoRequest(response_format=fmt, **kwargs)
        data = _grpc_call(args, "GenerateVideo", request).data
    else:
        body = _rest(args, "/v1/videos", {"class_id": class_ref, "seed": args.seed, "model": args.model,
                                          "num_frames": args.num_frames, "response_format": args.format})
        assert isinstance(body, bytes)
        data = body
    return [_write(args.out, data)]


def _run(args: argparse.Namespace) -> int:
    try:
        written = args.kind(args)
    except ClientError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    for path in written:
        print(path)
    return 0


def register(sub: Any) -> None:
    c = sub.add_parser("client", help="call a running djepa service (REST or gRPC) and write the outputs to files",
                       description="Call a running service (`djepa serve`) and write what it answers to files.")
    kinds = c.add_subparsers(dest="kind_name", required=True, metavar="KIND")

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--transport", choices=("rest", "grpc"), default="rest", help="REST (default) or gRPC")
        p.add_argument("--url", default=DEFAULT_URL, help=f"REST base URL (default {DEFAULT_URL})")
        p.add_argument("--target", default=DEFAULT_TARGET, help=f"gRPC host:port (default {DEFAULT_TARGET})")
        p.add_argument("--application", help="gRPC: the Serve application, when several are deployed")
        p.add_argument("--timeout", type=float, default=120.0, help="seconds (default 120); gRPC: the deadline")
        p.add_argument("--seed", type=int, help="seed (default: random)")
        p.add_argument("--model", help="model id (default: the served one)")
        p.set_defaults(func=_run)

    i = kinds.add_parser("image", help="images of one class, written as OUT/class<C>_seed<S>.png")
    i.add_argument("--class-id", required=True, help="class id or class name")
    i.add_argument("-n", type=int, help="number of images (default 1)")
    i.add_argument("--cfg-scale", type=float)
    i.add_argument("--temperature", type=float)
    i.add_argument("--num-steps", type=int)
    i.add_argument("--out", type=Path, default=Path("."), help="output folder (default .)")
    common(i)
    i.set_defaults(kind=image)

    s = kinds.add_parser("speech", help="speech for a text, written to OUT")
    s.add_argument("--text", required=True)
    s.add_argument("--speed", type=float)
    s.add_argument("--format", choices=("wav", "flac", "pcm"), default="wav")
    s.add_argument("--out", type=Path, default=Path("speech.wav"), help="output file (default speech.wav)")
    common(s)
    s.set_defaults(kind=speech)

    v = kinds.add_parser("video", help="a video of one class, written to OUT")
    v.add_argument("--class-id", required=True, help="class id or class name")
    v.add_argument("--num-frames", type=int)
    v.add_argument("--format", choices=("gif", "webp", "npz"), default="gif")
    v.add_argument("--out", type=Path, default=Path("video.gif"), help="output file (default video.gif)")
    common(v)
    v.set_defaults(kind=video)
