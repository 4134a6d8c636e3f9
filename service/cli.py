"""`djepa serve`: a local Ray (loopback only, service/ray_local.py), the app of deploy/serve.yaml, and a
wait until Ctrl-C or SIGTERM, then a clean shutdown. Registered through the `djepa.commands` entry
point, so djepa_core never imports this package."""

from __future__ import annotations

import argparse
import dataclasses
import signal
import sys
import threading
import time
from pathlib import Path
from types import FrameType
from typing import Any

import yaml

from service.config import AppConfig

DEFAULT_CONFIG = Path("deploy/serve.yaml")


@dataclasses.dataclass(frozen=True)
class ServePlan:
    """What `djepa serve` deploys: the app config, per-deployment options, the address."""

    app_name: str
    route_prefix: str
    config: AppConfig
    options: dict[str, dict[str, Any]]
    host: str
    port: int
    grpc_port: int | None = None  # None: no gRPC proxy (the file has no grpc_options)
    grpc_servicer_functions: tuple[str, ...] = ()


LOOPBACK = "127.0.0.1"  # the listen address unless the config file or --host says otherwise


def load_plan(path: Path | None, host: str | None = None, port: int | None = None,
              engine_overrides: dict[str, Any] | None = None, grpc_port: int | None = None,
              app_overrides: dict[str, Any] | None = None) -> ServePlan:
    """Read a Ray Serve config file (its first application) and apply the command line's overrides
    (`app_overrides`: keys of the app's `args`, such as api_keys_file; None values are ignored)."""
    data: dict[str, Any] = {}
    if path is not None:
        if not path.is_file():
            raise FileNotFoundError(f"no serve config at {path}")
        data = yaml.safe_load(path.read_text()) or {}
    apps = data.get("applications") or [{}]
    if len(apps) != 1:
        raise ValueError(f"{path}: `djepa serve` runs one application, found {len(apps)}")
    app = apps[0]
    args = dict(app.get("args") or {})
    engine = {k: v for k, v in dict(args.get("engine") or {}).items() if v is not None}
    overrides = {k: v for k, v in (engine_overrides or {}).items() if v is not None}
    if overrides.keys() & {"checkpoint", "reference", "preset"}:  # a source on the command line replaces the file's
        for key in ("checkpoint", "reference", "vae", "preset"):
            engine.pop(key, None)
    engine.update(overrides)
    args["engine"] = engine
    args.update({k: v for k, v in (app_overrides or {}).items() if v is not None})
    options = {d["name"]: dict(d) for d in app.get("deployments") or []}
    http = dict(data.get("http_options") or {})
    grpc = dict(data.get("grpc_options") or {})
    functions = tuple(str(f) for f in grpc.get("grpc_servicer_functions") or ())
    return ServePlan(app_name=str(app.get("name", "djepa")), route_prefix=str(app.get("route_prefix", "/")),
                     config=AppConfig.from_dict(args), options=options,
                     host=host or str(http.get("host", LOOPBACK)), port=int(port or http.get("port", 8000)),
                     grpc_port=int(grpc_port or grpc.get("port", 9000)) if functions else None,
                     grpc_servicer_functions=functions)


def in_flight(metrics_text: str) -> float:
    """The sum of `djepa_requests_in_flight` in a Prometheus exposition."""
    return sum(float(line.rsplit(" ", 1)[1]) for line in metrics_text.splitlines()
               if line.startswith("djepa_requests_in_flight{"))


def wait_drained(url: str, limit_s: float, poll_s: float = 0.25) -> bool:
    """Wait until the ingress at `url` has no request in flight (twice in a row), at most `limit_s`."""
    import httpx

    end, quiet = time.monotonic() + limit_s, 0
    while time.monotonic() < end:
        try:
            busy = in_flight(httpx.get(url + "/metrics", timeout=5).text)
        except (httpx.HTTPError, ValueError, IndexError):
            return False  # no ingress to ask: nothing more to wait for here
        quiet = quiet + 1 if busy == 0 else 0
        if quiet >= 2:
            return True
        time.sleep(poll_s)
    return False


def example_curl(url: str) -> str:
    return (f"curl -s {url}/v1/images -H 'content-type: application/json' "
            "-d '{\"class_id\": 3, \"seed\": 0, \"response_format\": \"png\"}' -o digit.png")


def _serve(args: argparse.Namespace) -> int:
    from ray import serve

    from service import ray_local
    from service.deployments import build_app

    plan = load_plan(args.config, args.host, args.port, {
        "checkpoint": str(args.checkpoint) if args.checkpoint else None,
        "reference": str(args.reference) if args.reference else None,
        "vae": str(args.vae) if args.vae else None, "preset": args.preset, "device": args.device},
        grpc_port=args.grpc_port,
        app_overrides={"api_keys_file": str(args.api_keys_file) if args.api_keys_file else None,
                       "api_keys_env": args.api_keys_env})
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    ray_local.start_ray(num_cpus=args.num_cpus, metrics_port=args.metrics_port)
    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        local = ray_local.start_serve(plan.host, plan.port, grpc_port=plan.grpc_port,
                                      grpc_servicer_functions=plan.grpc_servicer_functions)
        serve.run(build_app(plan.config, plan.options), name=plan.app_name, route_prefix=plan.route_prefix)
        prefix = "" if plan.route_prefix == "/" else plan.route_prefix
        url = local.url + prefix
        print(f"djepa serving at {url}  (docs {url}/docs, metrics {url}/metrics"
              + (f", Ray metrics port {args.metrics_port}" if args.metrics_port else "") + ")")
        if local.grpc_port is not None:
            print(f"gRPC (djepa.v1.Generation, reflection on) at {plan.host}:{local.grpc_port}")
        print(f"try:  {example_curl(url)}")
        print("Ctrl-C or SIGTERM stops it.", flush=True)
        while not stop.wait(0.5):
            pass
        # drain: wait for the requests in flight to be answered (the ingress's djepa_requests_in_flight),
        # then Serve stops the app, each replica finishing what it still holds (up to the deployment's
        # graceful_shutdown_timeout_s, 20 s by default)
        print(f"draining in-flight requests (at most {args.drain_timeout:g} s), then shutting down...",
              file=sys.stderr, flush=True)
        if not wait_drained(url, args.drain_timeout):
            print("drain: requests still in flight at the drain timeout", file=sys.stderr, flush=True)
        serve.delete(plan.app_name)
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        ray_local.shutdown()
    return 0


def register(sub: Any) -> None:
    s = sub.add_parser("serve", help="serve image generation over HTTP and gRPC (Ray Serve)",
                       description="Start a local Ray on loopback, deploy the image service of the config "
                                   "file, print its URL, and serve until Ctrl-C or SIGTERM.")
    s.add_argument("--config", type=Path, default=DEFAULT_CONFIG if DEFAULT_CONFIG.is_file() else None,
                   help="Ray Serve config file (default: deploy/serve.yaml when present)")
    s.add_argument("--host", help="listen address (default: the config's http_options.host, else 127.0.0.1; "
                                  "0.0.0.0 listens on every interface)")
    s.add_argument("--port", type=int, help="listen port (default: the config's http_options.port, 8000)")
    s.add_argument("--grpc-port", type=int, help="gRPC proxy port (default: the config's grpc_options.port, 9000)")
    src = s.add_mutually_exclusive_group()
    src.add_argument("--checkpoint", type=Path, help="a djepa .safetensors checkpoint (default: the embedded model)")
    src.add_argument("--reference", type=Path, help="a reference .pth checkpoint, imported at load (needs --vae)")
    src.add_argument("--preset", help="an untrained preset (smoke runs)")
    s.add_argument("--vae", type=Path, help="the VAE weights of --reference")
    s.add_argument("--device", help="cpu, cuda, cuda:1, ... (default: the config's)")
    s.add_argument("--api-keys-file", type=Path,
                   help="ask for API keys (Authorization: Bearer <key>): a file of keys, one a line")
    s.add_argument("--api-keys-env", metavar="NAME",
                   help="ask for API keys: the environment variable NAME holds them (comma or space separated)")
    s.add_argument("--drain-timeout", type=float, default=30.0,
                   help="on SIGTERM / Ctrl-C, seconds to wait for requests in flight (default 30)")
    s.add_argument("--num-cpus", type=int, default=2, help="CPUs the local Ray may use (default 2)")
    s.add_argument("--metrics-port", type=int, help="Ray's Prometheus port for the ray_serve_* series")
    s.set_defaults(func=_serve)
