"""`djepa serve` as a real subprocess: SIGTERM lets in-flight requests finish (200), then it exits 0.

A second private Ray (service/ray_local.py) on free loopback ports, bounded in time throughout.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from service.ray_local import free_port

ROOT = Path(__file__).resolve().parents[2]
START_LIMIT_S = 240
SLOW = {"class_id": 1, "n": 16, "num_steps": 16}  # about half a second per request on 2 cores
CONFIG = """\
http_options: {host: 127.0.0.1, port: 8000}
applications:
  - name: djepa
    route_prefix: /
    import_path: service.deployments:app_builder
    args: {engine: {preset: djepa-tiny, threads: 1}}
    deployments:
      - {name: ImageGenerator, max_ongoing_requests: 32, max_queued_requests: 64, ray_actor_options: {num_cpus: 0.5},
         user_config: {max_batch_size: 16, batch_wait_timeout_s: 0.01}}
      - {name: Ingress, ray_actor_options: {num_cpus: 0.25}}
"""


def test_sigterm_drains_in_flight_requests_then_exits_0(tmp_path: Path) -> None:
    pytest.importorskip("ray.serve")
    port = free_port()
    config = tmp_path / "serve.yaml"
    config.write_text(CONFIG)
    command = [sys.executable, "-c", "import sys; from djepa_core.cli import main; sys.exit(main())", "serve",
               "--config", str(config), "--port", str(port), "--num-cpus", "1"]
    proc = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    lines: list[str] = []
    ready = threading.Event()

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line)
            if "djepa serving at" in line:
                ready.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        assert ready.wait(START_LIMIT_S), "".join(lines[-40:])
        url = f"http://127.0.0.1:{port}"

        async def slow_requests_then_sigterm() -> list[httpx.Response]:
            async with httpx.AsyncClient(base_url=url, timeout=120) as c:
                assert (await c.post("/v1/images", json={"class_id": 0})).status_code == 200  # warm
                calls = [asyncio.ensure_future(c.post("/v1/images", json={**SLOW, "seed": i})) for i in range(4)]
                await asyncio.sleep(0.3)  # in flight
                proc.send_signal(signal.SIGTERM)
                return list(await asyncio.gather(*calls))

        answers = asyncio.run(slow_requests_then_sigterm())
        assert [r.status_code for r in answers] == [200] * 4, ([r.text[:200] for r in answers], "".join(lines[-60:]))
        assert all(len(r.json()["data"]) == 16 for r in answers)
        assert proc.wait(timeout=120) == 0, "".join(lines[-40:])
        assert any("draining" in line for line in lines), "".join(lines[-40:])
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)
        reader.join(timeout=10)
        if proc.stdout is not None:
            proc.stdout.close()
    t0 = time.monotonic()
    with pytest.raises(httpx.TransportError):  # and nothing listens any more
        httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5)
    assert time.monotonic() - t0 < 30
