"""The alimi command without its extra: it says how to get it."""

from __future__ import annotations

import subprocess
import sys


def test_when_the_cli_extra_is_not_installed__then_alimi_says_to_install_it() -> None:
    hide = "import sys; sys.modules['rich'] = sys.modules['httpx'] = None; import alimi_cli"
    done = subprocess.run([sys.executable, "-c", hide], capture_output=True, text=True, timeout=60)

    assert done.returncode == 1
    assert "rich, httpx missing" in done.stderr
    assert "pip install 'alimi[cli]'" in done.stderr
    assert "Traceback" not in done.stderr
