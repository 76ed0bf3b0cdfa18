"""Run the whole system on one machine, without Docker: ``make run`` and the tests.

Starts SecantusDB (a MongoDB-wire server) as its own process when no MongoDB
URL is given, checks that RabbitMQ answers, starts the sandbox providers and
every service as separate processes, and waits until each reports ready.
``python -m alimi_devstack`` runs it in the foreground with interleaved logs
until Ctrl-C.
"""

from alimi_devstack.processes import (
    Process,
    StackError,
    eventually,
    free_port,
    rabbitmq_answers,
    wait_for_port,
    wait_ready,
)
from alimi_devstack.run import main
from alimi_devstack.stack import (
    DEFAULT_AMQP_URL,
    LOCAL_KEYS,
    LOCAL_REPORT_SECRET,
    Stack,
    running,
)
from alimi_devstack.walkthrough import CURL_EXAMPLE

__all__ = [
    "CURL_EXAMPLE",
    "DEFAULT_AMQP_URL",
    "LOCAL_KEYS",
    "LOCAL_REPORT_SECRET",
    "Process",
    "Stack",
    "StackError",
    "eventually",
    "free_port",
    "main",
    "rabbitmq_answers",
    "running",
    "wait_for_port",
    "wait_ready",
]
