"""The Dockerfiles of docker/, read with BuildKit's own parser (the `dockerfile` package): no Docker
engine runs here, so each image's instructions are checked statically, and the build steps that need
no network (stubs, container config, the package wheel) run on a copy of the build context."""

from __future__ import annotations

import fnmatch
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import dockerfile
import pytest
import ray
import torch
import yaml

from tests.deploy.tools import ROOT

DOCKER = ROOT / "docker"
IMAGES = {"Dockerfile.serve": "gpu", "Dockerfile.cpu": "cpu", "Dockerfile.train": "train"}
SECRET = re.compile(r"KEY|TOKEN|PASSWORD|PASSWD|SECRET|CREDENTIAL", re.I)
PINNED_BASE = re.compile(r"^[\w.\-/]+:[\w.\-]*\d+\.\d+[\w.\-]*@sha256:[0-9a-f]{64}$")  # name:version-tag@digest
REQUIREMENT = re.compile(r"^[A-Za-z0-9_.\-]+(\[[\w,]+\])?==[0-9][\w.+!]*$")


def commands(name: str) -> tuple[dockerfile.Command, ...]:
    return dockerfile.parse_file(str(DOCKER / name))


def stages(cmds: tuple[dockerfile.Command, ...]) -> list[list[dockerfile.Command]]:
    out: list[list[dockerfile.Command]] = []
    for c in cmds:
        if c.cmd == "FROM":
            out.append([])
        if out:
            out[-1].append(c)
    return out


def args(cmds: tuple[dockerfile.Command, ...]) -> dict[str, str]:
    """ARG defaults, global and per stage (the names are distinct across stages here)."""
    found: dict[str, str] = {}
    for c in cmds:
        if c.cmd == "ARG" and "=" in c.value[0]:
            key, value = c.value[0].split("=", 1)
            found[key] = value
    return found


def expand(text: str, values: dict[str, str]) -> str:
    return re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: values.get(m.group(1) or m.group(2), m.group(0)), text)


def dockerignore_allows(path: str) -> bool:
    """Docker's .dockerignore semantics (last matching pattern wins, `!` re-includes), enough for ours."""
    allowed = True
    for raw in (ROOT / ".dockerignore").read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        negate = line.startswith("!")
        pattern = line[1:] if negate else line
        pattern = pattern.rstrip("/")
        parts = path.split("/")
        prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        if pattern.startswith("**/"):
            hit = any(fnmatch.fnmatch(p, pattern[3:]) for p in parts)
        else:
            hit = any(fnmatch.fnmatchcase(p, pattern) for p in prefixes)  # a folder left out leaves its files out
        if hit:
            allowed = negate
    return allowed


@pytest.mark.parametrize("name", sorted(IMAGES))
def test_base_images_are_pinned_by_version_and_digest(name: str) -> None:
    cmds = commands(name)
    values = args(cmds)
    names = set()
    froms = [c for c in cmds if c.cmd == "FROM"]
    assert len(froms) >= 2, f"{name}: not multi-stage"
    for c in froms:
        image = expand(c.value[0], values)
        assert image in names or PINNED_BASE.match(image), f"{name}: base image not pinned: {image}"
        if len(c.value) == 3 and c.value[1].upper() == "AS":
            names.add(c.value[2])
    assert froms[-1].value[-1] == "runtime"


@pytest.mark.parametrize("name", sorted(IMAGES))
def test_final_stage_runs_as_non_root_with_a_health_check(name: str) -> None:
    final = stages(commands(name))[-1]
    users = [c.value[0] for c in final if c.cmd == "USER"]
    assert users, f"{name}: no USER in the final stage (runs as root)"
    user = users[-1].split(":")[0]
    assert user not in {"root", "0"} and (not user.isdigit() or int(user) >= 1000), f"{name}: USER {users[-1]}"
    checks = [c for c in final if c.cmd == "HEALTHCHECK"]
    assert len(checks) == 1, f"{name}: one HEALTHCHECK expected"
    if IMAGES[name] == "train":
        assert checks[0].value == ("NONE",)  # a batch job: no port to ask
    else:
        assert checks[0].value[0] == "CMD" and "http://127.0.0.1:8000/readyz" in checks[0].original
        assert any(c.cmd == "EXPOSE" and {"8000", "9000", "8080"} <= set(c.value) for c in final)
        cmd = [c for c in final if c.cmd == "CMD"][-1]
        assert cmd.json and cmd.value[:2] == ("djepa", "serve")


@pytest.mark.parametrize("name", sorted(IMAGES))
def test_no_secrets_in_env_or_args(name: str) -> None:
    for c in commands(name):
        if c.cmd in {"ENV", "ARG"}:
            keys = c.value[0::2] if c.cmd == "ENV" else [v.split("=", 1)[0] for v in c.value]
            assert not [k for k in keys if SECRET.search(k)], f"{name}:{c.start_line}: {c.original}"
        if c.cmd == "RUN":
            assert not re.search(r"(?i)(password|token|api[_-]?key)\s*=", c.value[0]), c.original


@pytest.mark.parametrize("name", sorted(IMAGES))
def test_copies_only_named_paths_that_the_build_context_allows(name: str) -> None:
    for c in commands(name):
        if c.cmd not in {"COPY", "ADD"}:
            continue
        assert c.cmd == "COPY", f"{name}: ADD fetches or unpacks implicitly; use COPY"
        if any(f.startswith("--from=") for f in c.flags):
            continue
        for src in c.value[:-1]:
            assert src not in {".", "./", "*", "/"} and ".." not in src, f"{name}: COPY {src} copies the whole context"
            assert (ROOT / src).exists(), f"{name}: COPY source {src} does not exist"
            assert dockerignore_allows(src.rstrip("/")), f"{name}: COPY {src} but .dockerignore leaves it out"


def test_dockerignore_leaves_out_the_working_tree_state() -> None:
    for path in [".git", ".venv", "runs", "tests", "bench", "shared", "service/proto_gen",
                 "djepa_core/__pycache__", "deploy/k8s", "secrets.env", "djepa.egg-info"]:
        assert not dockerignore_allows(path), path
    for path in ["pyproject.toml", "djepa_core/cli.py", "service/deployments.py", "proto/djepa/v1/generation.proto",
                 "deploy/serve.yaml", "scripts/gen_proto.py"]:
        assert dockerignore_allows(path), path


@pytest.mark.parametrize("name", sorted(IMAGES))
def test_versions_are_pinned(name: str) -> None:
    cmds = commands(name)
    values = args(cmds)
    assert values["TORCH_VERSION"] == torch.__version__.split("+")[0]  # the build the tests ran with
    for c in cmds:
        if c.cmd != "RUN" or "pip install" not in c.value[0]:
            continue
        for part in c.value[0].split("&&"):
            if "pip install" not in part:
                continue
            words = [w.strip("\"'") for w in part.split()[2:]]
            specs = [w for w in words if not w.startswith("-") and not w.startswith("/") and w not in {".", "\\"}
                     and not w.startswith("$") and not w.startswith("http")]
            for spec in specs:
                assert "==" in spec, f"{name}: unpinned `{spec}` in: {part.strip()}"
            if "-r" in words:
                assert words[words.index("-r") + 1].startswith("/tmp/req/requirements")
    for req in DOCKER.glob("requirements*.txt"):
        for line in req.read_text().splitlines():
            line = line.split("#")[0].strip()
            if line and not line.startswith("-r "):
                assert REQUIREMENT.match(line), f"{req.name}: not pinned: {line}"
    serve = (DOCKER / "requirements-serve.txt").read_text()
    assert f"ray[serve]=={ray.__version__}\n" in serve


def test_gpu_images_install_a_cuda_torch_and_the_cpu_image_the_cpu_build() -> None:
    for name in ("Dockerfile.serve", "Dockerfile.train"):
        cmds = commands(name)
        assert args(cmds)["BASE_IMAGE"].startswith("nvidia/cuda:") and "cudnn-runtime" in args(cmds)["BASE_IMAGE"]
        assert any("torch.version.cuda" in c.value[0] for c in cmds if c.cmd == "RUN")
    assert args(commands("Dockerfile.cpu"))["TORCH_INDEX_URL"].endswith("/whl/cpu")


def _build_context(dest: Path) -> None:
    """The files of the build context the Dockerfiles copy, as .dockerignore lets them through."""
    for path in sorted(ROOT.rglob("*")):
        rel = path.relative_to(ROOT).as_posix()
        if rel.startswith((".git/", ".venv/")) or not path.is_file() or not dockerignore_allows(rel):
            continue
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, dest / rel)


def test_build_steps_run_on_the_build_context(tmp_path: Path) -> None:
    """What the build stage runs without a network, on a copy of the context: the gRPC stubs (absent
    from the context), the container Serve configs, and the wheel, which holds the stubs and the models."""
    ctx = tmp_path / "ctx"
    _build_context(ctx)
    assert not (ctx / "service" / "proto_gen").exists() and not (ctx / "tests").exists()
    run = {"cwd": ctx, "capture_output": True, "text": True, "timeout": 300}
    done = subprocess.run([sys.executable, "scripts/gen_proto.py"], check=False, **run)  # type: ignore[call-overload]
    assert done.returncode == 0, done.stderr
    for target in ("gpu", "cpu"):
        done = subprocess.run([sys.executable, "scripts/gen_rayservice.py", "--serve-config", target], check=False,
                              **run)  # type: ignore[call-overload]
        assert done.returncode == 0, done.stderr
        config = yaml.safe_load(done.stdout)
        assert config["http_options"]["host"] == "0.0.0.0"
    done = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
                           str(tmp_path / "dist"), "."], check=False, **run)  # type: ignore[call-overload]
    assert done.returncode == 0, done.stderr
    (wheel,) = (tmp_path / "dist").glob("djepa-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "service/proto_gen/djepa/v1/generation_pb2_grpc.py" in names
    assert "service/deployments.py" in names
    assert any(n.startswith("djepa_core/assets/") and n.endswith(".safetensors") for n in names)
