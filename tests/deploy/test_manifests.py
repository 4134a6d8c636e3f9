"""deploy/k8s/, checked offline: the RayService is what scripts/gen_rayservice.py makes of deploy/serve.yaml,
it validates against KubeRay's published CRD schema (deploy/crds/, an excerpt kept as data), its pod
templates and the Service against Kubernetes' own schemas (kubernetes-validate), and the Service,
PodMonitor, probes and Serve config agree with each other and with the service."""

from __future__ import annotations

import copy
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import ray
import yaml

from service.cli import load_plan
from service.config import AppConfig
from tests.deploy.tools import ROOT
from tests.scripts import load_script

K8S = ROOT / "deploy" / "k8s"
CRD = ROOT / "deploy" / "crds" / "ray.io_rayservices.v1.excerpt.yaml"
KUBERNETES_VERSIONS = ["1.28.0", kubernetes_validate.latest_version()]  # an older supported one and the newest
INT32 = (-(2**31), 2**31 - 1)


gen = load_script("scripts/gen_rayservice.py", "gen_rayservice")


def load_all(name: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all((K8S / name).read_text()) if d]


@pytest.fixture(scope="module")
def rayservice() -> dict[str, Any]:
    (doc,) = load_all("rayservice.yaml")
    return doc


def crd_schema() -> dict[str, Any]:
    crd = yaml.safe_load(CRD.read_text())
    (version,) = [v for v in crd["spec"]["versions"] if v["name"] == "v1"]
    schema: dict[str, Any] = version["schema"]["openAPIV3Schema"]
    return schema


def strict(schema: dict[str, Any]) -> dict[str, Any]:
    """The CRD schema as `kubectl apply --validate=strict` reads it: a field the schema does not name is
    an error (the API server would drop it silently), int32/int64 formats are bounded, and an elided
    node (x-djepa-elided) accepts nothing, except pod templates, which are validated on their own."""
    out = copy.deepcopy(schema)

    def walk(node: dict[str, Any], key: str) -> None:
        if "x-djepa-elided" in node:
            if key != "template":
                node["not"] = {}  # refuse any value: copy the published schema of this field first
            return
        if "properties" in node and "additionalProperties" not in node and not node.get(
                "x-kubernetes-preserve-unknown-fields"):
            node["additionalProperties"] = False
        if node.get("format") == "int32":
            node["minimum"], node["maximum"] = max(node.get("minimum", INT32[0]), INT32[0]), INT32[1]
        for name, child in node.get("properties", {}).items():
            walk(child, name)
        for sub in ("items", "additionalProperties"):
            if isinstance(node.get(sub), dict):
                walk(node[sub], sub)

    walk(out, "")
    return out


def crd_errors(doc: dict[str, Any]) -> list[str]:
    validator = jsonschema.Draft7Validator(strict(crd_schema()))
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(doc)]


def pod_templates(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    cluster = doc["spec"]["rayClusterConfig"]
    found = {"head": cluster["headGroupSpec"]["template"]}
    for group in cluster.get("workerGroupSpecs", []):
        found[group["groupName"]] = group["template"]
    return found


def serve_config(doc: dict[str, Any]) -> dict[str, Any]:
    config: dict[str, Any] = yaml.safe_load(doc["spec"]["serveConfigV2"])
    return config


def test_rayservice_is_generated_from_serve_yaml() -> None:
    assert gen.stale() == [], "deploy/k8s/rayservice.yaml is stale: run python scripts/gen_rayservice.py"
    done = subprocess.run([sys.executable, "scripts/gen_rayservice.py", "--check"], cwd=ROOT, capture_output=True,
                          text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr


def test_a_changed_serve_yaml_makes_the_manifest_stale(tmp_path: Path) -> None:
    base = yaml.safe_load((ROOT / "deploy" / "serve.yaml").read_text())
    base["applications"][0]["args"]["request_timeout_s"] = 7
    out = tmp_path / "rayservice.yaml"
    out.write_text(gen.render(base))
    assert gen.stale(out) != []
    assert serve_config(yaml.safe_load(out.read_text()))["applications"][0]["args"]["request_timeout_s"] == 7


def test_rayservice_validates_against_kuberay_crd(rayservice: dict[str, Any]) -> None:
    assert rayservice["apiVersion"] == "ray.io/v1" and rayservice["kind"] == "RayService"
    assert crd_errors(rayservice) == []


@pytest.mark.parametrize("change, expected", [
    (lambda d: d["spec"]["rayClusterConfig"]["headGroupSpec"].update(rayStartParam={}), "rayStartParam"),
    (lambda d: d["spec"]["rayClusterConfig"]["workerGroupSpecs"][0].update(maxReplicas="4"), "maxReplicas"),
    (lambda d: d["spec"]["rayClusterConfig"]["workerGroupSpecs"][0].pop("groupName"), "groupName"),
    (lambda d: d["spec"].update(serveConfigV2={"applications": []}), "serveConfigV2"),
    (lambda d: d["spec"].update(serveService={"spec": {}}), "serveService"),
    (lambda d: d["spec"].update(serviceUnhealthySecondThreshold=2**31), "serviceUnhealthySecondThreshold"),
])
def test_crd_validation_catches_mistakes(rayservice: dict[str, Any], change: Any, expected: str) -> None:
    doc = copy.deepcopy(rayservice)
    change(doc)
    errors = crd_errors(doc)
    assert errors and any(expected in e for e in errors), errors


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_pod_templates_validate_against_kubernetes(rayservice: dict[str, Any], version: str) -> None:
    for name, template in pod_templates(rayservice).items():
        wrapper = {"apiVersion": "v1", "kind": "PodTemplate", "metadata": {"name": f"djepa-{name}"},
                   "template": template}
        kubernetes_validate.validate(wrapper, version, strict=True)


def test_pod_template_validation_catches_mistakes(rayservice: dict[str, Any]) -> None:
    template = copy.deepcopy(pod_templates(rayservice)["gpu"])
    template["spec"]["containers"][0]["readinessProbe"]["httpGet"]["paht"] = "/readyz"
    wrapper = {"apiVersion": "v1", "kind": "PodTemplate", "metadata": {"name": "x"}, "template": template}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(wrapper, KUBERNETES_VERSIONS[-1], strict=True)


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_service_validates_against_kubernetes(version: str) -> None:
    for doc in load_all("service.yaml"):
        kubernetes_validate.validate(doc, version, strict=True)


def test_serve_config_v2_is_a_valid_serve_config_of_our_app(rayservice: dict[str, Any]) -> None:
    with warnings.catch_warnings():  # Ray's schema module uses pydantic features pydantic 2 deprecates
        warnings.simplefilter("ignore", DeprecationWarning)
        from ray.serve.schema import ServeDeploySchema

    config = serve_config(rayservice)
    ServeDeploySchema.model_validate(config)  # Ray Serve's own schema of a config file
    (app,) = config["applications"]
    assert app["import_path"] == "service.deployments:app_builder"
    AppConfig.from_dict(app["args"])  # strict keys: what the app builder will parse
    assert {gen.GENERATOR, gen.INGRESS} <= {d["name"] for d in app["deployments"]} <= {gen.INGRESS, *gen.GPU_SHARE}
    assert config["http_options"] == {"host": "0.0.0.0", "port": 8000} and config["proxy_location"] == "EveryNode"
    assert config["grpc_options"]["port"] == 9000


def test_gpu_and_autoscaling_settings_agree(rayservice: dict[str, Any]) -> None:
    config = serve_config(rayservice)
    (app,) = config["applications"]
    deployments = {d["name"]: d for d in app["deployments"]}
    generators = [d for name, d in deployments.items() if name in gen.GPU_SHARE]
    assert gen.GENERATOR in deployments and len(generators) == len(deployments) - 1
    assert app["args"]["engine"]["device"] == "cuda"
    assert all(v["engine"]["device"] == "cuda" for v in app["args"].values() if isinstance(v, dict) and "engine" in v)
    (worker,) = rayservice["spec"]["rayClusterConfig"]["workerGroupSpecs"]
    gpus = int(worker["template"]["spec"]["containers"][0]["resources"]["limits"]["nvidia.com/gpu"])
    assert gpus >= 1 and sum(d["ray_actor_options"]["num_gpus"] for d in generators) <= gpus  # one of each fits
    for generator in generators:
        assert 0 < generator["ray_actor_options"]["num_gpus"] <= 1
        auto = generator["autoscaling_config"]
        assert "num_replicas" not in generator
        assert (auto["min_replicas"], auto["max_replicas"]) == (worker["minReplicas"] * gpus,
                                                                worker["maxReplicas"] * gpus)
        assert auto["target_ongoing_requests"] == generator["user_config"]["max_batch_size"]
        assert generator["max_ongoing_requests"] >= generator["user_config"]["max_batch_size"]
    assert worker["minReplicas"] <= worker["replicas"] <= worker["maxReplicas"]
    assert deployments[gen.INGRESS]["num_replicas"] == 1  # /metrics is per ingress replica: the PodMonitor scrapes one
    cluster = rayservice["spec"]["rayClusterConfig"]
    assert cluster["enableInTreeAutoscaling"] is True and cluster["rayVersion"] == ray.__version__
    assert cluster["headGroupSpec"]["rayStartParams"]["num-cpus"] == "0"  # no replica on the head


def test_resources_probes_and_user(rayservice: dict[str, Any]) -> None:
    for name, template in pod_templates(rayservice).items():
        spec = template["spec"]
        assert spec["securityContext"]["runAsNonRoot"] is True and spec["securityContext"]["runAsUser"] >= 1000
        (container,) = spec["containers"]
        resources = container["resources"]
        assert resources["requests"] and resources["limits"]
        for key in ("cpu", "memory"):
            assert key in resources["requests"] and key in resources["limits"], (name, key)
        ports = {p["name"]: p["containerPort"] for p in container["ports"]}
        assert ports["serve"] == 8000 and ports["grpc"] == 9000 and ports["metrics"] == 8080, name
        assert template["metadata"]["labels"]["app.kubernetes.io/name"] == "djepa"
    head = pod_templates(rayservice)["head"]["spec"]["containers"][0]
    assert {p["name"]: p["containerPort"] for p in head["ports"]}["dashboard"] == 8265
    assert "readinessProbe" not in head  # KubeRay checks the head before it deploys the app: no /readyz there
    worker = pod_templates(rayservice)["gpu"]["spec"]["containers"][0]
    assert worker["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": 8000}
    assert worker["resources"]["limits"]["nvidia.com/gpu"] == worker["resources"]["requests"]["nvidia.com/gpu"]
    head_params = rayservice["spec"]["rayClusterConfig"]["headGroupSpec"]["rayStartParams"]
    assert head_params["metrics-export-port"] == "8080" and head_params["dashboard-host"] == "0.0.0.0"


def _matches(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


def test_service_and_podmonitors_select_the_right_pods_and_ports(rayservice: dict[str, Any]) -> None:
    templates = pod_templates(rayservice)
    (service,) = load_all("service.yaml")
    selected = [n for n, t in templates.items() if _matches(service["spec"]["selector"], t["metadata"]["labels"])]
    assert selected == ["gpu"]  # the workers: each has a proxy and a /readyz readiness probe
    worker_ports = {p["name"] for p in templates["gpu"]["spec"]["containers"][0]["ports"]}
    assert {p["targetPort"] for p in service["spec"]["ports"]} <= worker_ports
    assert {p["name"]: p["port"] for p in service["spec"]["ports"]} == {"http": 8000, "grpc": 9000}

    monitors = {m["metadata"]["name"]: m for m in load_all("podmonitor.yaml")}
    assert set(monitors) == {"djepa-ingress", "djepa-ray"}  # the job names the alert rules match
    for monitor in monitors.values():
        assert monitor["apiVersion"] == "monitoring.coreos.com/v1" and monitor["kind"] == "PodMonitor"
    picked = {name: [n for n, t in templates.items()
                     if _matches(m["spec"]["selector"]["matchLabels"], t["metadata"]["labels"])]
              for name, m in monitors.items()}
    assert picked == {"djepa-ingress": ["head"], "djepa-ray": ["head", "gpu"]}
    for name, m in monitors.items():
        for endpoint in m["spec"]["podMetricsEndpoints"]:
            for pod in picked[name]:
                ports = {p["name"] for p in templates[pod]["spec"]["containers"][0]["ports"]}
                assert endpoint["port"] in ports and endpoint["path"] == "/metrics"


def test_kustomization_lists_every_manifest() -> None:
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    assert sorted(kustomization["resources"]) == sorted(
        p.name for p in K8S.glob("*.yaml") if p.name != "kustomization.yaml")


@pytest.mark.parametrize("target", ["gpu", "cpu"])
def test_container_serve_configs_load_in_djepa_serve(tmp_path: Path, target: str) -> None:
    base = yaml.safe_load((ROOT / "deploy" / "serve.yaml").read_text())
    path = tmp_path / "serve.yaml"
    path.write_text(yaml.safe_dump(gen.serve_config(base, target)))
    plan = load_plan(path)
    assert plan.host == "0.0.0.0" and plan.port == 8000 and plan.grpc_port == 9000
    assert plan.config.engine.device == ("cuda" if target == "gpu" else "cpu")
    for name, share in gen.GPU_SHARE.items():
        if name in plan.options:
            assert plan.options[name]["ray_actor_options"]["num_gpus"] == (share if target == "gpu" else 0)
    assert gen.GENERATOR in plan.options
