"""``dshub doctor``: check everything dshub needs, one line each."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from dshub.cli.app import app
from dshub.cli.options import JsonOpt, ProfileOpt, examples

# Above this, S3 rejects signed requests (15 min) and short-lived credentials look
# expired early; warn well before.
MAX_SKEW_SECONDS = 300


@dataclass
class Check:
    """One line of the report; ``ok`` None = skipped (an earlier check failed)."""

    name: str
    ok: bool | None
    detail: str


def run_checks(profile: str | None) -> list[Check]:
    """Run every check; never raises for a failed check (that is what the report is for)."""
    from datetime import datetime, timezone

    from dshub.api.auth import TokenStore, resolve_login
    from dshub.api.client import HubClient
    from dshub.errors import DshubError

    checks: list[Check] = []
    try:
        from dshub.transfer.rclone import find_rclone

        rc = find_rclone()
        checks.append(Check("rclone", True, f"{rc.path} {rc.version_text}"))
    except DshubError as e:
        checks.append(Check("rclone", False, e.message))

    try:
        login = resolve_login(profile)
    except DshubError as e:
        checks.append(Check("hub", False, e.message))
        return checks
    store = TokenStore().info()
    checks.append(
        Check("keyring", True, f"{store.detail}" if store.kind == "keyring" else f"none; tokens in {store.detail} (0600)")
    )
    if not login.hub_url:
        checks.append(Check("hub", False, "no hub configured: run `dshub login --hub URL` or set DSHUB_HUB_URL"))
        return checks
    with HubClient(login.hub_url, login.token, timeout=10.0, retries=1) as client:
        try:
            info = client.info()
        except DshubError as e:
            checks.append(Check("hub", False, e.message))
            checks.append(Check("token", None, "skipped (hub not reachable)"))
            return checks
        checks.append(Check("hub", True, f"{login.hub_url} (dshub {info.version}, broker {info.broker})"))
        server = info.server_time if info.server_time.tzinfo else info.server_time.replace(tzinfo=timezone.utc)
        skew = (datetime.now(timezone.utc) - server).total_seconds()
        checks.append(
            Check(
                "clock",
                abs(skew) <= MAX_SKEW_SECONDS,
                f"{skew:+.1f} s against the hub"
                + ("" if abs(skew) <= MAX_SKEW_SECONDS else "; fix this machine's clock (NTP)"),
            )
        )
        if not login.token:
            checks.append(Check("token", False, "not logged in: run `dshub login` or set DSHUB_TOKEN"))
            return checks
        try:
            user = client.whoami()
            checks.append(Check("token", True, f"valid, user {user.name} (from {login.token_source})"))
        except DshubError as e:
            checks.append(Check("token", False, e.message))
    return checks


@app.command(epilog=examples(
        'dshub doctor',
        'dshub doctor --json',
    ))
def doctor(profile: ProfileOpt = None, json_out: JsonOpt = False) -> None:
    """Check rclone, keyring, hub, clock and token; exit 1 if something is wrong."""
    import typer

    from dshub.cli.output import Output

    out = Output(json_mode=json_out)
    checks = run_checks(profile)
    failed = [c for c in checks if c.ok is False]

    def human() -> None:
        for c in checks:
            mark = "[green]ok[/]  " if c.ok else ("[red]FAIL[/]" if c.ok is False else "[dim]skip[/]")
            out.out.print(f"{mark} {c.name:<8} ", end="")
            out.out.print(c.detail, markup=False, soft_wrap=True)

    out.result({"ok": not failed, "checks": [asdict(c) for c in checks]}, human)
    if failed:
        raise typer.Exit(1)
