"""``dshub login``, ``dshub logout``, ``dshub whoami``."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from dshub.cli.app import app
from dshub.cli.options import JsonOpt, ProfileOpt, examples
from dshub.errors import UsageError


@app.command(
    epilog=examples(
        'dshub login --hub https://hub.example.org            # asks for the token',
        'echo "$TOKEN" | dshub login --hub http://localhost:8080 --token -',
        'dshub login --profile staging --hub http://staging:8080 --token -',
    )
)
def login(
    hub: Annotated[
        str | None, typer.Option("--hub", help="Hub URL, e.g. https://hub.example.org (default: the profile's).")
    ] = None,
    token: Annotated[
        str | None,
        typer.Option(
            "--token",
            help="API token; '-' reads it from stdin (preferred: a token in argv is visible to other users).",
        ),
    ] = None,
    profile: ProfileOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Log in to a hub: check the token and store it in the system keyring."""
    import os

    from dshub.api.auth import TokenStore
    from dshub.api.client import normalise_hub_url
    from dshub.api.config import Profile, load_config, save_config, selected_profile
    from dshub.cli.output import Output

    out = Output(json_mode=json_out)
    cfg = load_config()
    name = selected_profile(profile, cfg)
    hub_url = hub or os.environ.get("DSHUB_HUB_URL") or cfg.profile(name).hub_url
    if not hub_url:
        hub_url = out.prompt("Hub URL") if out.interactive else None
    if not hub_url:
        raise UsageError("no hub URL: pass --hub URL (or set DSHUB_HUB_URL)")
    hub_url = normalise_hub_url(hub_url)

    if token == "-":
        token = sys.stdin.readline().strip()
        if not token:
            raise UsageError("--token -: stdin was empty; pipe the token in, e.g. `echo \"$T\" | dshub login --token -`")
    elif token is None:
        if not out.interactive:
            raise UsageError("no token: pass it on stdin with `--token -` (or run on a terminal to be asked)")
        token = out.prompt(f"Token for {hub_url}", secret=True)
        if not token:
            raise UsageError("no token given")

    from dshub.library.client import Client

    with Client(hub_url=hub_url, token=token) as client:  # the token is checked before it is stored
        user = client.whoami()
    where = TokenStore().set(name, hub_url, token)
    first = not cfg.profiles
    cfg.set_profile(Profile(name=name, hub_url=hub_url))
    if first or cfg.default_profile not in cfg.profiles:
        cfg.default_profile = name
    save_config(cfg)

    if where.kind == "file":
        out.warn(f"no system keyring available; token stored in {where.detail} (mode 0600)")
    out.result(user, lambda: out.success(f"Logged in to {hub_url} as {user.name} (profile {name!r})"))


@app.command(epilog=examples(
        'dshub logout',
        'dshub logout --profile staging',
    ))
def logout(profile: ProfileOpt = None) -> None:
    """Forget the stored token of a profile (the hub URL is kept)."""
    import os

    from dshub.api.auth import TokenStore, resolve_login
    from dshub.cli.output import Output

    out = Output()
    login = resolve_login(profile)
    if not login.hub_url:
        out.info(f"Not logged in (profile {login.profile!r}).")
        return
    if TokenStore().delete(login.profile, login.hub_url):
        out.success(f"Logged out of {login.hub_url} (profile {login.profile!r})")
    else:
        out.info(f"No stored token for {login.hub_url} (profile {login.profile!r}).")
    if os.environ.get("DSHUB_TOKEN"):
        out.warn("DSHUB_TOKEN is set in the environment and is still used; unset it to log out fully")


@app.command(epilog=examples(
        'dshub whoami',
        'dshub whoami --json | jq -r .name',
    ))
def whoami(profile: ProfileOpt = None, json_out: JsonOpt = False) -> None:
    """Show the user the current token belongs to, and where hub and token come from."""
    from dshub.api.auth import resolve_login
    from dshub.cli.common import connect
    from dshub.cli.output import Output

    out = Output(json_mode=json_out)
    login = resolve_login(profile)  # only to say where hub and token come from
    with connect(profile) as client:
        user = client.whoami()

    def human() -> None:
        admin = " (admin)" if user.is_admin else ""
        out.out.print(f"{user.name}{admin}", markup=False)
        out.info(
            f"hub {login.hub_url} (from {login.hub_source}), profile {login.profile!r}, "
            f"token from {login.token_source}"
        )

    out.result(user, human)
