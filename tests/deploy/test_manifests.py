"""deploy/ checked without a container engine: the Dockerfile, the compose file and every Kubernetes
manifest parse and name only what exists — the image the Dockerfile builds, the port Patron listens
on, CLI commands its parser accepts, `PATRON_*` variables its settings know, probe paths it routes."""

from __future__ import annotations

import argparse
import logging
import re
import shlex
import tomllib
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml
from litestar import Litestar

from plugin import PatronConfig, PatronPlugin
from plugin.cli import build_parser
from plugin.settings import ENV_PREFIX, Settings, load_settings

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"
VERSION = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
IMAGE = f"patron:{VERSION}"
"""What the compose file builds from deploy/Dockerfile and every manifest runs."""


def routes() -> set[str]:
    app = Litestar(plugins=[PatronPlugin(PatronConfig(settings=Settings()))])
    return {route.path for route in app.routes}


def exact(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The parser and its subcommands' parsers, refusing abbreviated flags (`--thread` for
    `--threads`): a manifest should spell a flag as the CLI does."""
    parser.allow_abbrev = False
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for subparser in action.choices.values():
                exact(subparser)
    return parser


def assert_command(argv: list[str]) -> None:
    """The arguments name a real `patron` command with flags it accepts."""
    try:
        args = exact(build_parser()).parse_args(argv)
    except SystemExit:
        pytest.fail(f"`patron {shlex.join(argv)}` is not a command the CLI accepts")
    assert callable(args.run)


def settings_from(environ: Mapping[str, str], caplog: pytest.LogCaptureFixture) -> Settings:
    """Settings from the variables, failing on a `PATRON_*` name Settings does not know."""
    assert environ, "no variables given"
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="plugin.settings"):
        settings = load_settings(environ)
    assert not caplog.records, [record.getMessage() for record in caplog.records]
    return settings


# --- Dockerfile ---------------------------------------------------------------------------------------


class Dockerfile:
    def __init__(self, path: Path) -> None:
        # Join continued lines, drop comments: one instruction per entry.
        text = re.sub(r"\\\n", " ", path.read_text())
        self.instructions = [
            tuple(line.strip().split(maxsplit=1))
            for line in text.splitlines()
            if line.strip() and not line.lstrip().startswith("#")
        ]

    def all(self, name: str) -> list[str]:
        return [rest for instruction, rest in self.instructions if instruction == name]

    def runtime_stage(self) -> list[tuple[str, str]]:
        starts = [i for i, (instruction, _) in enumerate(self.instructions) if instruction == "FROM"]
        return self.instructions[starts[-1] :]

    def env(self) -> dict[str, str]:
        values: dict[str, str] = {}
        for instruction, rest in self.runtime_stage():
            if instruction == "ENV":
                values.update(dict(pair.split("=", 1) for pair in shlex.split(rest)))
        return values


@pytest.fixture(scope="module")
def dockerfile() -> Dockerfile:
    return Dockerfile(DEPLOY / "Dockerfile")


class TestDockerfile:
    def test_two_stages_and_the_runtime_runs_as_a_user_without_privileges(
        self, dockerfile: Dockerfile
    ) -> None:
        assert len(dockerfile.all("FROM")) == 2
        runtime = dict(dockerfile.runtime_stage())
        assert "COPY" in runtime
        assert "--from=builder" in runtime["COPY"]
        user = runtime["USER"].split(":")[0]
        assert user not in {"0", "root"}

    def test_lightfm_is_not_built_for_the_build_machines_cpu(self, dockerfile: Dockerfile) -> None:
        build_env = " ".join(dockerfile.all("ENV"))
        assert "LIGHTFM_NO_CFLAGS=1" in build_env
        assert "-march=native" not in build_env

    def test_the_runtime_environment_is_valid_configuration(
        self, dockerfile: Dockerfile, caplog: pytest.LogCaptureFixture
    ) -> None:
        patron_env = {k: v for k, v in dockerfile.env().items() if k.startswith(ENV_PREFIX)}
        settings = settings_from(patron_env, caplog)
        assert settings.host == "0.0.0.0"  # noqa: S104 - a container listens on every interface
        assert dockerfile.all("EXPOSE") == [str(settings.port)]

    def test_the_health_check_asks_a_route_on_the_served_port(self, dockerfile: Dockerfile) -> None:
        (check,) = dockerfile.all("HEALTHCHECK")
        path = re.search(r"http://127\.0\.0\.1:%s(/\w+)'", check)
        assert path is not None, check
        assert path.group(1) in routes()
        assert "PATRON_PORT" in check

    def test_entrypoint_and_default_command_are_a_patron_command(self, dockerfile: Dockerfile) -> None:
        (entrypoint,) = dockerfile.all("ENTRYPOINT")
        (cmd,) = dockerfile.all("CMD")
        # Under an init, so that SIGTERM reaches the server and the worker.
        assert yaml.safe_load(entrypoint) == ["tini", "--", "patron"]
        assert_command(yaml.safe_load(cmd))

    def test_the_build_copies_what_exists_and_the_context_keeps_it(self, dockerfile: Dockerfile) -> None:
        ignore = (ROOT / ".dockerignore").read_text().splitlines()
        for rest in dockerfile.all("COPY"):
            if rest.startswith("--from"):
                continue
            source = rest.split()[0]
            assert (ROOT / source).exists(), source
            assert f"!{source}" in ignore or f"!{source}/" in ignore, source


# --- compose ------------------------------------------------------------------------------------------

_INTERPOLATION = re.compile(r"\$\{(\w+)(?::?-([^}]*)|:?\?[^}]*)?\}")


def interpolate(value: str) -> str:
    """Compose's `${NAME:-default}` as it resolves with NAME unset; `${NAME}` as a placeholder."""
    return _INTERPOLATION.sub(lambda m: m.group(2) if m.group(2) is not None else "placeholder", value)


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    document = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    assert isinstance(document, dict)
    return document


def patron_services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        name: service
        for name, service in compose["services"].items()
        if str(service.get("image", "")).startswith("patron")
    }


class TestCompose:
    def test_runs_two_api_replicas_a_worker_postgres_and_redis(self, compose: dict[str, Any]) -> None:
        services = compose["services"]
        commands = {name: service.get("command") for name, service in patron_services(compose).items()}
        assert commands["api"] == ["serve", "--no-worker"]
        assert services["api"]["deploy"]["replicas"] == 2
        assert commands["worker"] == ["worker"]
        assert commands["migrate"] == ["migrate"]
        for infra in ("postgres", "redis"):
            assert services[infra]["healthcheck"]["test"]
            assert services[infra]["volumes"]
            volume = services[infra]["volumes"][0].split(":")[0]
            assert volume in compose["volumes"]

    def test_patron_services_run_the_image_the_dockerfile_builds(self, compose: dict[str, Any]) -> None:
        services = patron_services(compose)
        assert set(services) == {"migrate", "api", "worker"}
        for service in services.values():
            assert service["image"] == IMAGE
            build = service["build"]
            assert (DEPLOY / build["context"]).resolve() == ROOT
            assert (ROOT / build["dockerfile"]).resolve() == DEPLOY / "Dockerfile"

    def test_commands_exist(self, compose: dict[str, Any]) -> None:
        for service in patron_services(compose).values():
            assert_command(service["command"])

    def test_variables_are_settings(self, compose: dict[str, Any], caplog: pytest.LogCaptureFixture) -> None:
        for service in patron_services(compose).values():
            environ = {name: interpolate(str(value)) for name, value in service["environment"].items()}
            settings = settings_from(environ, caplog)
            assert settings.database_url is not None
            assert settings.redis_url is not None
            assert not settings.embedded
            assert "@postgres:5432/" in settings.database_url
            assert settings.redis_url.startswith("redis://redis:6379/")
            assert settings.admin_token is None  # empty unless the operator sets it

    def test_the_proxy_balances_over_the_api_port_and_checks_readiness(
        self, compose: dict[str, Any], dockerfile: Dockerfile
    ) -> None:
        config = (DEPLOY / "haproxy.cfg").read_text()
        port = dockerfile.env()["PATRON_PORT"]
        assert re.search(rf"^\s*server-template api \d+ api:{port} ", config, re.MULTILINE)
        check = re.search(r"^\s*option httpchk GET (\S+)", config, re.MULTILINE)
        assert check is not None
        assert check.group(1) in routes()
        bind = re.search(r"^\s*bind :(\d+)", config, re.MULTILINE)
        assert bind is not None
        proxy = compose["services"]["proxy"]
        assert any(mapping.endswith(f":{bind.group(1)}") for mapping in proxy["ports"])
        assert proxy["volumes"][0].split(":")[0] == "./haproxy.cfg"


# --- Kubernetes ---------------------------------------------------------------------------------------


def k8s_documents() -> Iterator[tuple[str, dict[str, Any]]]:
    for path in sorted(K8S.glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        for document in yaml.safe_load_all(path.read_text()):
            if document is not None:
                yield path.name, document


@pytest.fixture(scope="module")
def manifests() -> list[dict[str, Any]]:
    return [document for _, document in k8s_documents()]


def by_kind(manifests: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {m["metadata"]["name"]: m for m in manifests if m["kind"] == kind}


def pod_specs(manifests: list[dict[str, Any]]) -> Iterator[tuple[str, dict[str, Any]]]:
    for manifest in manifests:
        if manifest["kind"] == "Deployment":
            yield manifest["metadata"]["name"], manifest["spec"]["template"]["spec"]
        elif manifest["kind"] == "CronJob":
            yield manifest["metadata"]["name"], manifest["spec"]["jobTemplate"]["spec"]["template"]["spec"]


def containers(manifests: list[dict[str, Any]]) -> Iterator[tuple[str, dict[str, Any]]]:
    for name, spec in pod_specs(manifests):
        for container in spec.get("initContainers", []) + spec["containers"]:
            yield f"{name}/{container['name']}", container


def config_environ(manifests: list[dict[str, Any]]) -> dict[str, str]:
    (config,) = by_kind(manifests, "ConfigMap").values()
    (secret,) = by_kind(manifests, "Secret").values()
    return {**config["data"], **secret["stringData"]}


class TestKubernetes:
    def test_kustomization_lists_every_manifest_and_tags_the_image(self) -> None:
        kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
        files = {path.name for path in K8S.glob("*.yaml")} - {"kustomization.yaml"}
        assert set(kustomization["resources"]) == files
        assert kustomization["images"] == [{"name": IMAGE.split(":")[0], "newTag": VERSION}]

    def test_the_parts_a_deployment_needs_are_there(self, manifests: list[dict[str, Any]]) -> None:
        kinds = {m["kind"] for m in manifests}
        assert {
            "Namespace",
            "ConfigMap",
            "Secret",
            "Deployment",
            "Service",
            "HorizontalPodAutoscaler",
            "PodDisruptionBudget",
            "CronJob",
        } <= kinds
        assert set(by_kind(manifests, "Deployment")) == {"patron-api", "patron-worker"}

    def test_every_container_runs_the_built_image_with_a_real_command(
        self, manifests: list[dict[str, Any]]
    ) -> None:
        seen = {}
        for name, container in containers(manifests):
            assert container["image"] == IMAGE, name
            assert_command(container["args"])
            seen[name] = container["args"][0]
        assert seen == {
            "patron-api/migrate": "migrate",
            "patron-api/api": "serve",
            "patron-worker/worker": "worker",
            "patron-train/train": "train",
        }

    def test_configuration_is_valid_settings_and_every_container_gets_it(
        self, manifests: list[dict[str, Any]], caplog: pytest.LogCaptureFixture
    ) -> None:
        settings = settings_from(config_environ(manifests), caplog)
        assert not settings.embedded
        assert not settings.train_in_worker  # the CronJob trains
        for name, container in containers(manifests):
            sources = [sorted(ref.items()) for ref in container["envFrom"]]
            assert sources == [
                [("configMapRef", {"name": "patron-config"})],
                [("secretRef", {"name": "patron-secrets"})],
            ], name
            for variable in container.get("env", []):
                assert not variable["name"].startswith(ENV_PREFIX), name

    def test_probes_ask_routes_on_the_port_patron_listens_on(
        self, manifests: list[dict[str, Any]], caplog: pytest.LogCaptureFixture
    ) -> None:
        port = settings_from(config_environ(manifests), caplog).port
        api = by_kind(manifests, "Deployment")["patron-api"]["spec"]["template"]["spec"]["containers"][0]
        ports = {entry["name"]: entry["containerPort"] for entry in api["ports"]}
        assert ports == {"http": port}
        probes = {kind: api[kind]["httpGet"] for kind in ("startupProbe", "readinessProbe", "livenessProbe")}
        assert probes["readinessProbe"]["path"] == "/ready"
        assert probes["livenessProbe"]["path"] == "/health"
        known = routes()
        for probe in probes.values():
            assert probe["path"] in known
            assert probe["port"] in ports
        assert api["resources"]["requests"]
        assert api["resources"]["limits"]

    def test_service_autoscaler_and_disruption_budgets_point_at_the_deployments(
        self, manifests: list[dict[str, Any]]
    ) -> None:
        deployments = by_kind(manifests, "Deployment")
        labels = {name: d["spec"]["template"]["metadata"]["labels"] for name, d in deployments.items()}
        (service,) = by_kind(manifests, "Service").values()
        assert service["spec"]["selector"] == labels["patron-api"]
        (api,) = deployments["patron-api"]["spec"]["template"]["spec"]["containers"]
        api_ports = {port["name"] for port in api["ports"]}
        assert {p["targetPort"] for p in service["spec"]["ports"]} <= api_ports
        (hpa,) = by_kind(manifests, "HorizontalPodAutoscaler").values()
        assert hpa["spec"]["scaleTargetRef"]["name"] == "patron-api"
        assert "replicas" not in deployments["patron-api"]["spec"]  # the autoscaler owns it
        assert hpa["spec"]["minReplicas"] >= 2
        budgets = by_kind(manifests, "PodDisruptionBudget").values()
        assert sorted(b["spec"]["selector"]["matchLabels"] == labels["patron-api"] for b in budgets) == [
            False,
            True,
        ]
        for name, deployment in deployments.items():
            assert deployment["spec"]["selector"]["matchLabels"] == labels[name]

    def test_pods_run_without_privileges(self, manifests: list[dict[str, Any]]) -> None:
        for name, spec in pod_specs(manifests):
            assert spec["securityContext"]["runAsNonRoot"] is True, name
            assert spec["securityContext"]["runAsUser"] != 0, name
        for name, container in containers(manifests):
            assert container["securityContext"]["allowPrivilegeEscalation"] is False, name

    def test_training_runs_one_at_a_time(self, manifests: list[dict[str, Any]]) -> None:
        (cron,) = by_kind(manifests, "CronJob").values()
        assert cron["spec"]["concurrencyPolicy"] == "Forbid"
