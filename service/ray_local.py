"""The one way this repository starts Ray: a private local cluster that talks to loopback only.

service.md ("Running Ray on shared test machines"): Ray probes cloud metadata addresses at start
unless its processes see a `ray_bootstrap_config.yaml` with `provider: {type: local}` in their HOME.
So `start_ray` points HOME at a private temp dir holding that file, turns usage stats off, binds the
node to 127.0.0.1, starts no dashboard and bounds the CPUs. Tests, `djepa serve` and the benchmark
all come through here; `ray.init(` appears in no other file.
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

LOOPBACK = "127.0.0.1"
BOOTSTRAP = "provider: {type: local}\n"


def free_port(host: str = LOOPBACK) -> int:
    """A TCP port free on `host` now (chosen by the OS, so overlapping runs do not collide)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


@dataclass
class LocalRay:
    home: Path
    num_cpus: float
    http_host: str | None = None
    http_port: int | None = None
    metrics_port: int | None = None
    grpc_port: int | None = None  # Ray Serve's gRPC proxy, when started

    @property
    def url(self) -> str:
        return f"http://{self.http_host}:{self.http_port}"


_current: LocalRay | None = None


def start_ray(num_cpus: int = 2, num_gpus: int | None = None, metrics_port: int | None = None,
              logging_level: int = logging.WARNING) -> LocalRay:
    """Start a private local Ray (idempotent within a process). `metrics_port`: Ray's Prometheus
    port (the `ray_serve_*` series); None lets Ray pick one."""
    global _current
    import ray

    if _current is not None and ray.is_initialized():
        return _current
    home = Path(tempfile.mkdtemp(prefix="djepa-ray-home-"))
    (home / "ray_bootstrap_config.yaml").write_text(BOOTSTRAP)
    env = {"HOME": str(home), "RAY_USAGE_STATS_ENABLED": "0", "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
           "RAY_metrics_report_interval_ms": "1000"}
    # Serve's proxy must answer its readiness check within 5 s (Ray's default) or it is killed and restarted,
    # again and again on a loaded 2-core machine (seen: a CI-like run beside two CPU jobs). Give it 30 s
    # unless the caller set these.
    for name in ("RAY_SERVE_PROXY_READY_CHECK_TIMEOUT_S", "RAY_SERVE_PROXY_HEALTH_CHECK_TIMEOUT_S"):
        env[name] = os.environ.get(name, "30")
    os.environ.pop("RAY_ADDRESS", None)  # never join a cluster by accident: this one is ours
    old_home = os.environ.get("HOME")
    os.environ.update(env)  # inherited by every Ray process started below
    kwargs: dict[str, Any] = {}
    if metrics_port is not None:
        kwargs["_metrics_export_port"] = metrics_port
    try:
        # Ray still runs its dashboard head process (job/state APIs) without the UI: give it a free
        # loopback port so that overlapping runs on one machine never fight over 8265
        ray.init(num_cpus=num_cpus, num_gpus=num_gpus, include_dashboard=False, _node_ip_address=LOOPBACK,
                 dashboard_host=LOOPBACK, dashboard_port=free_port(),
                 logging_level=logging_level, log_to_driver=True, configure_logging=True,
                 **kwargs)
    finally:
        if old_home is not None:  # this process keeps its own HOME; Ray's processes keep the private one
            os.environ["HOME"] = old_home
    _current = LocalRay(home=home, num_cpus=num_cpus, metrics_port=metrics_port)
    return _current


def start_serve(host: str = LOOPBACK, port: int | None = None, access_log: bool = True,
                grpc_port: int | None = None, grpc_servicer_functions: Sequence[str] = ()) -> LocalRay:
    """Start Serve's HTTP proxy on `host:port` (port None: a free one) in the Ray of `start_ray`;
    `access_log` False keeps Serve from logging every request. With `grpc_servicer_functions`, also
    the gRPC proxy on `grpc_port` (None: a free one), reflection on. Ray binds the gRPC proxy on
    every interface ("[::]:port", not configurable in Ray 2.60); clients here use 127.0.0.1."""
    from ray import serve

    if _current is None:
        raise RuntimeError("start_ray() first")
    port = port if port is not None else free_port(host)
    grpc: dict[str, Any] = {}
    if grpc_servicer_functions:
        grpc_port = grpc_port if grpc_port is not None else free_port(host)
        grpc = {"grpc_options": {"port": grpc_port, "grpc_servicer_functions": list(grpc_servicer_functions),
                                 "enable_reflection": True}}
    serve.start(http_options={"host": host, "port": port}, proxy_location="HeadOnly",
                logging_config={"enable_access_log": access_log}, **grpc)
    _current.http_host, _current.http_port = host, port
    _current.grpc_port = grpc_port if grpc else None
    return _current


def shutdown() -> None:
    """Stop Serve and Ray, remove the private HOME."""
    global _current
    import ray
    from ray import serve

    try:
        if ray.is_initialized():
            serve.shutdown()  # type: ignore[no-untyped-call]
    finally:
        ray.shutdown()
        if _current is not None:
            shutil.rmtree(_current.home, ignore_errors=True)
        _current = None


@contextmanager
def local_serve(num_cpus: int = 2, host: str = LOOPBACK, port: int | None = None,
                metrics_port: int | None = None, access_log: bool = True) -> Iterator[LocalRay]:
    """Ray + Serve for the duration of the block, shut down after."""
    start_ray(num_cpus=num_cpus, metrics_port=metrics_port)
    try:
        yield start_serve(host, port, access_log)
    finally:
        shutdown()
