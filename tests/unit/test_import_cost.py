"""What a dshub command imports: only what it uses (start-up is most of a short command)."""

from __future__ import annotations

import subprocess
import sys


def _fresh(code: str) -> str:
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return out.stdout.strip()


def test_import_dshub_changes_nothing_outside_the_package() -> None:
    got = _fresh("import sys; before = set(sys.modules); import dshub; print(sorted(set(sys.modules) - before))")
    assert got == "['__future__', 'dshub', 'dshub.version']"
    assert _fresh("import dshub, sys; print('httpx._main' in sys.modules)") == "False"


def test_httpx_command_line_client_is_not_imported_by_the_command_line() -> None:
    # httpx imports its CLI (rich.console, rich.progress, pygments, click) when those are
    # installed; the command line puts a stand-in there. Off a terminal, `dshub ls` needs none.
    got = _fresh(
        "import sys; from dshub.cli.entry import _no_httpx_cli; _no_httpx_cli(); import dshub.api.client, httpx; "
        "print(sorted(m for m in ('rich.console', 'rich.progress', 'pygments', 'click') if m in sys.modules))"
    )
    assert got == "[]"


def test_command_line_does_not_import_trio() -> None:
    # httpcore imports trio when it is installed (selenium, in the test extra, brings it).
    got = _fresh(
        "import sys; from dshub.cli.entry import _no_trio; _no_trio(); import dshub.api.client, httpx, httpcore\n"
        "c = httpx.Client(); c.close(); print(sys.modules.get('trio'), [m for m in sys.modules if m.startswith('trio.')])"
    )
    assert got == "None []"


def test_httpx_main_still_loads_the_real_client_when_called() -> None:
    got = _fresh(
        "import sys\nfrom dshub.cli.entry import _no_httpx_cli\n_no_httpx_cli()\nimport httpx\n"
        "try:\n"
        "    httpx.main(['--help'], standalone_mode=False)\n"
        "except SystemExit:\n"
        "    pass\n"
        "print(type(sys.modules['httpx._main']).__name__, 'main' in vars(sys.modules['httpx._main']),"
        " sys.modules['httpx._main'].__file__.endswith('_main.py'))"
    )
    assert got.splitlines()[-1] == "module True True"  # after the real client's help text


def _fresh_env(code: str, **env: str) -> str:
    import os

    full = {k: v for k, v in os.environ.items() if k != "PYDANTIC_DISABLE_PLUGINS"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env={**full, **env})
    return out.stdout.strip()


_BUILD_A_MODEL = (
    "from dshub.cli.entry import _no_pydantic_plugins\n"
    "_no_pydantic_plugins()\n"
    "import sys, pydantic\n"
    "class M(pydantic.BaseModel):\n"
    "    a: int\n"
    "M(a=1)\n"
    "print('importlib.metadata' in sys.modules)\n"
)


def test_command_line_skips_the_pydantic_plugin_search() -> None:
    # The search itself is off (PYDANTIC_DISABLE_PLUGINS); the module that would read that
    # variable is not loaded either, and with it importlib.metadata (~30 ms).
    assert _fresh_env(_BUILD_A_MODEL) == "False"


def test_plugins_the_user_asked_for_are_still_searched() -> None:
    # Naming plugins to disable (not all of them) means the others should load: pydantic's
    # own loader must run.
    assert _fresh_env(_BUILD_A_MODEL, PYDANTIC_DISABLE_PLUGINS="some-plugin") == "True"


def test_only_the_invoked_command_is_built() -> None:
    from dshub.cli.main import _only_invoked, _register, app

    _register()
    everything = [c.callback for c in app.registered_commands]

    def names(a) -> list[str]:  # type: ignore[no-untyped-def]
        return [c.name or c.callback.__name__ for c in a.registered_commands] + [g.name for g in a.registered_groups]

    assert names(_only_invoked(["ls", "alice/taxi"])) == ["ls"]
    assert names(_only_invoked(["--debug", "upload", "./data"])) == ["upload"]
    assert names(_only_invoked(["rclone-config", "x"])) == ["rclone-config"]
    assert names(_only_invoked(["whoami"])) == ["whoami"]
    assert names(_only_invoked(["hub", "serve"])) == ["hub"]
    # No command, help, a typo: the whole app, so help lists and suggestions see everything.
    for argv in ([], ["--help"], ["lss"], ["--version"]):
        assert _only_invoked(argv) is app
    assert [c.callback for c in app.registered_commands] == everything  # the app itself is untouched


def test_completion_sees_every_command(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from dshub.cli.main import _only_invoked, _register, app

    _register()
    monkeypatch.setenv("_DSHUB_COMPLETE", "complete_bash")
    assert _only_invoked(["ls"]) is app


def _entry(prelude: str, *argv: str, **env: str) -> subprocess.CompletedProcess[str]:
    """Run the console entry point (``dshub.cli.entry:main``) after ``prelude``, in a fresh process."""
    import os

    code = f"{prelude}\nimport sys\nsys.argv = ['dshub', *{list(argv)!r}]\nfrom dshub.cli.entry import main\nmain()\n"
    full = {**os.environ, "DSHUB_CONFIG_DIR": os.devnull + "-none", **env}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env=full)


def test_quick_exit_still_runs_atexit_and_flushes() -> None:
    # The command line skips the interpreter's teardown, not what a normal exit does.
    r = _entry("import atexit; atexit.register(lambda: print('atexit ran'))", "upload", "--help")
    assert r.returncode == 0, r.stderr
    assert "Usage: dshub upload" in r.stdout and r.stdout.rstrip().endswith("atexit ran")


def test_quick_exit_keeps_the_exit_code_and_the_error() -> None:
    from dshub.errors import HubUnreachableError

    r = _entry("", "ls", DSHUB_HUB_URL="http://127.0.0.1:9", DSHUB_TOKEN="t")
    assert r.returncode == HubUnreachableError("x").exit_code == 1 and r.stderr.startswith("Error:") and "127.0.0.1:9" in r.stderr
    r = _entry("", "upload", "/nonexistent/folder", DSHUB_HUB_URL="http://127.0.0.1:9", DSHUB_TOKEN="t")
    assert r.returncode == 2 and "no such file" in r.stderr
    r = _entry("", "nosuchcommand")
    assert r.returncode == 2 and "No such command" in r.stderr


def test_quick_exit_waits_for_threads_that_are_not_daemons(tmp_path) -> None:  # type: ignore[no-untyped-def]
    done = tmp_path / "done"
    prelude = (
        "import threading, time\n"
        f"threading.Thread(target=lambda: (time.sleep(0.3), open({str(done)!r}, 'w').write('x'))).start()"
    )
    r = _entry(prelude, "--help")
    assert r.returncode == 0 and done.read_text() == "x"
