"""`djepa serve`'s reading of deploy/serve.yaml (starting Ray is covered by test_serve.py's fixture)."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest

from djepa_core.cli import build_parser
from service.cli import example_curl, load_plan

CONFIG = Path(__file__).resolve().parents[2] / "deploy" / "serve.yaml"


def test_the_deploy_file_is_read() -> None:
    plan = load_plan(CONFIG)
    assert (plan.app_name, plan.route_prefix, plan.host, plan.port) == ("djepa", "/", "127.0.0.1", 8000)
    gen = plan.options["ImageGenerator"]
    assert gen["max_ongoing_requests"] >= gen["user_config"]["max_batch_size"]
    assert gen["ray_actor_options"]["num_cpus"] < 1 and "max_queued_requests" in gen
    assert plan.config.engine.checkpoint is None and plan.config.max_images_per_request == 16


def test_every_generator_replica_gets_the_malloc_settings() -> None:
    """deploy/serve.yaml says it for `serve deploy` (where Serve applies the file's options itself), and
    build_app's merge keeps it under any options entry that replaces the decorator's ray_actor_options."""
    with warnings.catch_warnings():  # Ray Serve's first import warns of its own pydantic use
        warnings.simplefilter("ignore", DeprecationWarning)
        from service.deployments import REPLICA_ENV, ImageGeneratorDeployment, replica_options
    plan = load_plan(CONFIG)
    generators = [name for name in plan.options if name.endswith("Generator")]
    assert sorted(generators) == ["ImageGenerator", "SpeechGenerator", "VideoGenerator"]
    for name in generators:
        assert plan.options[name]["ray_actor_options"]["runtime_env"]["env_vars"] == REPLICA_ENV
    deployment: object = ImageGeneratorDeployment
    merged = replica_options(deployment, {"ray_actor_options": {"num_gpus": 1}, "max_ongoing_requests": 8})
    assert merged["max_ongoing_requests"] == 8
    assert merged["ray_actor_options"] == {"num_cpus": 0.5, "num_gpus": 1, "runtime_env": {"env_vars": REPLICA_ENV}}
    assert REPLICA_ENV["MALLOC_ARENA_MAX"] == "1" and int(REPLICA_ENV["MALLOC_TRIM_THRESHOLD_"]) >= 1 << 30
    own = {"ray_actor_options": {"runtime_env": {"env_vars": {"MALLOC_ARENA_MAX": "16", "X": "y"},
                                                 "pip": ["z"]}}}
    assert replica_options(deployment, own)["ray_actor_options"]["runtime_env"] == {
        "env_vars": {**REPLICA_ENV, "MALLOC_ARENA_MAX": "16", "X": "y"}, "pip": ["z"]}
    assert replica_options(deployment, {})["ray_actor_options"]["num_cpus"] == 0.5


def test_command_line_overrides(tmp_path: Path) -> None:
    plan = load_plan(CONFIG, host="127.0.0.1", port=9123, engine_overrides={"preset": "djepa-tiny", "device": None})
    assert plan.port == 9123 and plan.config.engine.preset == "djepa-tiny" and plan.config.engine.device == "cpu"
    with pytest.raises(FileNotFoundError):
        load_plan(tmp_path / "none.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("applications:\n  - name: x\n    args: {enginee: {}}\n")
    with pytest.raises(ValueError, match="enginee"):
        load_plan(bad)


def test_serve_is_a_djepa_command() -> None:
    args = build_parser().parse_args(["serve", "--preset", "djepa-tiny", "--port", "0"])
    assert args.command == "serve" and callable(args.func)
    assert "/v1/images" in example_curl("http://127.0.0.1:8000")


def test_the_deploy_file_enables_grpc_with_the_services_of_the_app() -> None:
    from service.config import GRPC_SERVICER_FUNCTIONS

    plan = load_plan(CONFIG)
    assert plan.grpc_port == 9000 and plan.grpc_servicer_functions == GRPC_SERVICER_FUNCTIONS
    assert load_plan(CONFIG, grpc_port=9100).grpc_port == 9100
