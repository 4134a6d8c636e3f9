"""Helpers of the deployment tests: the Prometheus binaries (Debian's `prometheus` package) and the
queries of the Grafana dashboards in deploy/grafana/."""

from __future__ import annotations

import json
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
DASHBOARDS = sorted((ROOT / "deploy" / "grafana").glob("*.json"))
# CI (.ci/run) sets DJEPA_REQUIRE_FIXTURES=1: a missing tool is then a failure, never a skip
REQUIRED = os.environ.get("DJEPA_REQUIRE_FIXTURES") == "1"
# Grafana's built-in variables, as concrete values for a query sent straight to Prometheus; the
# windows cover a whole test run (a scrape every second)
GRAFANA_VALUES = {"__rate_interval": "1m", "__interval": "5s", "__range": "5m"}
# series that exist only where Ray sees a GPU: a query made only of them may answer empty on CPU machines
GPU_ONLY = re.compile(r"ray_node_gpus_\w+|ray_node_gram_\w+|Name=\"GPU\"")


def tool(name: str) -> str:
    """Path of the executable `name` (Debian package `prometheus`: prometheus, promtool); skipped when
    absent, failed under DJEPA_REQUIRE_FIXTURES=1 (`make sysdeps` installs it)."""
    path = shutil.which(name)
    if path is None:
        message = f"`{name}` not found: install Debian's prometheus package (make sysdeps)"
        if REQUIRED:
            pytest.fail(message + " (DJEPA_REQUIRE_FIXTURES=1)")
        pytest.skip(message)
    return path


@dataclass(frozen=True)
class Query:
    dashboard: str
    panel: str
    ref: str
    expr: str  # as written in the dashboard

    @property
    def gpu_only(self) -> bool:
        return bool(GPU_ONLY.search(self.expr))

    def promql(self, variables: dict[str, str]) -> str:
        """The expression with Grafana variables ($name, ${name}, [[name]]) replaced by values."""
        values = {**GRAFANA_VALUES, **variables}

        def value(m: re.Match[str]) -> str:
            name = m.group(1) or m.group(2) or m.group(3)
            if name not in values:
                raise KeyError(f"{self.dashboard} / {self.panel}: unknown variable {name!r} in {self.expr}")
            return values[name]

        return re.sub(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)|\[\[(\w+)\]\]", value, self.expr)


def load(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    """Every panel, rows' nested panels included."""
    out: list[dict[str, Any]] = []
    for p in dashboard.get("panels", []):
        out.append(p)
        out.extend(p.get("panels", []))
    return out


def queries(path: Path) -> list[Query]:
    dash = load(path)
    return [Query(path.name, p.get("title", ""), t.get("refId", ""), t["expr"])
            for p in panels(dash) for t in p.get("targets", []) if t.get("expr")]


def query_variables(path: Path) -> dict[str, str]:
    """Values for the dashboard's own template variables: every option ("All" = `allValue`, else .*)."""
    values: dict[str, str] = {}
    for v in load(path).get("templating", {}).get("list", []):
        if v["type"] == "datasource":
            continue
        values[v["name"]] = v.get("allValue") or ".*"
    return values
