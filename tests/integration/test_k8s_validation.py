"""The Kubernetes manifests hold up: schemas, network flows, autoscaling, disruptions.

Each rendering is ``kubectl kustomize`` of the base, of an overlay, or of prod with
``components/hpa`` in place of ``components/keda`` (what k8s/README.md tells a cluster
without KEDA to do), parsed as ``test_manifests.render_dir`` does. The re-key Job
(k8s/jobs/rekey.yaml), which no kustomization holds, is parsed the same way. Then:

- every built-in object, the Job included, is validated offline against the strict
  schemas (unknown fields fail) that kubernetes-validate ships for Kubernetes
  ``KUBERNETES_VERSION``;
- every custom resource is validated with jsonschema against its CRD in
  tests/data/crds/, with unknown fields failing as under the API server's strict field
  validation, and the RabbitMQ scaler's parameters against its documented list;
- the NetworkPolicies are evaluated for every pair of pods and outside peers on the
  ports they listen on (the Job's pod among them), and must allow exactly the flows
  the design needs;
- the autoscalers and PodDisruptionBudgets are checked against the Deployments and
  the broker topology.

Manifests broken on purpose (a misspelt field and the like) prove the checks bite.
Without kubectl these tests skip, or fail when ``CI`` is set (``test_manifests.kubectl``).
"""

from __future__ import annotations

import copy
import functools
import importlib.resources
import ipaddress
import json
import math
import os
import re
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml
from referencing import Registry, Resource
from test_manifests import (
    HTTP_SERVICES,
    K8S,
    MONGO_ONLY,
    ROOT,
    SECRET_KEYS,
    SECRET_NAME,
    SERVICES,
    config_data,
    containers,
    of_kind,
    rekey_job,
    render,
    render_dir,
    replica_bounds,
)

from alimi import topology

Object = dict[str, Any]

# The oldest Kubernetes the manifests are for (unhealthyPodEvictionPolicy is GA in 1.31).
KUBERNETES_VERSION = "1.31"
CRDS = ROOT / "tests/data/crds"

# name -> (folder under k8s/, {line of its kustomization.yaml: replacement})
RENDERINGS: dict[str, tuple[str, dict[str, str]]] = {
    "base": ("base", {}),
    "dev": ("overlays/dev", {}),
    "prod": ("overlays/prod", {}),
    "prod-hpa": ("overlays/prod", {"- ../../components/keda": "- ../../components/hpa"}),
    "operators": ("overlays/operators", {}),
}
DEPLOYABLE = ("dev", "prod", "prod-hpa", "operators")
# The renderings that send to the sandbox instead of the providers.
SANDBOXED = ("dev", "operators")

DELIVERY = ("delivery-sms", "delivery-kakao", "delivery-slack")
# Deployment -> the queue whose depth scales it (logical name, without the namespace)
AUTOSCALED = {
    "segmenter": topology.PARTITIONS_QUEUE,
    "delivery-sms": topology.delivery_queue("sms"),
    "delivery-kakao": topology.delivery_queue("kakao"),
}
# The RabbitMQ scaler's parameters (keda.sh/docs/latest/scalers/rabbitmq-queue): trigger
# metadata is a free string map in the CRD, so a misspelt one would pass it silently.
RABBITMQ_TRIGGER_METADATA = {
    "type": "object",
    "required": ["queueName", "mode", "value"],
    "additionalProperties": False,
    "properties": {
        "mode": {"enum": ["QueueLength", "MessageRate"]},
        "protocol": {"enum": ["auto", "amqp", "http"]},
        **{
            name: {"type": "string"}
            for name in (
                "host",
                "hostFromEnv",
                "usernameFromEnv",
                "passwordFromEnv",
                "queueName",
                "vhostName",
                "value",
                "activationValue",
                "useRegex",
                "operation",
                "excludeUnacknowledged",
                "pageSize",
                "unsafeSsl",
                "timeout",
            )
        },
    },
}


@functools.cache
def rendering(name: str) -> tuple[Object, ...]:
    folder, edits = RENDERINGS[name]
    if not edits:
        return render(folder)[1]
    with tempfile.TemporaryDirectory() as tmp:
        k8s = Path(tmp) / "k8s"
        shutil.copytree(K8S, k8s)
        kustomization = k8s / folder / "kustomization.yaml"
        text = kustomization.read_text()
        for line, replacement in edits.items():
            assert text.count(line) == 1, f"{line!r} is not once in {folder}/kustomization.yaml"
            text = text.replace(line, replacement)
        kustomization.write_text(text)
        return render_dir(k8s / folder)[1]


# --- schemas ------------------------------------------------------------------------


def strict(schema: Object) -> Object:
    """A CRD schema as the API server applies it under strict field validation.

    An object schema that neither maps arbitrary keys (``additionalProperties``) nor
    keeps unknown fields (``x-kubernetes-preserve-unknown-fields``) rejects any field
    it does not list.
    """
    schema = dict(schema)
    if (
        schema.get("type") == "object"
        and "additionalProperties" not in schema
        and not schema.get("x-kubernetes-preserve-unknown-fields")
    ):
        schema["additionalProperties"] = False
    if "properties" in schema:
        schema["properties"] = {k: strict(v) for k, v in schema["properties"].items()}
    for key in ("items", "additionalProperties"):
        if isinstance(schema.get(key), dict):
            schema[key] = strict(schema[key])
    for key in ("anyOf", "allOf", "oneOf"):
        if key in schema:
            schema[key] = [strict(s) for s in schema[key]]
    return schema


def kubernetes_schemas() -> Traversable:
    """kubernetes-validate's strict schemas (unknown fields fail) of ``KUBERNETES_VERSION``."""
    folder = f"v{KUBERNETES_VERSION}.0-local-strict"
    return importlib.resources.files("kubernetes_validate") / "kubernetes-json-schema" / folder


@functools.cache
def kubernetes_definitions() -> tuple[Resource[Any], Registry[Any]]:
    """The definitions every built-in schema refers to, read once."""
    text = (kubernetes_schemas() / "_definitions.json").read_text()
    definitions: Resource[Any] = Resource.from_contents(json.loads(text))
    return definitions, definitions @ Registry()


@functools.cache
def built_in_validator(api_version: str, kind: str) -> jsonschema.protocols.Validator | None:
    """A validator of a built-in kind, as ``kubernetes_validate.validate`` builds it.

    That function reads the 1.3 MB of definitions again for every object; this reads
    them once, which keeps the checks of all the renderings to a second.
    """
    group_version = re.sub(r"^([^./]*)(?:\.[^/]*)?/", r"\1-", api_version)  # its file names
    schema_file = kubernetes_schemas() / f"{kind.lower()}-{group_version}.json"
    if not schema_file.is_file():
        return None
    schema = json.loads(schema_file.read_text())
    return jsonschema.Draft202012Validator(schema, registry=kubernetes_definitions()[1])


@functools.cache
def custom_resource_validators() -> dict[tuple[str, str], jsonschema.protocols.Validator]:
    """(apiVersion, kind) -> a validator of that custom resource, from tests/data/crds."""
    definitions, registry = kubernetes_definitions()
    object_meta = {
        "$ref": f"{definitions.id()}#/$defs/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"
    }
    validators = {}
    for path in sorted(CRDS.glob("*.yaml")):
        crd = yaml.safe_load(path.read_text())
        group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
        for version in crd["spec"]["versions"]:
            schema = strict(version["schema"]["openAPIV3Schema"])
            schema["properties"]["metadata"] = object_meta | {"required": ["name"]}
            validator = jsonschema.Draft202012Validator(schema, registry=registry)
            validators[(f"{group}/{version['name']}", kind)] = validator
    return validators


def where(obj: Object) -> str:
    return f"{obj['kind']}/{obj['metadata']['name']}"


def located(error: jsonschema.ValidationError) -> str:
    return f"{'.'.join(map(str, error.absolute_path)) or '(top)'}: {error.message}"


def scaler_errors(scaled: Object) -> list[str]:
    """The parameters of each trigger, which the CRD leaves unchecked."""
    errors = []
    for index, trigger in enumerate(scaled["spec"].get("triggers", [])):
        trigger_path = f"spec.triggers.{index}"
        if trigger.get("type") != "rabbitmq":
            errors.append(f"{trigger_path}: no parameter list for scaler {trigger.get('type')!r}")
            continue
        validator = jsonschema.Draft202012Validator(RABBITMQ_TRIGGER_METADATA)
        for error in validator.iter_errors(trigger.get("metadata", {})):
            path = ".".join([f"{trigger_path}.metadata", *map(str, error.absolute_path)])
            errors.append(f"{path}: {error.message}")
    return errors


def validation_errors(objects: tuple[Object, ...]) -> list[str]:
    """What the schemas say is wrong with each object, as 'Kind/name: path: message'."""
    errors = []
    for obj in objects:
        key = (obj["apiVersion"], obj["kind"])
        validator = custom_resource_validators().get(key) or built_in_validator(*key)
        if validator is None:
            errors.append(f"{where(obj)}: no schema for {key[1]} {key[0]}")
            continue
        problems = [located(e) for e in validator.iter_errors(obj)]
        if obj["kind"] == "ScaledObject":
            problems += scaler_errors(obj)
        errors += [f"{where(obj)}: {problem}" for problem in problems]
    return errors


@pytest.mark.parametrize("name", RENDERINGS)
def test_when_a_rendering_is_validated__then_every_object_fits_its_schema(name: str) -> None:
    objects = rendering(name)

    assert validation_errors(objects) == []


def test_when_the_crd_schemas_are_read__then_they_are_valid_crds_of_each_custom_kind_used() -> None:
    custom = {
        (o["apiVersion"], o["kind"])
        for name in RENDERINGS
        for o in rendering(name)
        if built_in_validator(o["apiVersion"], o["kind"]) is None
    }

    for path in sorted(CRDS.glob("*.yaml")):
        kubernetes_validate.validate(yaml.safe_load(path.read_text()), KUBERNETES_VERSION, True)
    assert custom == set(custom_resource_validators())


# A JSON patch that puts one mistake into prod, and what the error must name.
MISTAKES: dict[str, tuple[dict[str, str], list[Object], str]] = {
    "a misspelt ScaledObject field": (
        {"kind": "ScaledObject", "name": "delivery-sms"},
        [{"op": "move", "from": "/spec/minReplicaCount", "path": "/spec/minReplicaCont"}],
        "'minReplicaCont' was unexpected",
    ),
    "a Deployment with an unknown field": (
        {"kind": "Deployment", "name": "intake"},
        [
            {
                "op": "add",
                "path": "/spec/template/spec/containers/0/imagePullPolicyy",
                "value": "Always",
            }
        ],
        "'imagePullPolicyy' was unexpected",
    ),
    "a TriggerAuthentication without the Secret's key": (
        {"kind": "TriggerAuthentication", "name": "alimi-rabbitmq"},
        [{"op": "remove", "path": "/spec/secretTargetRef/0/key"}],
        "'key' is a required property",
    ),
    "a misspelt RabbitMQ scaler parameter": (
        {"kind": "ScaledObject", "name": "segmenter"},
        [
            {
                "op": "move",
                "from": "/spec/triggers/0/metadata/queueName",
                "path": "/spec/triggers/0/metadata/queueNmae",
            }
        ],
        "'queueNmae' was unexpected",
    ),
    "a PodDisruptionBudget field of the wrong type": (
        {"kind": "PodDisruptionBudget", "name": "receipts"},
        [{"op": "replace", "path": "/spec/unhealthyPodEvictionPolicy", "value": 1}],
        "unhealthyPodEvictionPolicy",
    ),
}


@pytest.fixture(scope="module")
def broken_prod(tmp_path_factory: pytest.TempPathFactory) -> tuple[Object, ...]:
    """prod with every mistake of MISTAKES in it (one per object), rendered once."""
    folder = tmp_path_factory.mktemp("broken-prod")
    kustomization = {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "resources": [os.path.relpath(K8S / "overlays/prod", folder)],
        "patches": [
            {"target": target, "patch": json.dumps(patch)} for target, patch, _ in MISTAKES.values()
        ],
    }
    (folder / "kustomization.yaml").write_text(yaml.safe_dump(kustomization))
    return render_dir(folder)[1]


@pytest.mark.parametrize("mistake", sorted(MISTAKES))
def test_when_a_manifest_has_a_mistake__then_validation_fails_naming_it(
    mistake: str, broken_prod: tuple[Object, ...]
) -> None:
    target, _, expected = MISTAKES[mistake]
    (broken,) = [o for o in broken_prod if where(o) == f"{target['kind']}/{target['name']}"]

    errors = validation_errors((broken,))

    assert any(expected in error for error in errors), errors
    if built_in_validator(broken["apiVersion"], broken["kind"]) is not None:
        with pytest.raises(kubernetes_validate.ValidationError, match=expected):
            kubernetes_validate.validate(broken, KUBERNETES_VERSION, strict=True)


def test_when_prod_has_mistakes__then_only_the_objects_with_one_fail(
    broken_prod: tuple[Object, ...],
) -> None:
    broken = {f"{target['kind']}/{target['name']}" for target, _, _ in MISTAKES.values()}

    failing = {error.split(": ")[0] for error in validation_errors(broken_prod)}

    assert failing == broken


def test_when_the_rekey_job_is_validated__then_it_fits_the_job_schema() -> None:
    job = rekey_job()

    assert built_in_validator(job["apiVersion"], job["kind"]) is not None
    assert validation_errors((job,)) == []


# A mistake put into the re-key Job: (where, value, what the error must name).
JOB_MISTAKES: dict[str, tuple[list[str | int], Any, str]] = {
    "a misspelt container field": (
        ["spec", "template", "spec", "containers", 0, "imagePullPolicyy"],
        "Always",
        "'imagePullPolicyy' was unexpected",
    ),
    "a pod-failure rule on a condition without its status": (
        ["spec", "podFailurePolicy", "rules", 1, "onPodConditions", 0],
        {"type": "DisruptionTarget"},
        "'status' is a required property",
    ),
    "a retry count of the wrong type": (["spec", "backoffLimit"], "2", "backoffLimit"),
}


@pytest.mark.parametrize("mistake", sorted(JOB_MISTAKES))
def test_when_the_rekey_job_has_a_mistake__then_validation_fails_naming_it(mistake: str) -> None:
    path, value, expected = JOB_MISTAKES[mistake]
    broken = copy.deepcopy(rekey_job())
    parent: Any = broken
    for step in path[:-1]:
        parent = parent[step]
    parent[path[-1]] = value

    errors = validation_errors((broken,))

    assert any(expected in error for error in errors), errors
    with pytest.raises(kubernetes_validate.ValidationError, match=expected):
        kubernetes_validate.validate(broken, KUBERNETES_VERSION, strict=True)


# --- network policies ---------------------------------------------------------------


@dataclass(frozen=True)
class Endpoint:
    """A pod (in a namespace, with labels and named ports) or an address outside."""

    name: str
    namespace: str | None  # None: an address outside the cluster
    labels: Mapping[str, str] = field(default_factory=dict)
    ports: Mapping[str, int] = field(default_factory=dict)  # port name -> number
    ip: str | None = None


# The peers outside Alimi's namespace, labelled as k8s/README.md tells the operator.
RABBITMQ = Endpoint("rabbitmq", "rabbitmq", {"app.kubernetes.io/name": "rabbitmq"})
MONGODB = Endpoint("mongodb", "mongodb", {"app.kubernetes.io/name": "mongodb"})
DNS = Endpoint("kube-dns", "kube-system", {"k8s-app": "kube-dns"})
INGRESS_CONTROLLER = Endpoint(
    "ingress controller", "ingress-nginx", {"app.kubernetes.io/name": "ingress-nginx"}
)
PROMETHEUS = Endpoint("prometheus", "monitoring", {"app.kubernetes.io/name": "prometheus"})
LABELLED_PEERS = (RABBITMQ, MONGODB, DNS, INGRESS_CONTROLLER, PROMETHEUS)
PEERS = (
    *LABELLED_PEERS,
    Endpoint("other pod", "default", {"app": "intake"}),  # Alimi's labels, not its namespace
    Endpoint("internet", None, ip="203.0.113.10"),
    Endpoint("private network", None, ip="10.20.30.40"),
    Endpoint("cloud metadata", None, ip="169.254.169.254"),
)
# what is tried on a peer; on a pod of the namespace, the ports it declares
PEER_PORTS = ((53, "UDP"), (53, "TCP"), (80, "TCP"), (443, "TCP"), (5672, "TCP"), (27017, "TCP"))

Flow = tuple[str, str, int, str]  # from, to, port, protocol


def selects(selector: Object, labels: Mapping[str, str]) -> bool:
    if any(labels.get(k) != v for k, v in selector.get("matchLabels", {}).items()):
        return False
    for expression in selector.get("matchExpressions", []):
        key, operator, values = expression["key"], expression["operator"], expression.get("values")
        present = key in labels
        matched = {
            "In": present and labels.get(key) in (values or ()),
            "NotIn": not present or labels.get(key) not in (values or ()),
            "Exists": present,
            "DoesNotExist": not present,
        }[operator]
        if not matched:
            return False
    return True


@dataclass(frozen=True)
class Policies:
    """The NetworkPolicies of one namespace, evaluated as the NetworkPolicy API defines."""

    namespace: str
    policies: tuple[Object, ...]

    def allows(self, source: Endpoint, target: Endpoint, port: int, protocol: str) -> bool:
        leaves = source.namespace != self.namespace or self.admits(
            source, "egress", target, port, protocol
        )
        enters = target.namespace != self.namespace or self.admits(
            target, "ingress", source, port, protocol
        )
        return leaves and enters

    def admits(
        self, pod: Endpoint, direction: str, other: Endpoint, port: int, protocol: str
    ) -> bool:
        selecting = [
            p
            for p in self.policies
            if direction.capitalize() in policy_types(p)
            and selects(p["spec"]["podSelector"], pod.labels)
        ]
        if not selecting:
            return True
        destination = other if direction == "egress" else pod
        peers_key = "to" if direction == "egress" else "from"
        return any(
            (not rule.get(peers_key) or any(self.matches(p, other) for p in rule[peers_key]))
            and (
                not rule.get("ports")
                or any(port_matches(p, port, protocol, destination) for p in rule["ports"])
            )
            for policy in selecting
            for rule in policy["spec"].get(direction, [])
        )

    def matches(self, peer: Object, other: Endpoint) -> bool:
        if "ipBlock" in peer:  # pods are not told apart by address here
            if other.ip is None:
                return False
            address = ipaddress.ip_address(other.ip)
            block = peer["ipBlock"]
            return address in ipaddress.ip_network(block["cidr"]) and not any(
                address in ipaddress.ip_network(e) for e in block.get("except", [])
            )
        if other.namespace is None:
            return False
        if "namespaceSelector" in peer:
            namespace_labels = {"kubernetes.io/metadata.name": other.namespace}
            in_namespace = selects(peer["namespaceSelector"], namespace_labels)
        else:
            in_namespace = other.namespace == self.namespace
        return in_namespace and selects(peer.get("podSelector", {}), other.labels)


def policy_types(policy: Object) -> list[str]:
    spec = policy["spec"]
    return spec.get("policyTypes") or ["Ingress", *(["Egress"] if "egress" in spec else [])]


def port_matches(rule_port: Object, port: int, protocol: str, destination: Endpoint) -> bool:
    if rule_port.get("protocol", "TCP") != protocol:
        return False
    wanted = rule_port.get("port")
    if wanted is None:
        return True
    if isinstance(wanted, str):
        return destination.ports.get(wanted) == port
    return bool(wanted <= port <= rule_port.get("endPort", wanted))


def pod_of(workload: Object, namespace: str) -> Endpoint:
    """The pod a Deployment or Job runs, as a peer of the network policies."""
    ports = {
        p["name"]: p["containerPort"] for c in containers(workload) for p in c.get("ports", [])
    }
    labels = workload["spec"]["template"]["metadata"]["labels"]
    return Endpoint(workload["metadata"]["name"], namespace, labels, ports)


def pods(objects: tuple[Object, ...]) -> dict[str, Endpoint]:
    return {
        name: pod_of(deployment, deployment["metadata"]["namespace"])
        for name, deployment in of_kind(objects, "Deployment").items()
    }


def flows(objects: tuple[Object, ...], extra_pods: tuple[Endpoint, ...] = ()) -> set[Flow]:
    """Every (from, to, port, protocol) the rendering's policies let through.

    ``extra_pods`` run in the namespace besides the Deployments' (a Job's, say).
    """
    inside = [*pods(objects).values(), *extra_pods]
    policies = Policies(
        inside[0].namespace or "", tuple(of_kind(objects, "NetworkPolicy").values())
    )
    allowed = set()
    for source in (*inside, *PEERS):
        for target in (*inside, *PEERS):
            if source is target or policies.namespace not in (source.namespace, target.namespace):
                continue
            tried = [(n, "TCP") for n in target.ports.values()] if target in inside else PEER_PORTS
            for port, protocol in tried:
                if policies.allows(source, target, port, protocol):
                    allowed.add((source.name, target.name, port, protocol))
    return allowed


def needed_flows(name: str) -> set[Flow]:
    """The flows the design needs, and so the only ones a rendering may allow."""
    objects = rendering(name)
    needed: set[Flow] = set()
    for pod in pods(objects):
        needed |= {(pod, DNS.name, 53, "UDP"), (pod, DNS.name, 53, "TCP")}
    for service, (_, ops_port) in SERVICES.items():
        needed.add((service, MONGODB.name, 27017, "TCP"))
        if service not in MONGO_ONLY:
            needed.add((service, RABBITMQ.name, 5672, "TCP"))
        needed.add((PROMETHEUS.name, service, ops_port, "TCP"))
    for service, port in HTTP_SERVICES.items():
        needed.add((INGRESS_CONTROLLER.name, service, port, "TCP"))
    if name in SANDBOXED:  # the providers are the sandbox, which reports to receipts
        needed |= {(delivery, "sandbox", 8090, "TCP") for delivery in DELIVERY}
        needed.add(("sandbox", "receipts", HTTP_SERVICES["receipts"], "TCP"))
    else:
        needed |= {(delivery, "internet", 443, "TCP") for delivery in DELIVERY}
    return needed


@pytest.mark.parametrize("name", DEPLOYABLE)
def test_when_the_network_policies_are_evaluated__then_they_allow_exactly_the_needed_flows(
    name: str,
) -> None:
    allowed, needed = flows(rendering(name)), needed_flows(name)

    assert sorted(allowed - needed) == [], "allowed but not needed"
    assert sorted(needed - allowed) == [], "needed but denied"


@pytest.mark.parametrize("name", DEPLOYABLE)
def test_when_the_rekey_job_runs__then_its_pod_reaches_only_dns_and_mongodb(name: str) -> None:
    objects = rendering(name)
    namespace = next(iter(pods(objects).values())).namespace or ""
    job = pod_of(rekey_job(), namespace)

    allowed = flows(objects, (job,)) - flows(objects)

    assert allowed == {
        (job.name, DNS.name, 53, "UDP"),
        (job.name, DNS.name, 53, "TCP"),
        (job.name, MONGODB.name, 27017, "TCP"),
    }


def test_when_a_policy_allows_too_much__then_the_flow_check_sees_it() -> None:
    objects = rendering("dev")
    allow_all_egress = {
        "kind": "NetworkPolicy",
        "metadata": {"name": "too-open", "namespace": "alimi-dev"},
        "spec": {"podSelector": {}, "policyTypes": ["Egress"], "egress": [{}]},
    }

    extra = flows((*objects, allow_all_egress)) - needed_flows("dev")

    assert ("receipts", RABBITMQ.name, 5672, "TCP") in extra
    assert ("intake", "internet", 443, "TCP") in extra


def test_when_the_policies_select_outside_peers__then_the_k8s_readme_names_their_labels() -> None:
    readme = (K8S / "README.md").read_text()

    for peer in LABELLED_PEERS:
        assert f"`{peer.namespace}`" in readme, peer.name
        for key, value in peer.labels.items():
            assert f"`{key}={value}`" in readme, peer.name


# --- autoscaling --------------------------------------------------------------------


def autoscaler_targets(objects: tuple[Object, ...]) -> list[str]:
    return [
        o["spec"]["scaleTargetRef"]["name"]
        for kind in ("ScaledObject", "HorizontalPodAutoscaler")
        for o in of_kind(objects, kind).values()
    ]


def test_when_prod_is_rendered__then_keda_scales_each_backlog_consumer_on_its_own_queue() -> None:
    objects = rendering("prod")
    names = topology.Names(config_data(objects)["ALIMI_NAMESPACE"])
    authentications = of_kind(objects, "TriggerAuthentication")
    scaled_objects = of_kind(objects, "ScaledObject")

    assert sorted(autoscaler_targets(objects)) == sorted(AUTOSCALED)
    for scaled in scaled_objects.values():
        spec = scaled["spec"]
        target = spec["scaleTargetRef"]
        assert (target["apiVersion"], target["kind"]) == ("apps/v1", "Deployment")
        (trigger,) = spec["triggers"]
        metadata = trigger["metadata"]
        assert trigger["type"] == "rabbitmq"
        assert metadata["queueName"] == names(AUTOSCALED[target["name"]])
        assert AUTOSCALED[target["name"]] in {q.name for q in topology.WORK_QUEUES}
        # the backlog of ready messages, read over AMQP with the URL the services use
        assert (metadata["mode"], metadata["protocol"]) == ("QueueLength", "amqp")
        assert int(metadata["value"]) >= 1
        assert not {"host", "hostFromEnv", "usernameFromEnv", "passwordFromEnv"} & set(metadata)
        authentication = authentications[trigger["authenticationRef"]["name"]]
        assert authentication["spec"] == {
            "secretTargetRef": [{"parameter": "host", "name": SECRET_NAME, "key": "amqp-url"}]
        }
        assert "amqp-url" in SECRET_KEYS
        fewest, most = spec["minReplicaCount"], spec["maxReplicaCount"]
        assert 1 <= fewest < most, target["name"]  # never zero: consumers also report metrics
        assert fewest <= spec["fallback"]["replicas"] <= most, target["name"]


def test_when_prod_uses_the_hpa_component__then_cpu_scales_the_same_deployments_as_far() -> None:
    keda, hpa = rendering("prod"), rendering("prod-hpa")

    assert of_kind(hpa, "ScaledObject") == of_kind(hpa, "TriggerAuthentication") == {}
    assert sorted(autoscaler_targets(hpa)) == sorted(AUTOSCALED)
    for name in AUTOSCALED:
        assert replica_bounds(hpa, name) == replica_bounds(keda, name), name
    for autoscaler in of_kind(hpa, "HorizontalPodAutoscaler").values():
        (metric,) = autoscaler["spec"]["metrics"]
        assert metric["resource"]["name"] == "cpu"
        assert metric["resource"]["target"]["type"] == "Utilization"


@pytest.mark.parametrize("name", DEPLOYABLE)
def test_when_a_deployment_is_autoscaled__then_one_autoscaler_owns_its_replica_count(
    name: str,
) -> None:
    objects = rendering(name)
    targets = autoscaler_targets(objects)

    assert len(targets) == len(set(targets)), "two autoscalers on one Deployment fight"
    for deployment_name, deployment in of_kind(objects, "Deployment").items():
        # a count in the manifest would reset the autoscaler's at every apply
        assert ("replicas" in deployment["spec"]) == (deployment_name not in targets)


def test_when_prod_delivery_autoscales__then_each_process_has_its_share_of_the_rate_limit() -> None:
    config = config_data(rendering("prod"))

    for channel in ("SMS", "KAKAO"):
        for limit in ("REQUESTS", "RECIPIENTS"):
            assert float(config[f"ALIMI_{channel}_{limit}_PER_S"]) > 0, (channel, limit)


# --- disruption budgets -------------------------------------------------------------


def evictions_allowed(budget: Object, replicas: int) -> int:
    """How many of ``replicas`` healthy pods the budget lets a drain evict at once."""

    def count(value: int | str) -> int:
        if isinstance(value, str):
            return math.ceil(replicas * int(value.rstrip("%")) / 100)
        return value

    spec = budget["spec"]
    if "maxUnavailable" in spec:
        return count(spec["maxUnavailable"])
    return max(0, replicas - count(spec["minAvailable"]))


@pytest.mark.parametrize("name", DEPLOYABLE)
def test_when_a_deployment_runs_two_or_more_pods__then_a_budget_keeps_some_but_never_blocks(
    name: str,
) -> None:
    objects = rendering(name)
    deployments = of_kind(objects, "Deployment")
    budget_of = {}
    for budget_name, budget in of_kind(objects, "PodDisruptionBudget").items():
        selected = [
            d
            for d, deployment in deployments.items()
            if selects(
                budget["spec"]["selector"], deployment["spec"]["template"]["metadata"]["labels"]
            )
        ]
        assert len(selected) == 1, f"{budget_name} selects {selected}"
        budget_of[selected[0]] = budget

    for deployment_name in deployments:
        fewest, _ = replica_bounds(objects, deployment_name)
        if fewest >= 2:
            assert deployment_name in budget_of, deployment_name
        if deployment_name in budget_of:
            budget = budget_of[deployment_name]
            assert evictions_allowed(budget, fewest) >= 1, deployment_name
            assert evictions_allowed(budget, max(fewest, 2)) < max(fewest, 2), deployment_name
            assert budget["spec"]["unhealthyPodEvictionPolicy"] == "AlwaysAllow"
