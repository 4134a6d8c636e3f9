"""A real Prometheus (Debian's `prometheus`) scrapes the running service and Ray's metrics port; every
query of the Grafana dashboards (deploy/grafana/) and every alert rule (deploy/prometheus/alerts.yaml)
is then evaluated through Prometheus's HTTP API. Loopback only, bounded in time."""

from __future__ import annotations

import math
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import grpc
import httpx
import pytest
import yaml

from service import ray_local
from service.proto_gen.djepa.v1 import generation_pb2 as pb
from service.proto_gen.djepa.v1 import generation_pb2_grpc as pb_grpc
from tests.deploy.tools import DASHBOARDS, ROOT, Query, queries, query_variables, tool
from tests.service.conftest import Served

ALERTS = ROOT / "deploy" / "prometheus" / "alerts.yaml"
START_LIMIT_S = 30  # Prometheus answers /-/ready in about a second
SCRAPE_LIMIT_S = 40  # traffic + scrapes until every query answers (about 5 s on 2 cores)


@dataclass
class RunningPrometheus:
    url: str
    log: Path

    def get(self, path: str, **params: str) -> Any:
        answer = httpx.get(self.url + path, params=params, timeout=10)
        body = answer.json()
        assert answer.status_code == 200 and body["status"] == "success", (path, params, body)
        return body["data"]

    def query(self, promql: str) -> list[dict[str, Any]]:
        data = self.get("/api/v1/query", query=promql)
        assert data["resultType"] == "vector", (promql, data)
        result: list[dict[str, Any]] = data["result"]
        return result


def _host_port(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.hostname}:{parts.port}"


@pytest.fixture(scope="module")
def prometheus(served: Served, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningPrometheus]:
    binary = tool("prometheus")
    if not served.ray_metrics_url:
        pytest.fail("the served fixture exposes no Ray metrics port")
    folder = tmp_path_factory.mktemp("prometheus")
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s", "scrape_timeout": "1s"},
        "rule_files": [str(ALERTS)],
        "scrape_configs": [  # the job names of deploy/k8s/podmonitor.yaml (the alert rules match them)
            {"job_name": "djepa-ingress", "metrics_path": "/metrics",
             "static_configs": [{"targets": [_host_port(served.url)]}]},
            {"job_name": "djepa-ray", "metrics_path": "/metrics",
             "static_configs": [{"targets": [_host_port(served.ray_metrics_url)]}]},
        ],
    }
    (folder / "prometheus.yml").write_text(yaml.safe_dump(config))
    port = ray_local.free_port()
    log = folder / "prometheus.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [binary, f"--config.file={folder / 'prometheus.yml'}", f"--storage.tsdb.path={folder / 'data'}",
             f"--web.listen-address={ray_local.LOOPBACK}:{port}", "--storage.tsdb.retention.time=1h",
             "--log.level=warn"], stdout=out, stderr=subprocess.STDOUT)
    try:
        url = f"http://{ray_local.LOOPBACK}:{port}"
        deadline = time.monotonic() + START_LIMIT_S
        while True:
            if proc.poll() is not None:
                pytest.fail(f"prometheus exited with {proc.returncode}: {log.read_text()[-2000:]}")
            try:
                if httpx.get(url + "/-/ready", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"prometheus not ready after {START_LIMIT_S} s: {log.read_text()[-2000:]}")
            time.sleep(0.2)
        yield RunningPrometheus(url, log)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def _traffic(served: Served, channel: grpc.Channel, round_: int) -> None:
    """A little of everything the dashboard shows: REST images (a batch of 2), gRPC images, and an
    invalid request (a rejection)."""
    ok = httpx.post(served.url + "/v1/images", json={"class_id": 1, "n": 2, "seed": round_}, timeout=60)
    assert ok.status_code == 200, ok.text
    bad = httpx.post(served.url + "/v1/images", json={"class_id": 10_000}, timeout=60)
    assert bad.status_code == 422, bad.text
    answer = pb_grpc.GenerationStub(channel).GenerateImages(pb.GenerateImagesRequest(class_id=2, seed=round_),
                                                            metadata=(("application", "djepa"),), timeout=60)
    assert len(answer.images) == 1


def _answered(result: list[dict[str, Any]]) -> bool:
    """Non-empty, with at least one finite value (a histogram quantile over no new samples is NaN)."""
    return any(math.isfinite(float(r["value"][1])) for r in result)


def test_dashboard_queries_and_alert_rules_answer_on_real_scrapes(served: Served,
                                                                  prometheus: RunningPrometheus) -> None:
    assert DASHBOARDS, "no dashboard in deploy/grafana/"
    pending: dict[str, Query] = {}
    for path in DASHBOARDS:
        variables = query_variables(path)
        for q in queries(path):
            pending[q.promql(variables)] = q
    import ray

    has_gpu = ray.cluster_resources().get("GPU", 0) > 0
    answered: dict[str, int] = {}
    deadline = time.monotonic() + SCRAPE_LIMIT_S
    with grpc.insecure_channel(served.grpc_target) as channel:
        round_ = 0
        while True:  # send traffic and re-ask until every query answers (polling, not a timing assertion)
            _traffic(served, channel, round_)
            round_ += 1
            time.sleep(1.0)
            for promql in list(pending):
                result = prometheus.query(promql)  # a malformed query fails here, whatever the data
                if _answered(result):
                    answered[promql] = len(result)
                    del pending[promql]
            waiting = [p for p, q in pending.items() if has_gpu or not q.gpu_only]
            if not waiting or time.monotonic() > deadline:
                break
    assert not waiting, "dashboard queries with no answer:\n" + "\n".join(
        f"{pending[p].panel} ({pending[p].ref}): {p}" for p in waiting)
    assert answered and round_ >= 1
    # where Ray sees no GPU the GPU panel's queries still evaluate (above), answering empty
    assert all(q.gpu_only for q in pending.values())

    # the dashboard's variable: label_values(djepa_outputs_total, model)
    models = prometheus.get("/api/v1/label/model/values", **{"match[]": "djepa_outputs_total"})
    assert "djepa-tiny" in models
    # both jobs were scraped (a scrape may still time out now and then on a loaded machine)
    up = prometheus.query("max by (job) (max_over_time(up[1m]))")
    assert {r["metric"]["job"]: r["value"][1] for r in up} == {"djepa-ingress": "1", "djepa-ray": "1"}
    # every alert rule was evaluated on the real series without error; none fires on a healthy service
    deadline = time.monotonic() + 10
    while True:
        rules = [r for g in prometheus.get("/api/v1/rules")["groups"] for r in g["rules"]]
        if all(r.get("lastEvaluation", "").startswith("20") and r["health"] != "unknown" for r in rules) \
                or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    names = yaml.safe_load(ALERTS.read_text())["groups"][0]["rules"]
    assert {r["name"] for r in rules} == {r["alert"] for r in names}
    assert all(r["health"] == "ok" for r in rules), [(r["name"], r["health"], r.get("lastError")) for r in rules]
    firing = [r["name"] for r in rules if r["state"] == "firing"]
    assert firing == []
