"""What a dshub command imports: only what it uses (start-up is most of a short command)."""

from __future__ import annotations

import subprocess
import sys


def _fresh(code: str) -> str:
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return out.stdout.strip()


def test_httpx_command_line_client_is_not_imported() -> None:
    # httpx imports its CLI (rich.console, rich.progress, pygments, click) when those are
    # installed; dshub puts a stand-in there. Off a terminal, `dshub ls` needs none of them.
    got = _fresh(
        "import sys, dshub.client.api, httpx; "
        "print(sorted(m for m in ('rich.console', 'rich.progress', 'pygments', 'click') if m in sys.modules))"
    )
    assert got == "[]"


def test_httpx_main_still_loads_the_real_client_when_called() -> None:
    got = _fresh(
        "import sys, dshub, httpx\n"
        "try:\n"
        "    httpx.main(['--help'], standalone_mode=False)\n"
        "except SystemExit:\n"
        "    pass\n"
        "print(type(sys.modules['httpx._main']).__name__, 'main' in vars(sys.modules['httpx._main']),"
        " sys.modules['httpx._main'].__file__.endswith('_main.py'))"
    )
    assert got.splitlines()[-1] == "module True True"  # after the real client's help text
