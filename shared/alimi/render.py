"""Message templates with ``#{variable}`` placeholders (the AlimTalk convention).

Intake checks a template's variables when a notice is created
(:func:`unknown_variables`); delivery fills them per recipient.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

VARIABLE = re.compile(r"#\{([A-Za-z_][A-Za-z0-9_]*)\}")

# Variables a notice may use: per-recipient ones and the incident's facts.
RECIPIENT_VARIABLES = frozenset({"name"})
INCIDENT_VARIABLES = frozenset({"incident_title", "status_url", "contact"})
KNOWN_VARIABLES = RECIPIENT_VARIABLES | INCIDENT_VARIABLES


def variables(template: str) -> list[str]:
    return list(dict.fromkeys(VARIABLE.findall(template)))


def unknown_variables(template: str) -> list[str]:
    return [v for v in variables(template) if v not in KNOWN_VARIABLES]


def fill(template: str, values: Mapping[str, str]) -> str:
    """Replace every ``#{var}`` present in ``values``; leave the others as they are."""
    return VARIABLE.sub(lambda m: values.get(m.group(1), m.group(0)), template)
