"""The deployment files: the image, docker-compose.yml and the kustomize overlays.

The overlays are rendered with ``kubectl kustomize`` (offline) and turned into JSON
with ``kubectl label --local -o json`` (removing a label nobody sets, so nothing
changes), which parses them as kubectl does before it applies them and lets the tests
walk real objects. The re-key Job, applied by hand, is parsed the same way.
docker-compose.yml is parsed with PyYAML, anchors and ``<<`` merges resolved as
Compose resolves them, so a service is checked with what it really gets; the READMEs'
shell blocks are read for the API-key walk-throughs. test_k8s_validation.py checks the
same renderings and the Job against the Kubernetes and KEDA schemas, and checks their
network policies, autoscalers and disruption budgets.

Without kubectl (on PATH, or named by ``KUBECTL``) the Kubernetes tests skip, or
fail when the ``CI`` variable is set.
"""

from __future__ import annotations

import functools
import importlib.metadata
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from packaging.requirements import Requirement

from alimi import api_keys, crypto
from alimi.settings import BaseSettings, env_name
from alimi.templates import kakao_templates
from alimi_delivery.settings import DeliverySettings
from alimi_intake.settings import IntakeSettings
from alimi_receipts.settings import ReceiptsSettings
from alimi_segmenter.settings import SegmenterSettings

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "k8s"
OVERLAYS = ("dev", "prod", "operators")
# The overlays that run the provider sandbox (operators is dev with the broker and database).
SANDBOXED = ("dev", "operators")

# name -> (container args, port of /healthz and /readyz)
SERVICES: dict[str, tuple[list[str], int]] = {
    "intake": (["alimi_intake"], 9100),
    "segmenter": (["alimi_segmenter"], 9101),
    "delivery-sms": (["alimi_delivery", "--channel", "sms"], 9102),
    "delivery-kakao": (["alimi_delivery", "--channel", "kakao"], 9102),
    "delivery-slack": (["alimi_delivery", "--channel", "slack"], 9102),
    "receipts": (["alimi_receipts"], 9103),
}
# name -> port of the HTTP API
HTTP_SERVICES = {"intake": 8080, "receipts": 8081}
# services that need MongoDB only, and so get no RabbitMQ URL
MONGO_ONLY = ("receipts",)
REPORT_PATHS = {
    "SANDBOX_SMS_REPORT_URL": "/v1/reports/sms",
    "SANDBOX_KAKAO_REPORT_URL": "/v1/reports/kakao",
}
SANDBOX: dict[str, tuple[list[str], int]] = {"sandbox": (["alimi_sandbox"], 8090)}
WORKERS = ("segmenter", "delivery-sms", "delivery-kakao", "delivery-slack")
# where each worker's ALIMI_DRAIN_GRACE_S, the drain on SIGTERM, defaults from
WORKER_SETTINGS: dict[str, type[SegmenterSettings | DeliverySettings]] = {
    "segmenter": SegmenterSettings,
    "delivery-sms": DeliverySettings,
    "delivery-kakao": DeliverySettings,
    "delivery-slack": DeliverySettings,
}
# What a stopping pod needs besides its preStop pause and its drain: cancel what is
# left, flush, close its broker and database connections.
SHUTDOWN_MARGIN_S = 10
# Staff posts are few, so one replica is enough even in production.
SINGLE_REPLICA = ("delivery-slack",)
SERVICE_SETTINGS: dict[str, type[BaseSettings]] = {
    "intake": IntakeSettings,
    "segmenter": SegmenterSettings,
    "delivery-sms": DeliverySettings,
    "delivery-kakao": DeliverySettings,
    "delivery-slack": DeliverySettings,
    "receipts": ReceiptsSettings,
}
# The keys of the phone numbers at rest go to the service that encrypts them and the one
# that decrypts them, and to no other.
PHONE_KEY_SERVICES = ("intake", "segmenter")
PHONE_KEYS_VARIABLE = "ALIMI_PHONE_KEYS"
PHONE_KEYS_SECRET_KEY = "phone-keys"
# The one-off re-key Job (python -m alimi_intake.rekey), in no kustomization.
REKEY_JOB = K8S / "jobs/rekey.yaml"
# The sandbox loads Alimi's AlimTalk templates from this file (compose mounts it, the
# sandbox component turns it into a ConfigMap).
KAKAO_TEMPLATES_FILE = K8S / "components/sandbox/kakao-templates.json"

SECRET_NAME = "alimi-secrets"
SECRET_KEYS = {
    "amqp-url",
    "mongo-url",
    "phone-hash-key",
    "phone-keys",
    "sms-secret-key",
    "kakao-secret-key",
    "kakao-sender-key",
    "slack-token",
    "report-secret",
}
SECRET_VARIABLES = {
    "ALIMI_AMQP_URL",
    "ALIMI_MONGO_URL",
    "ALIMI_PHONE_HASH_KEY",
    "ALIMI_PHONE_KEYS",
    "ALIMI_SMS_SECRET_KEY",
    "ALIMI_KAKAO_SECRET_KEY",
    "ALIMI_KAKAO_SENDER_KEY",
    "ALIMI_SLACK_TOKEN",
    "ALIMI_REPORT_SECRET",
    "SANDBOX_SMS_SECRET_KEY",
    "SANDBOX_KAKAO_SECRET_KEY",
    "SANDBOX_KAKAO_SENDER_KEY",
    "SANDBOX_SLACK_TOKEN",
    "SANDBOX_REPORT_SECRET",
}
# provider API variable -> what the sandbox serves it under, in dev
SANDBOX_API_PATHS = {
    "ALIMI_SMS_API_URL": "",
    "ALIMI_KAKAO_API_URL": "",
    "ALIMI_SLACK_API_URL": "/slack/api/",
}
DEV_ONLY_PACKAGES = {"secantusdb", "pytest", "pytest-asyncio", "pytest-timeout", "ruff", "mypy"}


def known_variables() -> set[str]:
    models: list[type[BaseSettings]] = [
        IntakeSettings,
        SegmenterSettings,
        DeliverySettings,
        ReceiptsSettings,
    ]
    names = {env_name(field) for model in models for field in model.model_fields}
    sandbox_config = (ROOT / "services/sandbox/config.py").read_text()
    return names | set(re.findall(r'"(SANDBOX_[A-Z_]+)"', sandbox_config))


# --- Kubernetes -------------------------------------------------------------------


def kubectl() -> str:
    path = shutil.which(os.environ.get("KUBECTL", "kubectl"))
    if path is None:
        message = "kubectl is not installed, so the kustomize overlays cannot be rendered"
        if os.environ.get("CI"):
            pytest.fail(f"{message}; CI is set, so this fails instead of skipping")
        pytest.skip(message)
    return path


def render(target: str) -> tuple[str, tuple[dict[str, Any], ...]]:
    """``kubectl kustomize k8s/<target>`` as text and as parsed objects."""
    return render_dir(K8S / target)


@functools.cache
def render_dir(path: Path) -> tuple[str, tuple[dict[str, Any], ...]]:
    """``kubectl kustomize <path>`` as text and as parsed objects."""
    rendered = subprocess.run(
        [kubectl(), "kustomize", str(path)], capture_output=True, text=True, timeout=60
    )
    if rendered.returncode != 0:
        pytest.fail(f"kubectl kustomize {path} failed:\n{rendered.stderr}")
    return rendered.stdout, parse(rendered.stdout, f"the rendering of {path}")


def parse(text: str, what: str) -> tuple[dict[str, Any], ...]:
    """YAML documents as kubectl parses them before it applies them."""
    as_json = subprocess.run(
        [kubectl(), "label", "--local", "-f", "-", "-o", "json", "alimi.test/never-set-"],
        input=text,
        capture_output=True,
        text=True,
        timeout=60,
        env=os.environ | {"KUBECONFIG": os.devnull},
    )
    if as_json.returncode != 0:
        pytest.fail(f"kubectl could not parse {what}:\n{as_json.stderr}")
    objects = json_stream(as_json.stdout)
    documents = sum(1 for document in yaml.safe_load_all(text) if document)
    assert len(objects) == documents, f"some documents of {what} were lost while parsing"
    return tuple(objects)


@functools.cache
def rekey_job() -> dict[str, Any]:
    """k8s/jobs/rekey.yaml, parsed as ``kubectl apply -f`` would."""
    (job,) = parse(REKEY_JOB.read_text(), str(REKEY_JOB.relative_to(ROOT)))
    return job


def json_stream(text: str) -> list[dict[str, Any]]:
    decoder, index = json.JSONDecoder(), 0
    objects: list[dict[str, Any]] = []
    while True:
        while index < len(text) and text[index].isspace():
            index += 1
        if index == len(text):
            return objects
        obj, index = decoder.raw_decode(text, index)
        objects.extend(obj["items"] if obj.get("kind") == "List" else [obj])


def of_kind(objects: tuple[dict[str, Any], ...], kind: str) -> dict[str, dict[str, Any]]:
    return {o["metadata"]["name"]: o for o in objects if o["kind"] == kind}


def expected_services(overlay: str) -> dict[str, tuple[list[str], int]]:
    return SERVICES | SANDBOX if overlay in SANDBOXED else SERVICES


def containers(deployment: dict[str, Any]) -> list[dict[str, Any]]:
    return deployment["spec"]["template"]["spec"]["containers"]


def config_name(objects: tuple[dict[str, Any], ...]) -> str:
    """The generated name (with its hash) of the settings ConfigMap, alimi-config."""
    (name,) = [n for n in of_kind(objects, "ConfigMap") if n.startswith("alimi-config-")]
    return name


def config_data(objects: tuple[dict[str, Any], ...]) -> dict[str, str]:
    return dict(of_kind(objects, "ConfigMap")[config_name(objects)]["data"])


def env_values(container: dict[str, Any], config: dict[str, str]) -> dict[str, str]:
    """What the container sees for each plain or ConfigMap-backed variable."""
    values: dict[str, str] = {}
    if any("configMapRef" in source for source in container.get("envFrom", [])):
        values |= config
    for var in container.get("env", []):
        if "value" in var:
            values[var["name"]] = var["value"]
        elif "configMapKeyRef" in var.get("valueFrom", {}):
            values[var["name"]] = config[var["valueFrom"]["configMapKeyRef"]["key"]]
    return values


def secret_key(container: dict[str, Any], variable: str) -> str:
    (var,) = [v for v in container["env"] if v["name"] == variable]
    return str(var["valueFrom"]["secretKeyRef"]["key"])


def port_number(container: dict[str, Any], port: int | str) -> int:
    if isinstance(port, int):
        return port
    (number,) = [p["containerPort"] for p in container["ports"] if p.get("name") == port]
    return int(number)


def replica_bounds(objects: tuple[dict[str, Any], ...], name: str) -> tuple[int, int]:
    """(fewest, most) replicas of a Deployment: its autoscaler's bounds, or its count."""
    for scaled in of_kind(objects, "ScaledObject").values():
        if scaled["spec"]["scaleTargetRef"]["name"] == name:  # KEDA's defaults: 0 and 100
            return scaled["spec"].get("minReplicaCount", 0), scaled["spec"].get(
                "maxReplicaCount", 100
            )
    for hpa in of_kind(objects, "HorizontalPodAutoscaler").values():
        if hpa["spec"]["scaleTargetRef"]["name"] == name:
            return hpa["spec"].get("minReplicas", 1), hpa["spec"]["maxReplicas"]
    count = of_kind(objects, "Deployment")[name]["spec"].get("replicas", 1)
    return count, count


def pre_stop_pause_s(container: dict[str, Any]) -> int:
    """Seconds the container's preStop hook sleeps before Kubernetes sends SIGTERM."""
    hook = container.get("lifecycle", {}).get("preStop", {})
    if "sleep" in hook:
        return int(hook["sleep"]["seconds"])
    command = hook.get("exec", {}).get("command", [])
    if command[:1] == ["sleep"]:
        return int(command[1])
    assert not hook, f"a preStop hook this test cannot time: {hook}"
    return 0


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_when_an_overlay_is_rendered__then_each_service_has_a_deployment_service_and_account(
    overlay: str,
) -> None:
    _, objects = render(f"overlays/{overlay}")
    deployments = of_kind(objects, "Deployment")
    services = of_kind(objects, "Service")
    # Alimi's own: the operators overlay also makes the MongoDB members' account in mongodb.
    (namespace,) = {d["metadata"]["namespace"] for d in deployments.values()}
    accounts = {
        name: account
        for name, account in of_kind(objects, "ServiceAccount").items()
        if account["metadata"]["namespace"] == namespace
    }

    expected = set(expected_services(overlay))
    assert set(deployments) == expected
    assert set(services) == expected
    assert set(accounts) == expected
    for name, deployment in deployments.items():
        pod = deployment["spec"]["template"]
        assert deployment["spec"]["selector"]["matchLabels"] == {"app": name}
        assert pod["metadata"]["labels"]["app"] == name
        assert pod["spec"]["serviceAccountName"] == name
        assert [c["name"] for c in containers(deployment)] == [name]
        assert services[name]["spec"]["selector"] == {"app": name}


def test_when_prod_is_rendered__then_nothing_of_the_sandbox_is_in_it() -> None:
    text, objects = render("overlays/prod")
    config = config_data(objects)

    assert "sandbox" not in text.lower()
    assert set(of_kind(objects, "ConfigMap")) == {config_name(objects)}
    for variable in SANDBOX_API_PATHS:
        assert config[variable].startswith("https://"), variable


def dev_delivery_and_sandbox(
    channel: str,
) -> tuple[dict[str, Any], dict[str, str], dict[str, Any], dict[str, str]]:
    """delivery-<channel> and the sandbox in dev: each container and what it sees."""
    _, objects = render("overlays/dev")
    config = config_data(objects)
    deployments = of_kind(objects, "Deployment")
    (delivery,) = containers(deployments[f"delivery-{channel}"])
    (sandbox,) = containers(deployments["sandbox"])
    return delivery, env_values(delivery, config), sandbox, env_values(sandbox, config)


@pytest.mark.parametrize("variable", sorted(SANDBOX_API_PATHS))
def test_when_dev_is_rendered__then_every_provider_url_points_at_the_sandbox_service(
    variable: str,
) -> None:
    _, objects = render("overlays/dev")
    service_port = of_kind(objects, "Service")["sandbox"]["spec"]["ports"][0]["port"]

    url = config_data(objects)[variable]

    assert url == f"http://sandbox:{service_port}{SANDBOX_API_PATHS[variable]}"


def test_when_dev_is_rendered__then_delivery_and_the_sandbox_share_one_sms_account() -> None:
    delivery, delivery_env, sandbox, sandbox_env = dev_delivery_and_sandbox("sms")

    assert sandbox_env["SANDBOX_HOST"] == "0.0.0.0"
    assert sandbox_env["SANDBOX_SMS_APP_KEY"] == delivery_env["ALIMI_SMS_APP_KEY"]
    assert sandbox_env["SANDBOX_SMS_SENDER_NUMBERS"] == delivery_env["ALIMI_SMS_SENDER_NO"]
    assert secret_key(sandbox, "SANDBOX_SMS_SECRET_KEY") == secret_key(
        delivery, "ALIMI_SMS_SECRET_KEY"
    )


def test_when_dev_is_rendered__then_delivery_and_the_sandbox_share_one_kakao_account() -> None:
    delivery, delivery_env, sandbox, sandbox_env = dev_delivery_and_sandbox("kakao")

    assert sandbox_env["SANDBOX_KAKAO_APP_KEY"] == delivery_env["ALIMI_KAKAO_APP_KEY"]
    for sandbox_variable, delivery_variable in (
        ("SANDBOX_KAKAO_SECRET_KEY", "ALIMI_KAKAO_SECRET_KEY"),
        ("SANDBOX_KAKAO_SENDER_KEY", "ALIMI_KAKAO_SENDER_KEY"),
    ):
        assert secret_key(sandbox, sandbox_variable) == secret_key(delivery, delivery_variable)


def test_when_dev_is_rendered__then_delivery_and_the_sandbox_share_one_slack_token() -> None:
    delivery, _, sandbox, _ = dev_delivery_and_sandbox("slack")

    assert secret_key(sandbox, "SANDBOX_SLACK_TOKEN") == secret_key(delivery, "ALIMI_SLACK_TOKEN")


def test_when_dev_is_rendered__then_the_sandbox_loads_alimis_kakao_templates() -> None:
    _, objects = render("overlays/dev")
    deployment = of_kind(objects, "Deployment")["sandbox"]
    (sandbox,) = containers(deployment)
    path = Path(env_values(sandbox, config_data(objects))["SANDBOX_KAKAO_TEMPLATES_FILE"])

    (mount,) = [m for m in sandbox["volumeMounts"] if m["mountPath"] == str(path.parent)]
    (volume,) = [
        v for v in deployment["spec"]["template"]["spec"]["volumes"] if v["name"] == mount["name"]
    ]
    templates = of_kind(objects, "ConfigMap")[volume["configMap"]["name"]]
    assert json.loads(templates["data"][path.name]) == kakao_templates()


def test_when_dev_is_rendered__then_the_sandbox_reports_to_receipts_with_its_secret() -> None:
    _, objects = render("overlays/dev")
    config = config_data(objects)
    deployments = of_kind(objects, "Deployment")
    (receipts,) = containers(deployments["receipts"])
    (sandbox,) = containers(deployments["sandbox"])
    ports = {p["name"]: p["port"] for p in of_kind(objects, "Service")["receipts"]["spec"]["ports"]}

    sandbox_env = env_values(sandbox, config)
    for variable, path in REPORT_PATHS.items():
        assert sandbox_env[variable] == f"http://receipts:{ports['http']}{path}", variable
    assert secret_key(sandbox, "SANDBOX_REPORT_SECRET") == secret_key(
        receipts, "ALIMI_REPORT_SECRET"
    )


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_when_an_overlay_is_rendered__then_every_pod_runs_non_root_read_only_without_capabilities(
    overlay: str,
) -> None:
    _, objects = render(f"overlays/{overlay}")

    for name, deployment in of_kind(objects, "Deployment").items():
        pod = deployment["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True, name
        assert pod["securityContext"]["runAsUser"] == 10001, name
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}, name
        assert pod["automountServiceAccountToken"] is False, name
        for container in pod["containers"]:
            security = container["securityContext"]
            assert security["readOnlyRootFilesystem"] is True, name
            assert security["allowPrivilegeEscalation"] is False, name
            assert security["capabilities"]["drop"] == ["ALL"], name


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_when_an_overlay_is_rendered__then_probes_ask_healthz_and_readyz_on_the_port_served(
    overlay: str,
) -> None:
    _, objects = render(f"overlays/{overlay}")
    config = config_data(objects)

    for name, (_, port) in expected_services(overlay).items():
        (container,) = containers(of_kind(objects, "Deployment")[name])
        live, ready = container["livenessProbe"]["httpGet"], container["readinessProbe"]["httpGet"]
        assert live["path"] == "/healthz", name
        assert ready["path"] == "/readyz", name
        assert port_number(container, live["port"]) == port, name
        assert port_number(container, ready["port"]) == port, name
        env = env_values(container, config)
        served = env.get("SANDBOX_PORT") if name == "sandbox" else env.get("ALIMI_OPS_PORT")
        assert served == str(port), f"{name} serves its probes on {served}, not {port}"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_when_an_overlay_is_rendered__then_each_http_service_listens_where_its_service_points(
    overlay: str,
) -> None:
    _, objects = render(f"overlays/{overlay}")
    config = config_data(objects)

    for name, port in HTTP_SERVICES.items():
        (container,) = containers(of_kind(objects, "Deployment")[name])
        env = env_values(container, config)
        assert env.get("ALIMI_HTTP_HOST") == "0.0.0.0", name
        assert env.get("ALIMI_HTTP_PORT") == str(port), name
        assert port_number(container, "http") == port, name
        (http,) = [
            p for p in of_kind(objects, "Service")[name]["spec"]["ports"] if p["name"] == "http"
        ]
        assert http["port"] == port, name
        assert port_number(container, http["targetPort"]) == port, name


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_when_a_service_needs_mongodb_only__then_it_gets_no_broker_url(overlay: str) -> None:
    _, objects = render(f"overlays/{overlay}")

    for name in MONGO_ONLY:
        (container,) = containers(of_kind(objects, "Deployment")[name])
        names = {var["name"] for var in container.get("env", [])}
        assert "ALIMI_MONGO_URL" in names, name
        assert "ALIMI_AMQP_URL" not in names, name


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_when_an_overlay_is_rendered__then_each_container_runs_its_own_service_module(
    overlay: str,
) -> None:
    _, objects = render(f"overlays/{overlay}")

    for name, (args, _) in expected_services(overlay).items():
        (container,) = containers(of_kind(objects, "Deployment")[name])
        assert "command" not in container, f"{name} must keep the image's python -m entrypoint"
        assert container["args"] == args
        assert importlib.util.find_spec(args[0]) is not None, f"no module {args[0]}"
        image = container["image"]
        assert re.fullmatch(r"[\w./:-]*alimi:[\w.-]+", image), f"{name}: {image}"
        assert not image.endswith(":latest"), f"{name}: {image}"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_when_an_overlay_is_rendered__then_every_container_has_cpu_and_memory_requests_and_limits(
    overlay: str,
) -> None:
    _, objects = render(f"overlays/{overlay}")

    for name, deployment in of_kind(objects, "Deployment").items():
        for container in containers(deployment):
            for bound in ("requests", "limits"):
                assert set(container["resources"][bound]) >= {"cpu", "memory"}, (name, bound)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_when_a_pod_is_stopped__then_kubernetes_waits_for_its_pause_and_drain_plus_a_margin(
    overlay: str,
) -> None:
    _, objects = render(f"overlays/{overlay}")
    config = config_data(objects)

    for name, deployment in of_kind(objects, "Deployment").items():
        (container,) = containers(deployment)
        if name in WORKERS:
            default = WORKER_SETTINGS[name].model_fields["drain_grace_s"].default
            drain = float(env_values(container, config).get("ALIMI_DRAIN_GRACE_S", default))
        elif name in SERVICE_SETTINGS:  # an HTTP service: requests in flight get this long
            default = BaseSettings.model_fields["shutdown_timeout_s"].default
            drain = float(env_values(container, config).get("ALIMI_SHUTDOWN_TIMEOUT_S", default))
        else:  # the sandbox, a test double
            drain = 0.0
        pause = pre_stop_pause_s(container)
        grace = deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
        assert grace >= pause + drain + SHUTDOWN_MARGIN_S, (
            f"{name}: {grace} s is less than the {pause} s pause + the {drain} s drain"
            f" + {SHUTDOWN_MARGIN_S} s to close its connections"
        )


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_when_an_http_service_stops__then_it_first_pauses_while_the_ingress_lets_go(
    overlay: str,
) -> None:
    _, objects = render(f"overlays/{overlay}")

    for name in HTTP_SERVICES:
        (container,) = containers(of_kind(objects, "Deployment")[name])
        assert pre_stop_pause_s(container) >= 1, name


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_when_an_overlay_is_rendered__then_no_secret_value_is_in_it(overlay: str) -> None:
    text, objects = render(f"overlays/{overlay}")
    config = config_data(objects)

    assert of_kind(objects, "Secret") == {}
    assert not re.search(r"(amqp|mongodb(\+srv)?)://", text), "a connection URL is committed"
    assert not SECRET_VARIABLES & set(config)
    for name, deployment in of_kind(objects, "Deployment").items():
        for container in containers(deployment):
            for var in container.get("env", []):
                reference = var.get("valueFrom", {}).get("secretKeyRef")
                if var["name"] in SECRET_VARIABLES:
                    assert reference is not None, f"{name}: {var['name']} is not from a Secret"
                if reference is not None:
                    assert reference["name"] == SECRET_NAME, name
                    assert reference["key"] in SECRET_KEYS, (name, reference["key"])


def test_when_the_secret_is_referenced__then_the_k8s_readme_shows_how_to_create_every_key() -> None:
    referenced = set()
    for overlay in OVERLAYS:
        _, objects = render(f"overlays/{overlay}")
        for deployment in of_kind(objects, "Deployment").values():
            for container in containers(deployment):
                for var in container.get("env", []):
                    if reference := var.get("valueFrom", {}).get("secretKeyRef"):
                        referenced.add(reference["key"])
    readme = (K8S / "README.md").read_text()

    assert referenced == SECRET_KEYS
    assert f"create secret generic {SECRET_NAME}" in readme
    for key in sorted(referenced):
        assert f"--from-literal={key}=" in readme, key


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_when_an_overlay_is_rendered__then_only_intake_and_segmenter_get_the_phone_keys(
    overlay: str,
) -> None:
    _, objects = render(f"overlays/{overlay}")

    holders: dict[str, set[tuple[str, str | None]]] = {}
    for name, deployment in of_kind(objects, "Deployment").items():
        for container in containers(deployment):
            for var in container.get("env", []):
                key = var.get("valueFrom", {}).get("secretKeyRef", {}).get("key")
                if var["name"] == PHONE_KEYS_VARIABLE or key == PHONE_KEYS_SECRET_KEY:
                    holders.setdefault(name, set()).add((var["name"], key))

    pair = (PHONE_KEYS_VARIABLE, PHONE_KEYS_SECRET_KEY)
    assert holders == {name: {pair} for name in PHONE_KEY_SERVICES}
    declared = {n for n, model in SERVICE_SETTINGS.items() if "phone_keys" in model.model_fields}
    assert declared == set(PHONE_KEY_SERVICES), "the settings models disagree"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_when_an_overlay_is_rendered__then_every_variable_is_one_a_service_reads(
    overlay: str,
) -> None:
    _, objects = render(f"overlays/{overlay}")
    known = known_variables()
    config = config_data(objects)
    settings = config_name(objects)

    assert set(config) <= known, set(config) - known
    for name, deployment in of_kind(objects, "Deployment").items():
        for container in containers(deployment):
            names = {var["name"] for var in container.get("env", [])}
            assert names <= known, (name, names - known)
            for source in container.get("envFrom", []):
                assert source["configMapRef"]["name"] == settings, name
            for var in container.get("env", []):
                if reference := var.get("valueFrom", {}).get("configMapKeyRef"):
                    assert reference["name"] == settings, name
                    assert reference["key"] in config, (name, reference["key"])


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_when_an_overlay_is_rendered__then_it_sets_the_settings_that_differ_per_environment(
    overlay: str,
) -> None:
    _, objects = render(f"overlays/{overlay}")
    config = config_data(objects)

    for variable in (
        "ALIMI_PUBLIC_BASE_URL",
        "ALIMI_SMS_API_URL",
        "ALIMI_SMS_APP_KEY",
        "ALIMI_SMS_SENDER_NO",
        "ALIMI_KAKAO_API_URL",
        "ALIMI_KAKAO_APP_KEY",
        "ALIMI_SLACK_API_URL",
    ):
        assert config.get(variable), variable


def test_when_the_overlays_are_rendered__then_each_picks_its_namespace_and_the_base_none() -> None:
    _, base = render("base")

    assert all("namespace" not in o["metadata"] for o in base)
    for overlay, namespace in (("dev", "alimi-dev"), ("prod", "alimi")):
        _, objects = render(f"overlays/{overlay}")
        assert {o["metadata"].get("namespace") for o in objects} == {namespace}


def test_when_prod_is_compared_with_dev__then_it_runs_more_replicas_with_larger_resources() -> None:
    dev_objects, prod_objects = render("overlays/dev")[1], render("overlays/prod")[1]
    dev, prod = of_kind(dev_objects, "Deployment"), of_kind(prod_objects, "Deployment")

    def memory_mi(deployment: dict[str, Any], bound: str) -> float:
        (container,) = containers(deployment)
        value = container["resources"][bound]["memory"]
        match = re.fullmatch(r"(\d+)(Mi|Gi)", value)
        assert match, f"unexpected memory quantity {value}"
        return float(match.group(1)) * (1024 if match.group(2) == "Gi" else 1)

    for name in SERVICES:
        assert replica_bounds(dev_objects, name) == (1, 1), name
        fewest, _ = replica_bounds(prod_objects, name)
        assert fewest >= (1 if name in SINGLE_REPLICA else 2), name
        for bound in ("requests", "limits"):
            assert memory_mi(prod[name], bound) >= memory_mi(dev[name], bound), (name, bound)
    assert replica_bounds(prod_objects, "delivery-sms")[1] > 2


# --- the re-key Job ---------------------------------------------------------------


def test_when_the_rekey_job_is_read__then_it_runs_the_rekey_module_as_intake_runs() -> None:
    job = rekey_job()
    pod = job["spec"]["template"]
    (container,) = pod["spec"]["containers"]
    intake = of_kind(render("base")[1], "Deployment")["intake"]
    intake_pod = intake["spec"]["template"]["spec"]
    (intake_container,) = containers(intake)

    assert "namespace" not in job["metadata"], "applied with kubectl -n, into either overlay"
    assert job["metadata"]["name"] == container["name"] == pod["metadata"]["labels"]["app"]
    assert "command" not in container, "it must keep the image's python -m entrypoint"
    assert container["args"] == ["alimi_intake.rekey"]
    assert importlib.util.find_spec(container["args"][0]) is not None
    assert container["image"] == intake_container["image"]  # set to intake's when applied
    assert pod["spec"]["restartPolicy"] == "Never"
    for field in ("serviceAccountName", "automountServiceAccountToken", "securityContext"):
        assert pod["spec"][field] == intake_pod[field], field
    assert container["securityContext"] == intake_container["securityContext"]
    assert {m["mountPath"] for m in container["volumeMounts"]} == {"/tmp"}
    for bound in ("requests", "limits"):
        assert set(container["resources"][bound]) >= {"cpu", "memory"}, bound


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_when_the_rekey_job_runs_in_an_overlay__then_it_sees_intakes_database_and_keys(
    overlay: str,
) -> None:
    _, objects = render(f"overlays/{overlay}")
    config = config_data(objects)
    (intake,) = containers(of_kind(objects, "Deployment")["intake"])
    (job,) = rekey_job()["spec"]["template"]["spec"]["containers"]

    assert "envFrom" not in job, "alimi-config's generated name cannot be known by hand"
    intake_sees = env_values(intake, config)
    for variable, value in env_values(job, config).items():
        assert intake_sees.get(variable) == value, variable
    secrets = {
        var["name"]: secret_key(job, var["name"]) for var in job["env"] if "valueFrom" in var
    }
    assert secrets == {
        "ALIMI_MONGO_URL": secret_key(intake, "ALIMI_MONGO_URL"),
        PHONE_KEYS_VARIABLE: secret_key(intake, PHONE_KEYS_VARIABLE),
    }
    assert {var["name"] for var in job["env"]} == {"ALIMI_MONGO_DB", *secrets}
    assert {var["name"] for var in job["env"]} <= known_variables()
    for var in job["env"]:
        if reference := var.get("valueFrom", {}).get("secretKeyRef"):
            assert reference["name"] == SECRET_NAME


def test_when_an_overlay_is_applied__then_it_never_starts_the_rekey_job() -> None:
    for target in ("base", *(f"overlays/{overlay}" for overlay in OVERLAYS)):
        text, objects = render(target)
        assert not of_kind(objects, "Job"), target
        assert "alimi_intake.rekey" not in text, target


def test_when_the_k8s_readme_rotates_the_keys__then_its_commands_fit_the_job() -> None:
    readme = (K8S / "README.md").read_text()
    job = rekey_job()
    (container,) = job["spec"]["template"]["spec"]["containers"]

    assert f"--from-literal={PHONE_KEYS_SECRET_KEY}=" in readme
    assert f"kubectl set image --local -f {REKEY_JOB.relative_to(ROOT)}" in readme
    assert f'{container["name"]}="$IMAGE"' in readme
    assert f"job/{job['metadata']['name']}" in readme
    segmenter_first = readme.index("rollout restart deploy/segmenter")
    assert segmenter_first < readme.index("rollout restart deploy/intake", segmenter_first)


# --- Dockerfile -------------------------------------------------------------------


def dockerfile_stages() -> list[str]:
    text = (ROOT / "Dockerfile").read_text()
    return re.split(r"^(?=FROM )", text, flags=re.MULTILINE)[1:]


def runtime_lock_script() -> str:
    text = (ROOT / "Dockerfile").read_text()
    match = re.search(r"<<'RUNTIME_LOCK'\n(.*?)\nRUNTIME_LOCK\n", text, flags=re.DOTALL)
    assert match, "the Dockerfile no longer derives the runtime lock in a RUNTIME_LOCK heredoc"
    return match.group(1)


def derive_runtime_lock(pyproject: Path, lock: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-", str(pyproject), str(lock)],
        input=runtime_lock_script(),
        capture_output=True,
        text=True,
        timeout=60,
    )


def runtime_closure() -> set[str]:
    """Runtime requirements of the installed alimi distribution, followed transitively."""

    def canonical(name: str) -> str:
        return re.sub(r"[-_.]+", "-", name).lower()

    found: set[str] = set()
    pending = ["alimi"]
    while pending:
        for line in importlib.metadata.requires(pending.pop()) or []:
            requirement = Requirement(line)
            if requirement.marker and not requirement.marker.evaluate({"extra": ""}):
                continue
            name = canonical(requirement.name)
            if name not in found:
                found.add(name)
                pending.append(name)
    return found


def test_when_the_dockerfile_is_read__then_the_image_is_slim_non_root_and_runs_a_module() -> None:
    text = (ROOT / "Dockerfile").read_text()
    runtime = dockerfile_stages()[-1]
    default_image = re.search(r"^ARG PYTHON_IMAGE=(\S+)$", text, flags=re.MULTILINE)

    assert default_image and default_image.group(1) == "python:3.11-slim"
    assert runtime.startswith("FROM ${PYTHON_IMAGE}")
    assert re.search(r"^USER 10001(:10001)?$", runtime, flags=re.MULTILINE)
    assert re.search(r"^\s*PYTHONDONTWRITEBYTECODE=1", runtime, flags=re.MULTILINE)
    assert 'ENTRYPOINT ["python", "-m"]' in runtime
    assert 'CMD ["alimi_intake"]' in runtime
    for tool in ("apt-get", "gcc", "build-essential", "pip install"):
        assert tool not in runtime, f"the runtime stage must not run {tool}"


def test_when_the_runtime_lock_is_derived__then_it_pins_exactly_the_runtime_closure() -> None:
    result = derive_runtime_lock(ROOT / "pyproject.toml", ROOT / "requirements.lock")

    assert result.returncode == 0, result.stderr
    names = {
        line.split("==")[0].lower() for line in result.stdout.splitlines() if re.match(r"\w", line)
    }
    assert names == runtime_closure()
    assert not names & DEV_ONLY_PACKAGES
    assert not names & {"click", "rich", "httpx", "pyyaml"}, "the cli extra reached the image"
    assert {"jinja2", "markupsafe"} <= names
    requirements = re.split(r"\n(?=\w)", result.stdout.strip())
    assert all("--hash=sha256:" in requirement for requirement in requirements)


@pytest.mark.parametrize(
    ("dependency", "message"),
    [
        ("alimi-not-in-the-lock>=1", "missing from"),
        ("secantusdb>=0.7.0b3", "development-only"),
    ],
)
def test_when_the_runtime_dependencies_do_not_fit_the_lock__then_the_image_build_stops(
    tmp_path: Path, dependency: str, message: str
) -> None:
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text(f'[project]\nname = "x"\ndependencies = ["{dependency}"]\n')

    result = derive_runtime_lock(pyproject, ROOT / "requirements.lock")

    assert result.returncode != 0
    assert message in result.stderr
    assert dependency.split(">")[0] in result.stderr


def test_when_the_build_context_is_filtered__then_only_what_the_dockerfile_copies_goes_in() -> None:
    patterns = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    copied: set[str] = set()
    for stage in dockerfile_stages():
        for line in re.findall(r"^COPY (?!--from)(.+)$", stage, flags=re.MULTILINE):
            copied.update(source.rstrip("/") for source in line.split()[:-1])

    assert patterns[0] == "*", "the context must start from nothing"
    allowed = {p[1:].rstrip("/") for p in patterns if p.startswith("!")}
    assert allowed == copied
    assert all((ROOT / source).exists() for source in copied), copied
    assert not allowed & {".venv", ".git", "tests", ".alimi-data", "k8s", "deploy", ".env"}


# --- docker-compose.yml -----------------------------------------------------------

# service -> (its command, the variable of the port its health check asks)
COMPOSE_ALIMI: dict[str, tuple[list[str], str]] = {
    "sandbox": (["alimi_sandbox"], "SANDBOX_PORT"),
    "intake": (["alimi_intake"], "ALIMI_OPS_PORT"),
    "segmenter": (["alimi_segmenter"], "ALIMI_OPS_PORT"),
    "delivery-sms": (["alimi_delivery", "--channel", "sms"], "ALIMI_OPS_PORT"),
    "delivery-kakao": (["alimi_delivery", "--channel", "kakao"], "ALIMI_OPS_PORT"),
    "delivery-slack": (["alimi_delivery", "--channel", "slack"], "ALIMI_OPS_PORT"),
    "receipts": (["alimi_receipts"], "ALIMI_OPS_PORT"),
}


@functools.cache
def compose() -> dict[str, Any]:
    """docker-compose.yml as Compose reads it: anchors and ``<<`` merges resolved."""
    loaded: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return loaded


def compose_services() -> dict[str, dict[str, Any]]:
    services: dict[str, dict[str, Any]] = compose()["services"]
    return services


def setting(service: dict[str, Any], variable: str) -> str | None:
    """A variable of a service's ``environment`` (a mapping), as a string."""
    value = (service.get("environment") or {}).get(variable)
    return None if value is None else str(value)


def test_when_compose_is_read__then_it_runs_the_broker_the_database_and_every_service() -> None:
    services = compose_services()
    template = compose()["x-alimi-service"]

    assert set(services) == {"rabbitmq", "mongo", *COMPOSE_ALIMI}
    assert services["rabbitmq"]["image"] == "rabbitmq:3-management"
    assert services["mongo"]["image"] == "mongo:7"
    for name, port in HTTP_SERVICES.items():
        assert setting(services[name], "ALIMI_HTTP_HOST") == "0.0.0.0", name
        assert setting(services[name], "ALIMI_HTTP_PORT") == str(port), name
        assert f"{port}:{port}" in services[name]["ports"], name
    for name, (command, _) in COMPOSE_ALIMI.items():
        assert services[name]["command"] == command, name
        assert services[name].items() >= template.items(), f"{name} is not an alimi-service"


def test_when_an_alimi_container_is_checked__then_its_healthcheck_asks_readyz_on_its_port() -> None:
    services = compose_services()

    for name, (_, port_variable) in COMPOSE_ALIMI.items():
        port = setting(services[name], port_variable)
        assert port is not None, f"{name} does not set {port_variable}"
        probe = (
            f"import urllib.request; urllib.request.urlopen('http://127.0.0.1:{port}/readyz', "
            "timeout=3)"
        )
        assert services[name]["healthcheck"]["test"] == ["CMD", "python", "-c", probe], name
    assert services["rabbitmq"]["healthcheck"]["test"] == [
        "CMD",
        "rabbitmq-diagnostics",
        "-q",
        "ping",
    ]


def test_when_a_compose_service_depends_on_another__then_it_waits_until_that_one_is_healthy() -> (
    None
):
    services = compose_services()
    expected = {
        "intake": {"rabbitmq", "mongo"},
        "segmenter": {"rabbitmq", "mongo"},
        "delivery-sms": {"rabbitmq", "mongo", "sandbox"},
        "delivery-kakao": {"rabbitmq", "mongo", "sandbox"},
        "delivery-slack": {"rabbitmq", "mongo", "sandbox"},
        "receipts": {"mongo"},
    }

    for name, service in services.items():
        depends = service.get("depends_on") or {}
        assert set(depends) == expected.get(name, set()), name
        for dependency, condition in depends.items():
            assert condition == {"condition": "service_healthy"}, (name, dependency)
            assert "healthcheck" in services[dependency], dependency


def test_when_compose_starts_mongo__then_it_is_the_single_node_replica_set_services_use() -> None:
    mongo = compose_services()["mongo"]
    initiate = mongo["healthcheck"]["test"][-1]

    assert mongo["command"][:2] == ["--replSet", "rs0"]
    assert "rs.initiate({_id: 'rs0', members: [{_id: 0, host: 'mongo:27017'}]})" in initiate
    assert "isWritablePrimary" in initiate
    assert compose()["x-alimi-env"]["ALIMI_MONGO_URL"] == "mongodb://mongo:27017/?replicaSet=rs0"


def test_when_compose_sets_a_secret__then_it_is_interpolated_with_a_dev_only_default() -> None:
    env = compose()["x-alimi-env"]
    services = compose_services()

    assert env["ALIMI_PHONE_HASH_KEY"] == "${ALIMI_PHONE_HASH_KEY:-dev-only-change-me}"
    for delivery, delivery_variable, sandbox_variable, default in (
        ("delivery-sms", "ALIMI_SMS_SECRET_KEY", "SANDBOX_SMS_SECRET_KEY", "sandbox-secret"),
        ("delivery-kakao", "ALIMI_KAKAO_SECRET_KEY", "SANDBOX_KAKAO_SECRET_KEY", "sandbox-secret"),
        (
            "delivery-kakao",
            "ALIMI_KAKAO_SENDER_KEY",
            "SANDBOX_KAKAO_SENDER_KEY",
            "sandbox-sender-key",
        ),
        ("delivery-slack", "ALIMI_SLACK_TOKEN", "SANDBOX_SLACK_TOKEN", "xoxb-sandbox-token"),
    ):
        shared = f"${{{delivery_variable}:-{default}}}"
        assert setting(services[delivery], delivery_variable) == shared, delivery_variable
        assert setting(services["sandbox"], sandbox_variable) == shared, sandbox_variable
    shared_report_secret = "${ALIMI_REPORT_SECRET:-dev-only-report-secret}"
    assert setting(services["receipts"], "ALIMI_REPORT_SECRET") == shared_report_secret
    assert setting(services["sandbox"], "SANDBOX_REPORT_SECRET") == shared_report_secret


def test_when_compose_sets_the_phone_keys__then_only_intake_and_segmenter_get_them() -> None:
    services = compose_services()
    development_default = f"${{{PHONE_KEYS_VARIABLE}:-{crypto.DEVELOPMENT_KEYS}}}"

    assert PHONE_KEYS_VARIABLE not in compose()["x-alimi-env"]
    holders = {
        name: setting(service, PHONE_KEYS_VARIABLE)
        for name, service in services.items()
        if setting(service, PHONE_KEYS_VARIABLE) is not None
    }
    assert holders == dict.fromkeys(PHONE_KEY_SERVICES, development_default)


def test_when_compose_runs_the_sandbox__then_it_reports_to_the_receipts_container() -> None:
    services = compose_services()
    port = setting(services["receipts"], "ALIMI_HTTP_PORT")

    for variable, path in REPORT_PATHS.items():
        assert setting(services["sandbox"], variable) == f"http://receipts:{port}{path}", variable
    for name in MONGO_ONLY:
        assert setting(services[name], "ALIMI_AMQP_URL") is None, name


def test_when_compose_runs_delivery__then_each_channel_uses_the_sandbox_account() -> None:
    services = compose_services()
    sandbox = services["sandbox"]
    port = setting(sandbox, "SANDBOX_PORT")

    for variable, path in SANDBOX_API_PATHS.items():
        channel = variable.split("_")[1].lower()
        url = setting(services[f"delivery-{channel}"], variable)
        assert url == f"http://sandbox:{port}{path}", variable
    kakao = services["delivery-kakao"]
    assert setting(sandbox, "SANDBOX_KAKAO_APP_KEY") == setting(kakao, "ALIMI_KAKAO_APP_KEY")
    assert setting(sandbox, "SANDBOX_SMS_APP_KEY") == setting(
        services["delivery-sms"], "ALIMI_SMS_APP_KEY"
    )


def test_when_compose_runs_the_sandbox__then_it_mounts_the_kakao_templates_it_loads() -> None:
    sandbox = compose_services()["sandbox"]
    target = setting(sandbox, "SANDBOX_KAKAO_TEMPLATES_FILE")

    mount = f"./{KAKAO_TEMPLATES_FILE.relative_to(ROOT)}:{target}:ro"
    assert mount in sandbox["volumes"]


def test_when_compose_sets_a_variable__then_it_is_one_a_service_reads() -> None:
    known = known_variables()
    variables = {
        variable
        for service in compose_services().values()
        for variable in service.get("environment") or {}
        if variable.startswith(("ALIMI_", "SANDBOX_"))
    }

    assert variables, "no variables found: the services set none"
    assert variables <= known, variables - known


def test_when_compose_runs_an_alimi_container__then_it_is_read_only_without_capabilities() -> None:
    template = compose()["x-alimi-service"]

    assert template["read_only"] is True
    assert template["cap_drop"] == ["ALL"]
    assert "no-new-privileges:true" in template["security_opt"]
    assert "/tmp" in template["tmpfs"]


def test_when_a_worker_container_is_stopped__then_compose_waits_longer_than_its_drain() -> None:
    services = compose_services()

    for name in WORKERS:
        grace = re.fullmatch(r"(\d+)s", str(services[name].get("stop_grace_period", "")))
        default = WORKER_SETTINGS[name].model_fields["drain_grace_s"].default
        drain = float(setting(services[name], "ALIMI_DRAIN_GRACE_S") or default)
        assert grace is not None, f"{name} keeps Docker's 10 s default"
        assert int(grace.group(1)) > drain, name


# --- the API-key walk-throughs ----------------------------------------------------


def shell_commands(readme: Path) -> list[str]:
    """The commands of a README's ``sh`` blocks, continuation lines joined."""
    blocks = re.findall(r"^```sh\n(.*?)^```$", readme.read_text(), flags=re.MULTILINE | re.DOTALL)
    joined = "\n".join(blocks).replace("\\\n", " ")
    return [line.strip() for line in joined.splitlines() if line.strip()]


@pytest.mark.parametrize("readme", ["deploy/README.md", "k8s/README.md"])
def test_when_a_readme_makes_api_keys__then_it_names_only_scopes_intake_knows(readme: str) -> None:
    made = [c for c in shell_commands(ROOT / readme) if "alimi_intake.keys create" in c]

    assert made, "the README no longer shows how to make an API key"
    for command in made:
        match = re.search(r"--scopes (\S+)", command)
        assert match, command
        assert not api_keys.invalid_scopes(match.group(1).split(",")), command


def test_when_the_compose_walk_through_calls_intake__then_every_call_carries_a_key() -> None:
    calls = [c for c in shell_commands(ROOT / "deploy/README.md") if "localhost:8080/v1/" in c]

    assert calls
    for call in calls:
        key = re.search(r'-H "Authorization: Bearer \$(\w+)"', call)
        assert key, call
        assert key.group(1) == ("APPROVER_KEY" if "/approve" in call else "OPERATOR_KEY"), call


def docker_compose() -> list[str] | None:
    """The compose command here: the docker plugin, else the standalone docker-compose."""
    docker = shutil.which("docker")
    if (
        docker
        and subprocess.run([docker, "compose", "version"], capture_output=True).returncode == 0
    ):
        return [docker, "compose"]
    standalone = shutil.which("docker-compose")
    return [standalone] if standalone else None


def test_when_docker_compose_is_installed__then_it_accepts_the_file() -> None:
    command = docker_compose()
    if command is None:
        pytest.skip("neither the docker compose plugin nor docker-compose is installed")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ALIMI_", "SANDBOX_"))}

    result = subprocess.run(
        [*command, "-f", str(ROOT / "docker-compose.yml"), "config", "--quiet"],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )

    assert result.returncode == 0, result.stderr
