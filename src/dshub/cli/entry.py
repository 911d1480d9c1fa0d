"""Console-script entry point: the one home of the command line's start-up tricks.

Each trick trades generality for start-up time of a short-lived command; none of them
runs when dshub is imported as a library."""

from __future__ import annotations

import os
import sys


def _no_pydantic_plugins() -> None:
    """The command line loads no pydantic plugins (the library is not affected).

    pydantic looks for plugins through every installed package's entry points on first
    use (~30 ms). PYDANTIC_DISABLE_PLUGINS skips the search, but the module doing it
    still imports ``importlib.metadata`` (another ~30 ms) before reading the variable; a
    stand-in with the one function pydantic calls answers "no plugins" without it.
    """
    os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")
    if os.environ["PYDANTIC_DISABLE_PLUGINS"] not in ("__all__", "1", "true"):
        return  # the user asked for some plugins: let pydantic load them
    if "pydantic.plugin._loader" in sys.modules:
        return
    import types

    stub = types.ModuleType("pydantic.plugin._loader")
    stub.get_plugins = lambda: ()  # type: ignore[attr-defined]
    sys.modules["pydantic.plugin._loader"] = stub


def _no_httpx_cli() -> None:
    """Keep ``import httpx`` from importing httpx's own command-line client.

    httpx's ``__init__`` imports ``httpx._main`` whenever click, rich and pygments are
    importable (Typer brings all three): a CLI dshub never runs. A stand-in takes its
    place; its ``main`` loads the real module, so ``httpx.main()`` still works.
    """
    if "httpx" in sys.modules or "httpx._main" in sys.modules:
        return
    import types

    stub = types.ModuleType("httpx._main")

    def real_main(*args: object, **kwargs: object) -> object:
        import importlib

        sys.modules.pop("httpx._main", None)
        return importlib.import_module("httpx._main").main(*args, **kwargs)

    stub.main = real_main  # type: ignore[attr-defined]
    sys.modules["httpx._main"] = stub


def _no_trio() -> None:
    """Keep httpcore from importing trio, which no dshub command uses.

    httpcore's locks import trio whenever it is installed (selenium brings it into the
    test environment; other tools into a user's): ~60 ms of every command's start-up. A
    ``None`` entry makes ``import trio`` fail, which httpcore reads as "not installed".
    """
    if "trio" not in sys.modules:
        sys.modules["trio"] = None  # type: ignore[assignment]


def main() -> None:
    """Answer ``dshub --version`` (``-V``) at once; hand everything else to the Typer app."""
    if sys.argv[1:] in (["--version"], ["-V"]):
        from dshub.version import __version__

        print(f"dshub {__version__}")
        return
    _no_httpx_cli()
    _no_trio()
    _no_pydantic_plugins()
    from dshub.cli.main import main as app_main

    if sys.argv[1:2] == ["hub"]:
        app_main()  # a server: its exit is rare and may close databases; the usual way
        return
    try:
        app_main()
    except SystemExit as e:
        _exit_now(e)
    _exit_now(SystemExit(0))


def _exit_now(done: SystemExit) -> None:
    """End the process without tearing the interpreter down.

    Python frees every module and object before a process exits: 70-110 ms of CPU measured
    after `dshub ls` here, a sixth of the command. Everything a command writes is
    written by then (files through ``with``, temporary folders removed, rclone waited
    for), so this exits as Python would — threads that are not daemons joined, ``atexit``
    functions run, stdout and stderr flushed — minus the teardown. A code Python would
    print (``sys.exit("message")``) takes the usual way.
    """
    import threading

    code = done.code
    if code is not None and not isinstance(code, int):
        raise done
    if any(t.is_alive() and not t.daemon for t in threading.enumerate() if t is not threading.current_thread()):
        raise done  # Python's exit waits for them
    import atexit

    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a reader gone (`| head`), or closed by the command
            pass
    os._exit(code or 0)
