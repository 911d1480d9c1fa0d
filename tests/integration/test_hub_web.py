"""The hub's web pages over HTTP against a real hub: access rules, cookies, CSRF, headers,
escaping, search, previews, downloads and every bad input's status.

The browser tests (``test_hub_web_browser``) drive the same pages in Chromium; these
check what a browser hides: status codes, headers, cookie attributes.
"""

from __future__ import annotations

import hashlib
import html
from collections.abc import Iterator
from urllib.parse import quote

import httpx
import pytest

from dshub.models import Visibility
from tests.conftest import HubFactory
from tests.integration.library_util import publish
from tests.integration.web_util import XSS_DESCRIPTION, XSS_FILE, Seeded, browser, csrf_of, seed, sign_in

pytestmark = pytest.mark.integration

CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)


@pytest.fixture(scope="module")
def site(module_hub: HubFactory) -> Seeded:
    return seed(module_hub("--anonymous-read"))


@pytest.fixture
def visitor(site: Seeded) -> Iterator[httpx.Client]:
    with browser(site.hub) as c:
        yield c


@pytest.fixture
def alice(site: Seeded) -> Iterator[httpx.Client]:
    with browser(site.hub) as c:
        assert sign_in(c, site.alice).status_code == 303
        yield c


@pytest.fixture
def bob(site: Seeded) -> Iterator[httpx.Client]:
    with browser(site.hub) as c:
        assert sign_in(c, site.bob).status_code == 303
        yield c


def test_pages_carry_strict_security_headers(visitor: httpx.Client) -> None:
    for path in ("/", "/datasets/alice/taxi", "/datasets/alice/taxi/file/v1/README.md", "/signin",
                 "/datasets/alice/nope"):
        r = visitor.get(path)
        assert r.headers["content-security-policy"] == CSP, path
        assert r.headers["x-frame-options"] == "DENY"
        assert r.headers["x-content-type-options"] == "nosniff"
        assert r.headers["cache-control"] == "no-store"
        assert "<script>" not in r.text.replace('<script src="/static/app.js" defer></script>', "")
    js = visitor.get("/static/app.js")
    assert js.status_code == 200 and js.headers["content-type"].startswith("text/javascript")
    assert visitor.get("/static/nope.js").status_code == 404
    # The API keeps its own (JSON) answers.
    assert visitor.get("/api/v1/datasets/alice/nope").json()["error"]["code"] == "not_found"


def test_visitor_sees_public_datasets_and_gets_404_for_private(visitor: httpx.Client, site: Seeded) -> None:
    page = visitor.get("/")
    assert page.status_code == 200
    assert "alice/<strong>taxi</strong>" in page.text and "bob/<strong>weather</strong>" in page.text
    assert "secret" not in page.text
    for path in ("/datasets/alice/secret", "/datasets/alice/secret/tree/v1",
                 "/datasets/alice/secret/file/v1/salaries.csv", "/datasets/alice/secret/raw/v1/salaries.csv"):
        r = visitor.get(path)
        assert r.status_code == 404, path
        assert "dataset alice/secret not found" in r.text
        assert "salaries" not in r.text.split("<main", 1)[1]  # the sign-in link keeps the URL asked for
    # Exactly what the API answers to the same caller.
    assert httpx.get(f"{site.hub.api}/datasets/alice/secret").status_code == 404
    assert "Sign in" in page.text and 'name="token"' not in page.text


def test_owner_signs_in_into_a_strict_httponly_cookie_and_sees_private(site: Seeded) -> None:
    with browser(site.hub) as c:
        r = sign_in(c, site.alice)
        assert r.status_code == 303 and r.headers["location"] == "/"
        cookie = next(v for k, v in r.headers.multi_items() if k == "set-cookie" and v.startswith("dshub_session="))
        attrs = [a.strip().lower() for a in cookie.split(";")]
        assert "httponly" in attrs and "samesite=strict" in attrs and "path=/" in attrs
        assert "secure" not in attrs  # plain http here; https adds Secure
        page = c.get("/")
        assert "Signed in as <strong>alice</strong>" in page.text
        assert "alice/<strong>secret</strong>" in page.text
        # The token is in no page and no URL.
        for p in ("/", "/datasets/alice/secret", "/datasets/alice/taxi/file/v1/README.md"):
            assert site.alice not in c.get(p).text
        assert c.get("/datasets/alice/secret").status_code == 200
        # Behind a TLS proxy (uvicorn trusts X-Forwarded-Proto from loopback) the cookie is Secure.
    with httpx.Client(base_url=site.hub.url, headers={"x-forwarded-proto": "https"}) as tls:
        form = tls.get("/signin")
        # httpx keeps a Secure cookie for https only: hand it back by hand over this http link.
        csrf = form.headers["set-cookie"].split(";", 1)[0]
        assert csrf.startswith("dshub_csrf=") and "; secure" in form.headers["set-cookie"].lower()
        tls.cookies.clear()
        r = tls.post("/signin", data={"token": site.alice, "csrf_token": csrf_of(form.text)},
                     headers={"cookie": csrf})
        assert r.status_code == 303
        cookies = [v.lower() for k, v in r.headers.multi_items() if k == "set-cookie"]
        assert len(cookies) == 2 and all("; secure" in v and "samesite=strict" in v for v in cookies)
    with browser(site.hub) as c:
        assert sign_in(c, site.alice).status_code == 303
        page = c.get("/")
        # Sign out: the cookie goes, the private dataset is 404 again.
        out = c.post("/signout", data={"csrf_token": csrf_of(page.text)})
        assert out.status_code == 303
        assert c.get("/datasets/alice/secret").status_code == 404


def test_another_user_gets_404_for_private_and_403_for_editing_public(bob: httpx.Client, site: Seeded) -> None:
    assert bob.get("/datasets/alice/secret").status_code == 404
    page = bob.get("/datasets/alice/taxi")
    assert page.status_code == 200 and 'id="edit-form"' not in page.text
    token = csrf_of(page.text)
    r = bob.post("/datasets/alice/taxi/edit", data={"csrf_token": token, "description": "pwned", "tags": "",
                                                     "license": "", "visibility": "private"})
    assert r.status_code == 403
    r = bob.post("/datasets/alice/secret/edit", data={"csrf_token": token, "description": "pwned", "tags": "",
                                                       "license": "", "visibility": "public"})
    assert r.status_code == 404
    with site.hub.client(site.alice) as api:
        d = api.get("/datasets/alice/taxi").json()
        assert d["description"] == XSS_DESCRIPTION and d["visibility"] == "public"
        assert api.get("/datasets/alice/secret").json()["visibility"] == "private"


def test_owner_edits_description_tags_licence_visibility(site: Seeded) -> None:
    h = site.hub
    tok = h.create_user("carol")
    publish(h.url, tok, "carol", "edits", {"a.txt": b"a"})
    with browser(h) as c:
        assert sign_in(c, tok).status_code == 303
        page = c.get("/datasets/carol/edits")
        assert 'id="edit-form"' in page.text
        r = c.post("/datasets/carol/edits/edit", data={
            "csrf_token": csrf_of(page.text), "description": "Line one\r\nline <two>",
            "tags": "alpha, beta,,alpha", "license": "MIT", "visibility": "public"})
        assert r.status_code == 303 and r.headers["location"] == "/datasets/carol/edits"
        with h.client(tok) as api:
            d = api.get("/datasets/carol/edits").json()
        assert (d["description"], d["tags"], d["license"], d["visibility"]) == (
            "Line one\nline <two>", ["alpha", "beta"], "MIT", "public")
        shown = c.get("/datasets/carol/edits").text
        assert "line &lt;two&gt;" in shown and "line <two>" not in shown
        # Bad values: one clear message, status 422, nothing changed.
        token = csrf_of(shown)
        for data, needle in (
            ({"visibility": "secret"}, "visibility must be one of"),
            ({"tags": "x" * 60}, "invalid tag"),
            ({"license": "L" * 101}, "license"),
            ({"description": "d" * 10_001}, "description"),
        ):
            form = {"csrf_token": token, "description": "kept", "tags": "", "license": "", "visibility": "public",
                    **data}
            r = c.post("/datasets/carol/edits/edit", data=form)
            assert r.status_code == 422, data
            assert needle in r.text
        with h.client(tok) as api:
            assert api.get("/datasets/carol/edits").json()["description"] == "Line one\nline <two>"


def test_csrf_refusals_change_nothing(alice: httpx.Client, site: Seeded) -> None:
    page = alice.get("/datasets/alice/taxi")
    good = csrf_of(page.text)
    form = {"description": "changed", "tags": "", "license": "", "visibility": "private"}
    with browser(site.hub) as other:
        assert sign_in(other, site.alice).status_code == 303
        other_token = csrf_of(other.get("/").text)
    assert other_token != good
    cases = [
        ({**form}, {}),                                   # no token
        ({**form, "csrf_token": "0" * 64}, {}),           # forged
        ({**form, "csrf_token": other_token}, {}),        # another browser's
        ({**form, "csrf_token": good}, {"origin": "http://evil.example"}),  # another site
    ]
    for data, headers in cases:
        r = alice.post("/datasets/alice/taxi/edit", data=data, headers=headers)
        assert r.status_code == 403, (data.get("csrf_token"), headers)
        assert "CSRF" in r.text or "another site" in r.text
    # A visitor's token does not survive sign-in either.
    with browser(site.hub) as fresh:
        before = csrf_of(fresh.get("/signin").text)
        assert fresh.post("/signin", data={"token": site.alice, "csrf_token": before}).status_code == 303
        assert fresh.post("/datasets/alice/taxi/edit", data={**form, "csrf_token": before}).status_code == 403
        # Sign-out needs the token too.
        assert fresh.post("/signout", data={}).status_code == 403
    with site.hub.client(site.alice) as api:
        d = api.get("/datasets/alice/taxi").json()
    assert d["description"] == XSS_DESCRIPTION and d["visibility"] == "public"


def test_user_text_and_file_names_are_escaped(visitor: httpx.Client) -> None:
    page = visitor.get("/datasets/alice/taxi")
    assert "Trips &lt;script&gt;window.__xss = 1; alert(&#34;desc&#34;)&lt;/script&gt; &amp; fares" in page.text
    assert "<script>window" not in page.text
    assert "&lt;img src=x onerror=alert(1)&gt;.csv" in page.text
    assert "<img src=x" not in page.text
    href = "/datasets/alice/taxi/file/v1/" + quote(XSS_FILE, safe="/")
    assert f'href="{href}"' in page.text
    f = visitor.get(href)
    assert f.status_code == 200
    assert "&lt;b&gt;bold&lt;/b&gt;" in f.text and "&lt;script&gt;alert(2)&lt;/script&gt;" in f.text
    assert "<script>alert(2)" not in f.text and "<b>bold" not in f.text
    raw = visitor.get("/datasets/alice/taxi/raw/v1/" + quote(XSS_FILE, safe="/"))
    assert raw.headers["content-disposition"].startswith("attachment;")
    assert raw.headers["content-type"] == "application/octet-stream"
    assert "sandbox" in raw.headers["content-security-policy"]


def test_search_across_name_owner_tag_and_description(site: Seeded) -> None:
    with browser(site.hub) as c:
        def names(q: str, **params: str) -> list[str]:
            r = c.get("/", params={"q": q, **params})
            assert r.status_code == 200, r.text
            import re

            return re.findall(r'<a href="/datasets/([^"]+)">', r.text)

        assert names("taxi") == ["alice/taxi"]
        assert names("owner:bob") == ["bob/weather"]
        assert names("bob") == ["bob/weather"]
        assert names("climate") == ["bob/weather"]       # a tag
        assert names("tag:nyc") == ["alice/taxi"]
        assert names("tag:ny") == []                      # tag: is exact
        assert names("", tag="open data") == ["bob/weather"]  # the tag links: spaces and all
        assert names("", tag="open") == [] and names("taxi", tag="climate") == []
        assert 'href="/?tag=open%20data"' in c.get("/datasets/bob/weather").text
        assert names("oslo temperatures") == ["bob/weather"]  # description words, any order
        assert names("fares alice") == ["alice/taxi"]
        assert names("t_xi") == [] and names("t%i") == []  # LIKE wildcards are literal
        assert names("salaries") == [] and names("secret") == []  # private stays hidden
        assert set(names("", sort="name")) >= {"alice/taxi", "bob/weather"}
        by_name = names("", sort="name")
        assert by_name == sorted(by_name, key=lambda s: (s.split("/")[1], s.split("/")[0]))
        by_size = names("", sort="size")
        assert by_size[0] == "alice/taxi"


def test_bad_inputs_get_one_line_errors(visitor: httpx.Client, alice: httpx.Client) -> None:
    cases = {
        "/?sort=bogus": (422, "unknown sort"),
        "/?scope=everything": (422, "unknown scope"),
        "/?page=0": (422, "page"),
        "/?q=" + "x" * 201: (422, "q"),
        "/?q=a%00b": (422, "NUL"),
        "/?q=" + "+".join("w" * 9): (422, "at most 8 words"),
        "/datasets/alice/taxi/tree/vx": (422, "version"),
        "/datasets/alice/taxi/tree/v9": (404, "version alice/taxi@v9 not found"),
        "/datasets/alice/taxi/tree/v1/nope": (404, "path 'nope' in v1 not found"),
        "/datasets/alice/taxi/tree/v1/%2E%2E/x": (422, "component"),
        "/datasets/alice/taxi?cursor=garbage": (422, "invalid cursor"),
        "/datasets/alice/taxi/file/v1/2022": (404, "file '2022' in v1 not found"),
        "/datasets/Bad!/x": (422, "invalid"),
        "/datasets/alice/taxi/image/v1/README.md": (404, "image preview not found"),
    }
    for path, (status, needle) in cases.items():
        r = visitor.get(path)
        assert r.status_code == status, (path, r.status_code)
        assert needle in html.unescape(r.text), (path, r.text[-600:])
        assert r.headers["content-type"].startswith("text/html")
    token = csrf_of(alice.get("/").text)
    r = alice.post("/datasets/alice/taxi/edit", content=b"{}", headers={"content-type": "application/json"})
    assert r.status_code == 415
    r = alice.post("/datasets/alice/taxi/edit", data={"csrf_token": token, "description": "x" * 70_000})
    assert r.status_code == 413
    r = alice.post("/datasets/alice/taxi/edit", content=b"csrf_token=%ff%fe",
                   headers={"content-type": "application/x-www-form-urlencoded"})
    assert r.status_code == 400
    # Sign-in: a wrong token is a 401 page; an open redirect is not possible.
    page = visitor.get("/signin?next=//evil.example/x")
    assert 'value="/"' in page.text
    r = visitor.post("/signin", data={"token": "dshub_0123456789abcdef_" + "x" * 30, "next": "/",
                                      "csrf_token": csrf_of(page.text)})
    assert r.status_code == 401 and "Token rejected" in r.text
    r = visitor.post("/signin", data={"token": "", "csrf_token": csrf_of(page.text)})
    assert r.status_code == 401


def test_a_folder_page_pages_with_the_api_cursor_and_redirects_a_file(visitor: httpx.Client) -> None:
    r = visitor.get("/datasets/alice/taxi/tree/v1/2022")
    assert r.status_code == 200
    assert 'href="/datasets/alice/taxi/tree/v1/2022/01"' in r.text
    r = visitor.get("/datasets/alice/taxi/tree/v1/2022/01/trips.csv")
    assert r.status_code == 303 and r.headers["location"] == "/datasets/alice/taxi/file/v1/2022/01/trips.csv"


def test_file_page_previews_and_download_streams_the_bytes(visitor: httpx.Client) -> None:
    from tests.integration.web_util import TAXI_CSV, parquet_bytes

    f = visitor.get("/datasets/alice/taxi/file/v1/2022/01/trips.csv")
    assert f.status_code == 200
    assert "<th scope=\"col\">fare_amount</th>" in f.text and "first 50 rows" in f.text
    assert hashlib.md5(TAXI_CSV.encode()).hexdigest() in f.text
    assert "pd.read_csv(&#34;dshub://alice/taxi@v1/2022/01/trips.csv&#34;)" in f.text
    p = visitor.get("/datasets/alice/taxi/file/v1/zones/lookup/zones.parquet")
    assert "Schema · 3 columns · 500 rows" in p.text and "<td>Manhattan</td>" in p.text
    assert "first 50 of 500 rows" in p.text
    t = visitor.get("/datasets/alice/taxi/file/v1/README.md")
    assert "# NYC taxi trips" in t.text
    raw = visitor.get("/datasets/alice/taxi/raw/v1/zones/lookup/zones.parquet")
    assert raw.status_code == 200 and raw.content == parquet_bytes()
    assert raw.headers["content-length"] == str(len(raw.content))
    assert 'filename="zones.parquet"' in raw.headers["content-disposition"]


def test_private_hub_sends_visitors_to_sign_in(hub: HubFactory) -> None:
    h = hub()
    tok = h.create_user("dora")
    publish(h.url, tok, "dora", "pub", {"a.csv": b"a\n1\n"}, visibility=Visibility.public)
    with browser(h) as c:
        for path in ("/", "/datasets/dora/pub", "/datasets/dora/pub/raw/v1/a.csv"):
            r = c.get(path)
            assert r.status_code == 303, path
            assert r.headers["location"] == "/signin?next=" + quote(path, safe="")
        assert "shows its datasets to signed-in users only" in c.get("/signin").text
        assert sign_in(c, tok).status_code == 303
        assert c.get("/datasets/dora/pub").status_code == 200
        # A revoked token signs the browser out on its next page (and clears the cookie).
        assert h.revoke_token(tok).returncode == 0
        r = c.get("/")
        assert r.status_code == 303 and r.headers["location"].startswith("/signin")
        assert any(v.startswith('dshub_session=""') or "dshub_session=;" in v or "Max-Age=0" in v
                   for k, v in r.headers.multi_items() if k == "set-cookie")


def _png(width: int = 2, height: int = 2) -> bytes:
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    raw = b"".join(b"\x00" + b"\xff\x00\x00" * width for _ in range(height))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def test_image_preview_and_the_owners_open_upload_session(site: Seeded) -> None:
    h = site.hub
    tok = h.create_user("erin")
    png = _png()
    publish(h.url, tok, "erin", "pics", {"img/red.png": png, "img/fake.png": b"<html><script>alert(1)</script>"},
            visibility=Visibility.public)
    with browser(h) as c:
        page = c.get("/datasets/erin/pics/file/v1/img/red.png")
        assert '<img class="image-preview" id="preview-image" alt="Preview of red.png"' in page.text
        img = c.get("/datasets/erin/pics/image/v1/img/red.png")
        assert img.status_code == 200 and img.content == png and img.headers["content-type"] == "image/png"
        assert "sandbox" in img.headers["content-security-policy"]
        # HTML named .png is never served as an image.
        assert c.get("/datasets/erin/pics/image/v1/img/fake.png").status_code == 415
        assert "Open upload session" not in c.get("/datasets/erin/pics").text
    with h.client(tok) as api:
        s = api.post("/datasets/erin/pics/sessions", json={})
        assert s.status_code in (200, 201), s.text
    try:
        with browser(h) as owner:
            assert sign_in(owner, tok).status_code == 303
            shown = owner.get("/datasets/erin/pics").text
            assert "Open upload session" in shown and s.json()["id"] in shown
        with browser(h) as visitor:
            assert "Open upload session" not in visitor.get("/datasets/erin/pics").text
    finally:
        with h.client(tok) as api:
            assert api.delete(f"/sessions/{s.json()['id']}").status_code == 204
