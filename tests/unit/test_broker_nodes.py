"""Reading a cluster's node list and naming its nodes (shared/alimi/broker.py)."""

from __future__ import annotations

import pytest

from alimi.broker import node_name, node_urls


def test_when_one_url_is_given__then_it_is_the_only_node() -> None:
    assert node_urls("amqp://guest:guest@127.0.0.1:5672/") == (
        "amqp://guest:guest@127.0.0.1:5672/",
    )


def test_when_urls_are_separated_by_commas__then_each_is_a_node_in_order() -> None:
    urls = "amqp://u:p@h1:5681/, amqp://u:p@h2:5682/ ,amqp://u:p@h3:5683/"

    assert node_urls(urls) == (
        "amqp://u:p@h1:5681/",
        "amqp://u:p@h2:5682/",
        "amqp://u:p@h3:5683/",
    )


def test_when_no_url_is_given__then_it_is_refused() -> None:
    with pytest.raises(ValueError, match="no broker URL"):
        node_urls(" , ")


def test_when_a_node_is_named__then_host_and_port_without_credentials() -> None:
    assert node_name("amqp://user:secret@rabbit-1.rabbitmq:5672/") == "rabbit-1.rabbitmq:5672"
    assert node_name("amqp://user:secret@rabbit/") == "rabbit:5672"
