"""The smallest `ls` a command line on the design card's stack can be (benchmark E's floor).

Typer parses one command with two options, httpx asks the hub for the datasets the
token sees, pydantic validates the answer, the names are printed. No config, no keyring,
no retries, no table: what is left of `dshub ls` once everything dshub adds is gone. Its
time beside `dshub ls` is the share of the start-up that is dshub's own; the rest is the
stack (importing Typer, pydantic, httpx/httpcore and building their objects).
Run with DSHUB_HUB_URL and DSHUB_TOKEN set, as the benchmark runs `dshub ls`.
"""

from __future__ import annotations

import os
import sys

sys.modules["httpx._main"] = None  # type: ignore[assignment]  # httpx's own CLI, as dshub blocks it

import httpx
import typer
from pydantic import BaseModel

app = typer.Typer(add_completion=False)


class Item(BaseModel):
    owner: str
    name: str
    latest_version: int | None = None
    size: int = 0


class Page(BaseModel):
    items: list[Item]
    total: int


@app.command()
def ls(limit: int = typer.Option(100, "--limit"), json_out: bool = typer.Option(False, "--json")) -> None:
    """List datasets."""
    url = os.environ["DSHUB_HUB_URL"].rstrip("/") + "/api/v1/datasets"
    headers = {"Authorization": f"Bearer {os.environ['DSHUB_TOKEN']}"}
    with httpx.Client(transport=httpx.HTTPTransport(verify=False)) as client:
        resp = client.get(url, params={"page_size": limit}, headers=headers)
        resp.raise_for_status()
    page = Page.model_validate_json(resp.content)
    if json_out:
        sys.stdout.write(page.model_dump_json() + "\n")
        return
    sys.stdout.write("".join(f"{d.owner}/{d.name}\t{d.latest_version or '-'}\t{d.size}\n" for d in page.items))


if __name__ == "__main__":
    app()
