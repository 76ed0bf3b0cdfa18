"""components/operators and overlays/operators: the broker and the database from their
operators, where Alimi's network policies look for them, in the shape production needs.

The schema checks of every rendering, this one included, are in test_k8s_validation.py
(the RabbitmqCluster and MongoDBCommunity against the operators' CRDs in
tests/data/crds/); these check what the objects say, and that a mistake in either
fails validation naming the field.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest
from test_k8s_validation import MONGODB, RABBITMQ, rendering, validation_errors
from test_manifests import config_data, of_kind

Object = dict[str, Any]


def the(kind: str) -> Object:
    (found,) = of_kind(rendering("operators"), kind).values()
    return found


def test_when_the_operators_overlay_is_rendered__then_rabbitmq_is_three_quorum_nodes() -> None:
    cluster = the("RabbitmqCluster")
    spec = cluster["spec"]

    assert spec["replicas"] == 3
    assert "default_queue_type = quorum" in spec["rabbitmq"]["additionalConfig"]
    assert "rabbitmq_prometheus" in spec["rabbitmq"]["additionalPlugins"]
    # The operator labels the pods app.kubernetes.io/name=<the cluster's name>.
    assert cluster["metadata"]["namespace"] == RABBITMQ.namespace
    assert RABBITMQ.labels == {"app.kubernetes.io/name": cluster["metadata"]["name"]}


def test_when_the_operators_overlay_is_rendered__then_mongodb_is_a_three_member_replica_set() -> (
    None
):
    replica_set = the("MongoDBCommunity")
    spec = replica_set["spec"]
    config = config_data(rendering("operators"))

    assert (spec["type"], spec["members"]) == ("ReplicaSet", 3)
    assert replica_set["metadata"]["namespace"] == MONGODB.namespace
    pod_labels = spec["statefulSet"]["spec"]["template"]["metadata"]["labels"]
    assert MONGODB.labels.items() <= pod_labels.items()
    (user,) = spec["users"]
    assert {"name": "readWrite", "db": config["ALIMI_MONGO_DB"]} in user["roles"]
    # Its pods run under the account whose Role the operator's agent needs there.
    binding = of_kind(rendering("operators"), "RoleBinding")["mongodb-database"]
    assert binding["metadata"]["namespace"] == MONGODB.namespace
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "mongodb-database"}]


def test_when_the_operators_overlay_is_rendered__then_alimi_declares_quorum_queues() -> None:
    objects = rendering("operators")

    assert config_data(objects)["ALIMI_QUORUM_QUEUES"] == "true"
    assert "ALIMI_QUORUM_QUEUES" not in config_data(rendering("dev"))
    assert of_kind(objects, "Secret") == {}  # passwords are made in the cluster, not here
    namespaces = {o["metadata"].get("namespace") for o in objects if o["kind"] != "Namespace"}
    assert namespaces == {"alimi-dev", RABBITMQ.namespace, MONGODB.namespace}


# kind -> (a change that breaks it, what the error must name)
MISTAKES = {
    "RabbitmqCluster": (
        lambda spec: spec.__setitem__("replica", spec.pop("replicas")),
        "'replica' was unexpected",
    ),
    "MongoDBCommunity": (
        lambda spec: spec.__setitem__("type", "Sharded"),
        "'Sharded' is not one of ['ReplicaSet']",
    ),
}


@pytest.mark.parametrize("kind", sorted(MISTAKES))
def test_when_an_operator_resource_has_a_mistake__then_validation_names_it(kind: str) -> None:
    broken = copy.deepcopy(the(kind))
    change, expected = MISTAKES[kind]

    change(broken["spec"])

    assert validation_errors((the(kind),)) == []
    assert any(expected in error for error in validation_errors((broken,))), validation_errors(
        (broken,)
    )
