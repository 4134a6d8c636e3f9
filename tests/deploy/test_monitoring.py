"""The alert rules (promtool check and unit tests on synthetic series) and the Grafana dashboards
(their shape and the series they name). tests/service/test_prometheus.py evaluates both on real scrapes."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
import yaml

from service.metrics import ServiceMetrics
from tests.deploy.tools import DASHBOARDS, ROOT, load, panels, queries, query_variables, tool

RULES = ROOT / "deploy" / "prometheus" / "alerts.yaml"
RULE_TESTS = ROOT / "deploy" / "prometheus" / "alerts_test.yaml"
# the series the service exports (histograms as their _bucket/_sum/_count, counters as _total)
SUFFIXES = {"histogram": ("_bucket", "_sum", "_count"), "counter": ("_total",), "gauge": ("",)}
DJEPA_SERIES = {m.name + s for m in ServiceMetrics().registry.collect() for s in ("", *SUFFIXES[m.type])}
NAME = re.compile(r"\b((?:djepa|ray)_[a-z_]+)\b")


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([tool("promtool"), *args], cwd=ROOT, capture_output=True, text=True, timeout=60,
                          check=False)


def test_promtool_checks_the_rules() -> None:
    done = promtool("check", "rules", str(RULES))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS: 4 rules found" in done.stdout


def test_promtool_unit_tests_of_the_rules_pass() -> None:
    done = promtool("test", "rules", str(RULE_TESTS))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout


def test_every_alert_is_unit_tested_firing() -> None:
    alerts = {r["alert"] for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"]}
    assert alerts == {"DjepaHighP99Latency", "DjepaSustainedRejections", "DjepaReplicasNotReady", "DjepaTargetDown"}
    tests = yaml.safe_load(RULE_TESTS.read_text())["tests"]
    fired = {t["alertname"] for case in tests for t in case.get("alert_rule_test", []) if t["exp_alerts"]}
    quiet = {t["alertname"] for case in tests for t in case.get("alert_rule_test", []) if not t["exp_alerts"]}
    assert fired == alerts and quiet >= alerts - {"DjepaTargetDown"}


def test_promtool_fails_a_broken_rule(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("groups:\n- name: x\n  rules:\n  - alert: X\n    expr: rate(djepa_rejected_total[5m]\n")
    assert promtool("check", "rules", str(bad)).returncode != 0


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_dashboard_shape(path: Path) -> None:
    dash = load(path)
    assert dash["uid"] and dash["title"]
    variables = {v["name"]: v for v in dash["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"
    ids = [p["id"] for p in panels(dash)]
    assert len(ids) == len(set(ids))
    for panel in panels(dash):
        if panel["type"] == "row":
            continue
        assert panel["datasource"]["uid"] == "${datasource}" and panel["targets"], panel["title"]
        refs = [t["refId"] for t in panel["targets"]]
        assert len(refs) == len(set(refs)), panel["title"]
    titles = " ".join(p["title"].lower() for p in panels(dash))
    for topic in ("requests / s", "p50 / p99", "queue wait", "batch size", "rejections", "gpu"):
        assert topic in titles, topic


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_dashboard_queries_name_real_series(path: Path) -> None:
    variables = query_variables(path)
    for q in queries(path):
        promql = q.promql(variables)
        assert "$" not in promql, promql
        for name in NAME.findall(promql):
            if name.startswith("djepa_"):
                assert name in DJEPA_SERIES, f"{q.panel}: {name} is not a series of service/metrics.py"
    alerts = RULES.read_text()
    for name in NAME.findall(alerts):
        assert not name.startswith("djepa_") or name in DJEPA_SERIES, name
