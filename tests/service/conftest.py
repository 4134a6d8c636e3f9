"""One Ray Serve session for the service tests: a private local Ray on loopback (service/ray_local.py),
free HTTP and gRPC ports chosen at run time, two apps (the main one and a tightly limited one), shut down at the end."""

from __future__ import annotations

import faulthandler
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from service.config import GRPC_SERVICER_FUNCTIONS, AppConfig, EngineConfig

SETUP_LIMIT_S = 240  # Ray + Serve start in ~10 s on 2 cores; past this the session is stuck: dump and exit
TINY = EngineConfig(preset="djepa-tiny", threads=1)
# the limited app: one image at a time, one queued, so a burst overflows the queue (429)
LIMITED_OPTIONS = {"ImageGenerator": {"max_ongoing_requests": 1, "max_queued_requests": 1,
                                      "user_config": {"max_batch_size": 1, "batch_wait_timeout_s": 0.0}}}


@dataclass
class Served:
    url: str  # the main app, at /
    limited_url: str  # the limited app, at /limited
    grpc_target: str  # Ray Serve's gRPC proxy, "127.0.0.1:port"; metadata `application` picks the app


@pytest.fixture(scope="session")
def served() -> Iterator[Served]:
    pytest.importorskip("ray.serve")
    from ray import serve

    from service import ray_local
    from service.deployments import build_app

    faulthandler.dump_traceback_later(SETUP_LIMIT_S, exit=True)
    try:
        ray_local.start_ray(num_cpus=2)
        local = ray_local.start_serve(access_log=False, grpc_servicer_functions=GRPC_SERVICER_FUNCTIONS)
        main = AppConfig(engine=TINY, request_timeout_s=30)
        serve.run(build_app(main, {"ImageGenerator": {"user_config": {"max_batch_size": 16,
                                                                       "batch_wait_timeout_s": 0.05}}}),
                  name="djepa", route_prefix="/")
        serve.run(build_app(AppConfig(engine=TINY, retry_after_s=2), LIMITED_OPTIONS), name="limited",
                  route_prefix="/limited")
    except BaseException:
        ray_local.shutdown()
        raise
    finally:
        faulthandler.cancel_dump_traceback_later()
    try:
        yield Served(url=local.url, limited_url=local.url + "/limited",
                     grpc_target=f"{ray_local.LOOPBACK}:{local.grpc_port}")
    finally:
        ray_local.shutdown()
