"""One output object for every command: human, json or quiet.

Results go to stdout; messages, warnings and prompts go to stderr through a Rich console.
In json mode the command prints exactly one JSON document on stdout (the models'
``model_dump(mode="json")``) and nothing else. Rich drops colour by itself when
``NO_COLOR`` is set or the stream is not a terminal. All terminal checks go through
``Output.interactive`` so tests can drive both paths (httpie's ``Environment`` idea).
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from dshub.errors import UsageError

if TYPE_CHECKING:
    from rich.console import Console

    from dshub.cli.table import Column


@dataclass
class Flags:
    """``--quiet`` / ``--verbose`` of the running command (set by ``options.with_output_flags``)."""

    quiet: bool = False
    verbose: bool = False


FLAGS = Flags()


def set_flags(*, quiet: bool, verbose: bool) -> None:
    """Record the output flags of this run; ``--verbose`` turns dshub's log (INFO) on, on stderr."""
    if quiet and verbose:
        raise UsageError("--quiet and --verbose contradict each other: pick one")
    FLAGS.quiet, FLAGS.verbose = quiet, verbose
    if verbose:
        import logging

        logger = logging.getLogger("dshub")
        if not any(getattr(h, "_dshub_verbose", False) for h in logger.handlers):
            handler = logging.StreamHandler(sys.stderr)
            handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
            handler._dshub_verbose = True  # type: ignore[attr-defined]  # added once per process
            logger.addHandler(handler)
        logger.setLevel(logging.INFO)


def to_jsonable(obj: Any) -> Any:
    """Models → their ``model_dump(mode="json")``; containers, datetimes and enums likewise."""
    from pydantic_core import to_jsonable_python

    return to_jsonable_python(obj)


def _width(stream: Any) -> int | None:
    # Not a terminal (a pipe, a test): Rich would assume 80 columns and fold long values
    # such as keys and URLs; use a wide page unless COLUMNS says otherwise.
    if os.environ.get("COLUMNS"):
        return None
    try:
        return None if stream.isatty() else 200
    except (AttributeError, ValueError):
        return 200


class Output:
    """Where a command's results and messages go."""

    def __init__(self, *, json_mode: bool = False, quiet: bool | None = None, interactive: bool | None = None) -> None:
        self.json_mode = json_mode
        self.quiet = FLAGS.quiet if quiet is None else quiet
        self.verbose = FLAGS.verbose
        self._interactive = interactive
        self._out: Console | None = None
        self._err: Console | None = None

    # --- consoles (Rich is imported on first use) ---------------------------------------

    @property
    def out(self) -> Console:
        """Rich console on stdout, for human results (tables, trees)."""
        if self._out is None:
            from dshub.cli.sanitize import safe_console

            # emoji=False: a name or description holding ":x:" is shown as typed.
            self._out = safe_console(file=sys.stdout, width=_width(sys.stdout), highlight=False, emoji=False)
        return self._out

    @property
    def err(self) -> Console:
        """Rich console on stderr, for messages."""
        if self._err is None:
            from dshub.cli.sanitize import safe_console

            self._err = safe_console(file=sys.stderr, width=_width(sys.stderr), highlight=False, emoji=False)
        return self._err

    @property
    def interactive(self) -> bool:
        """True when stdin and stderr are terminals (prompts can be answered and seen)."""
        if self._interactive is not None:
            return self._interactive
        try:
            return sys.stdin.isatty() and sys.stderr.isatty()
        except (AttributeError, ValueError):
            return False

    # --- results ------------------------------------------------------------------------

    def result(self, data: Any, human: Callable[[], None] | None = None) -> None:
        """Emit the result of a command: one JSON document in json mode, else call ``human``."""
        if self.json_mode:
            sys.stdout.write(json.dumps(to_jsonable(data), indent=2) + "\n")
            sys.stdout.flush()
        elif human is not None:
            human()  # quiet mode keeps results; only messages (info, success) are left out

    def table(
        self,
        columns: Sequence[Column],
        rows: Sequence[Sequence[str]],
        *,
        row_styles: Sequence[str | None] | None = None,
        header: bool = True,
    ) -> None:
        """Print an aligned table on stdout (``dshub.cli.table``).

        On a colour terminal the header is bold and each row gets its Rich style from
        ``row_styles``; anywhere else (a pipe, a file, ``NO_COLOR``) the lines are plain
        text and Rich is not even imported.
        """
        from dshub.cli.table import format_table

        lines = list(format_table(columns, rows, header=header))
        if not self._colour_stdout():
            sys.stdout.write("".join(line + "\n" for line in lines))
            sys.stdout.flush()
            return
        from rich.text import Text

        styles = (["bold"] if header else []) + list(row_styles or [None] * len(rows))
        text = Text()
        for line, style in zip(lines, styles):
            text.append(line + "\n", style=style or "")
        self.out.print(text, end="", soft_wrap=True)

    def _colour_stdout(self) -> bool:
        try:
            if not sys.stdout.isatty():
                return False
        except (AttributeError, ValueError):
            return False
        return self.out.color_system is not None

    def raw(self, text: str) -> None:
        """Write ``text`` to stdout as it is (env lines, config snippets; no Rich markup), control characters neutralised."""
        from dshub.cli.sanitize import clean_text

        sys.stdout.write(clean_text(text))
        sys.stdout.flush()

    # --- messages (stderr) --------------------------------------------------------------

    def info(self, message: str) -> None:
        """A human message on stderr (not in quiet mode)."""
        if not self.quiet:
            self.err.print(message, markup=False, soft_wrap=True)

    def success(self, message: str) -> None:
        """A success line on stderr."""
        if not self.quiet:
            self.err.print(f"✓ {message}", style="green", markup=False, soft_wrap=True)

    def warn(self, message: str) -> None:
        """A warning on stderr, shown even in quiet and json modes."""
        self.err.print(f"Warning: {message}", style="yellow", markup=False, soft_wrap=True)

    # --- questions ----------------------------------------------------------------------

    def confirm(self, question: str, *, yes: bool = False, hint: str = "pass --yes") -> None:
        """Ask a yes/no question; raise UsageError when not interactive (unless ``yes``), Abort on no."""
        if yes:
            return
        if not self.interactive:
            raise UsageError(f"refusing to continue without confirmation in a non-interactive run: {hint}")
        import typer

        if not typer.confirm(question, default=False, err=True):
            raise typer.Abort()

    def prompt(self, question: str, *, default: str | None = None, secret: bool = False) -> str:
        """Ask for a value on the terminal; UsageError when not interactive."""
        if not self.interactive:
            raise UsageError(f"{question}: no terminal to ask on; pass it as an option")
        import typer

        value = typer.prompt(question, default=default, hide_input=secret, err=True, show_default=not secret)
        return str(value).strip()
