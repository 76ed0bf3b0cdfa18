"""``alimi``: the operators' command-line tool for the intake API (see README.md here).

Its dependencies are the distribution's ``cli`` extra, not installed with the services:
without them the command says how to get them rather than failing on an import.
"""

from importlib.util import find_spec

MISSING = [name for name in ("click", "rich", "httpx", "yaml") if find_spec(name) is None]
if MISSING:
    raise SystemExit(
        f"the alimi command needs the 'cli' extra ({', '.join(MISSING)} missing): "
        "pip install 'alimi[cli]'"
    )
