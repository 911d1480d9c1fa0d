"""The hub's REST API against a real hub process: auth, visibility, and bad input.

Every error must be an ``ErrorBody`` with a 4xx status; nothing a client sends may
produce a 500.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from dshub.models import Dataset, DatasetList, ErrorBody, HubInfo, User
from tests.conftest import HubFactory, HubProcess

pytestmark = pytest.mark.integration
# Each test runs on SQLite and on a real PostgreSQL server (tests/pg_server.py).
HUB_DATABASES = ("sqlite", "postgresql")


def assert_error(r: httpx.Response, status: int, code: str) -> ErrorBody:
    assert r.status_code == status, f"{r.status_code} {r.text[:500]}"
    body = ErrorBody.model_validate(r.json())
    assert body.error.code == code, r.text
    assert body.error.message
    return body


@pytest.fixture(scope="module")
def env(module_hub: HubFactory) -> dict[str, Any]:
    h = module_hub()
    tokens = {n: h.create_user(n) for n in ("alice", "bob")}
    tokens["root"] = h.create_user("root", admin=True)
    with h.client(tokens["alice"]) as c:
        assert c.post("/datasets", json={"name": "secret", "description": "private stuff"}).status_code == 201
        r = c.post("/datasets", json={"name": "open.data", "visibility": "public", "tags": ["geo", "taxi"],
                                      "license": "CC-BY-4.0", "description": "Public taxi trips"})
        assert r.status_code == 201
    return {"hub": h, **tokens}


def test_info_and_whoami(env: dict[str, Any]) -> None:
    h: HubProcess = env["hub"]
    info = HubInfo.model_validate(httpx.get(f"{h.api}/info").json())
    assert info.broker == "local" and info.anonymous_read is False and info.server_time.tzinfo
    with h.client(env["alice"]) as c:
        u = User.model_validate(c.get("/whoami").json())
        assert u.name == "alice" and not u.is_admin
    with h.client(env["root"]) as c:
        assert c.get("/whoami").json()["is_admin"] is True


@pytest.mark.parametrize(
    "header",
    [None, "Bearer nope", "Bearer dshub_0123456789abcdef_" + "x" * 43, "Basic abc", "Bearer ", "Bearer dshub_\x7f"],
)
def test_bad_tokens_are_401(env: dict[str, Any], header: str | None) -> None:
    h: HubProcess = env["hub"]
    headers = {"Authorization": header} if header is not None else {}
    try:
        r = httpx.get(f"{h.api}/whoami", headers=headers)
    except (httpx.LocalProtocolError, ValueError):
        return  # the client library itself refuses the header: nothing reached the hub
    body = assert_error(r, 401, "unauthorized")
    assert "dshub login" in body.error.message
    assert_error(httpx.get(f"{h.api}/datasets", headers=headers), 401, "unauthorized")


def test_revoked_token_is_401(env: dict[str, Any]) -> None:
    h: HubProcess = env["hub"]
    tok = h.create_token("bob")
    with h.client(tok) as c:
        assert c.get("/whoami").status_code == 200
    res = h.revoke_token(tok.split("_")[1])
    assert res.returncode == 0, res.stderr
    with h.client(tok) as c:
        assert_error(c.get("/whoami"), 401, "unauthorized")
    assert h.revoke_token(tok).returncode != 0  # already revoked
    assert h.revoke_token("garbage").returncode == 2
    with h.client(env["bob"]) as c:  # other tokens of the user still work
        assert c.get("/whoami").status_code == 200


def test_private_dataset_is_invisible_to_others(env: dict[str, Any]) -> None:
    h: HubProcess = env["hub"]
    with h.client(env["bob"]) as c:
        assert_error(c.get("/datasets/alice/secret"), 404, "not_found")
        assert_error(c.patch("/datasets/alice/secret", json={"description": "x"}), 404, "not_found")
        assert_error(c.delete("/datasets/alice/secret"), 404, "not_found")
        assert_error(c.get("/datasets/alice/secret/versions"), 404, "not_found")
        assert_error(c.get("/datasets/alice/secret/versions/1/files"), 404, "not_found")
        assert_error(c.post("/datasets/alice/secret/versions/1/credentials"), 404, "not_found")
        assert_error(c.get("/datasets/alice/secret/sessions"), 404, "not_found")
        assert_error(c.post("/datasets/alice/secret/sessions", json={}), 404, "not_found")
        # Same answer as for a dataset that does not exist at all.
        assert_error(c.get("/datasets/alice/nothing-here"), 404, "not_found")
        names = {d.name for d in DatasetList.model_validate(c.get("/datasets").json()).items}
        assert names == {"open.data"}
        # Public: readable, not writable.
        ds = Dataset.model_validate(c.get("/datasets/alice/open.data").json())
        assert ds.tags == ["geo", "taxi"] and ds.license == "CC-BY-4.0" and ds.latest_version is None
        assert_error(c.patch("/datasets/alice/open.data", json={"description": "x"}), 403, "forbidden")
        assert_error(c.delete("/datasets/alice/open.data"), 403, "forbidden")
        assert_error(c.post("/datasets/alice/open.data/sessions", json={}), 403, "forbidden")
        assert c.get("/datasets/alice/open.data/versions").json() == {"items": []}
        assert_error(c.get("/datasets/alice/open.data/versions/latest"), 404, "not_found")
    with h.client(env["root"]) as c:  # admin sees everything
        assert c.get("/datasets/alice/secret").status_code == 200
        assert DatasetList.model_validate(c.get("/datasets").json()).total >= 2
    with h.client(env["alice"]) as c:
        assert c.get("/datasets", params={"q": "TAXI"}).json()["total"] == 1
        assert c.get("/datasets", params={"tag": "geo"}).json()["items"][0]["name"] == "open.data"
        assert c.get("/datasets", params={"owner": "bob"}).json()["total"] == 0
        page = c.get("/datasets", params={"page": 2, "page_size": 1}).json()
        assert page["total"] == 2 and len(page["items"]) == 1 and page["page"] == 2
        r = c.patch("/datasets/alice/secret", json={"visibility": "public", "tags": ["a"]})
        assert r.status_code == 200 and r.json()["visibility"] == "public" and r.json()["tags"] == ["a"]
        r = c.patch("/datasets/alice/secret", json={"visibility": "private"})
        assert r.json()["description"] == "private stuff"  # untouched fields stay
        assert_error(c.post("/datasets", json={"name": "secret"}), 409, "conflict")


@pytest.mark.parametrize(
    ("method", "path", "kwargs", "status", "code"),
    [
        ("post", "/datasets", {"json": {"name": "Bad Name"}}, 422, "invalid"),
        ("post", "/datasets", {"json": {"name": "../x"}}, 422, "invalid"),
        ("post", "/datasets", {"json": {"name": ".hidden"}}, 422, "invalid"),
        ("post", "/datasets", {"json": {"name": "x" * 101}}, 422, "invalid"),
        ("post", "/datasets", {"json": {"name": "a\u0000b"}}, 422, "invalid"),
        ("post", "/datasets", {"json": {"name": "ok", "tags": ["\u0000"]}}, 422, "invalid"),
        ("post", "/datasets", {"json": {"name": "ok", "visibility": "everyone"}}, 422, "invalid"),
        ("post", "/datasets", {"content": b"{not json", "headers": {"content-type": "application/json"}}, 422,
         "invalid"),
        ("post", "/datasets", {"json": [1, 2]}, 422, "invalid"),
        ("get", "/datasets/alice/%2E%2E", {}, 422, "invalid"),
        ("get", "/datasets/alice/se%00cret", {}, 422, "invalid"),
        ("get", "/datasets/al%00ice/secret", {}, 422, "invalid"),
        ("get", "/datasets/ALICE/secret", {}, 422, "invalid"),
        ("get", "/datasets/alice/" + "x" * 5000, {}, 422, "invalid"),
        ("get", "/datasets/alice/secret/versions/99999999999999999999999", {}, 422, "invalid"),
        ("get", "/datasets/alice/secret/versions/v0", {}, 422, "invalid"),
        ("get", "/datasets/alice/secret/versions/-1", {}, 422, "invalid"),
        ("get", "/datasets/alice/secret/versions/v7", {}, 404, "not_found"),
        ("get", "/datasets/alice/secret/versions/abc", {}, 422, "invalid"),
        ("get", "/datasets/alice/secret/versions/%00", {}, 422, "invalid"),
        ("get", "/datasets/alice/secret/versions/7/files", {}, 404, "not_found"),
        ("get", "/datasets/alice/secret/versions/7/manifest", {}, 404, "not_found"),
        ("post", "/datasets/alice/secret/versions/7/credentials", {}, 404, "not_found"),
        ("get", "/datasets", {"params": {"page": "99999999999999999999999999"}}, 422, "invalid"),
        ("get", "/datasets", {"params": {"page_size": "0"}}, 422, "invalid"),
        ("get", "/datasets", {"params": {"q": "a\u0000b"}}, 422, "invalid"),
        ("get", "/datasets", {"params": {"owner": "../x"}}, 422, "invalid"),
        ("get", "/sessions/does-not-exist", {}, 404, "not_found"),
        ("get", "/sessions/%00", {}, 404, "not_found"),
        ("get", "/sessions/%ff%fe", {}, 404, "not_found"),
        ("get", "/datasets/alice/%ff", {}, 422, "invalid"),
        ("get", "/datasets/alice/secret/versions/1/files", {"params": {"prefix": "../etc"}}, 404, "not_found"),
        ("delete", "/sessions/" + "x" * 100, {}, 422, "invalid"),
        ("post", "/sessions/x/commit", {"json": {"files": [{"path": "a", "size": -1}]}}, 422, "invalid"),
        ("post", "/sessions/x/commit", {"json": {"files": "nope"}}, 422, "invalid"),
        ("get", "/no/such/route", {}, 404, "not_found"),
        ("put", "/datasets", {}, 405, "method_not_allowed"),
    ],
)
def test_bad_input_is_a_clear_4xx(
    env: dict[str, Any], method: str, path: str, kwargs: dict[str, Any], status: int, code: str
) -> None:
    h: HubProcess = env["hub"]
    with h.client(env["alice"]) as c:
        r = c.request(method, path, **kwargs)
    assert_error(r, status, code)


def test_file_listing_bad_params(env: dict[str, Any]) -> None:
    h: HubProcess = env["hub"]
    with h.client(env["alice"]) as c:
        base = "/datasets/alice/open.data/versions/latest/files"
        assert_error(c.get(base), 404, "not_found")
        for params in ({"limit": 0}, {"limit": 10**12}, {"recursive": "maybe"}):
            assert_error(c.get(base, params=params), 422, "invalid")


def test_anonymous_needs_the_flag(env: dict[str, Any], hub: HubFactory) -> None:
    h: HubProcess = env["hub"]
    assert_error(httpx.get(f"{h.api}/datasets/alice/open.data"), 401, "unauthorized")
    anon = hub("--anonymous-read")
    tok = anon.create_user("alice")
    with anon.client(tok) as c:
        c.post("/datasets", json={"name": "pub", "visibility": "public"})
        c.post("/datasets", json={"name": "priv"})
    with anon.client() as c:
        assert c.get("/info").json()["anonymous_read"] is True
        assert c.get("/datasets/alice/pub").status_code == 200
        assert_error(c.get("/datasets/alice/priv"), 404, "not_found")
        assert [d["name"] for d in c.get("/datasets").json()["items"]] == ["pub"]
        assert_error(c.post("/datasets", json={"name": "x"}), 401, "unauthorized")
        assert_error(c.post("/datasets/alice/pub/sessions", json={}), 401, "unauthorized")
        assert_error(c.get("/whoami"), 401, "unauthorized")
    with anon.client("dshub_0123456789abcdef_" + "y" * 43) as c:  # a bad token is still a 401
        assert_error(c.get("/datasets/alice/pub"), 401, "unauthorized")


def test_openapi_is_served(env: dict[str, Any]) -> None:
    h: HubProcess = env["hub"]
    doc = httpx.get(f"{h.api}/openapi.json").json()
    assert "/api/v1/sessions/{session_id}/commit" in doc["paths"]
