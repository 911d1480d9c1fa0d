"""API tokens: ``dshub_<publicid>_<secret>``.

The database keeps the public id (to find the row) and sha256 of the secret (to check
it), never the secret itself; comparison is constant-time.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from dshub.hub.db import GrantRow, TokenRow, UserRow, utcnow

TOKEN_PREFIX = "dshub_"
_TOKEN_RE = re.compile(r"^dshub_([0-9a-f]{16})_([A-Za-z0-9_-]{20,200})$")
_PUBLIC_ID_RE = re.compile(r"^[0-9a-f]{16}$")


@dataclass(frozen=True)
class ParsedToken:
    public_id: str
    secret: str = ""

    def __repr__(self) -> str:  # never show the secret
        return f"ParsedToken(public_id={self.public_id!r}, <hidden>)"


def hash_secret(secret: str) -> str:
    """sha256 hex of a token secret."""
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def parse_token(token: str) -> ParsedToken | None:
    """Split a full token into public id and secret; None when it is not one."""
    m = _TOKEN_RE.fullmatch(token.strip())
    if not m:
        return None
    return ParsedToken(public_id=m.group(1), secret=m.group(2))


def parse_token_or_public_id(text: str) -> str | None:
    """The public id of a full token or of a bare public id; None if neither."""
    parsed = parse_token(text)
    if parsed:
        return parsed.public_id
    text = text.strip()
    return text if _PUBLIC_ID_RE.fullmatch(text) else None


def create_token(db: Session, user: UserRow) -> str:
    """Create a token for ``user`` (flushes the row) and return the full token string once."""
    public_id = secrets.token_hex(8)
    secret = secrets.token_urlsafe(32)
    db.add(TokenRow(public_id=public_id, secret_hash=hash_secret(secret), user_id=user.id))
    db.flush()
    return f"{TOKEN_PREFIX}{public_id}_{secret}"


def revoke_token(db: Session, public_id: str) -> bool:
    """Mark the token and the grants minted with it revoked; False if there is no such live token.

    The running hub's sweeper stops the endpoints of grants revoked here (this may run in
    another process: ``dshub hub revoke-token``).
    """
    row = db.scalar(select(TokenRow).where(TokenRow.public_id == public_id))
    if row is None or row.revoked_at is not None:
        return False
    now = utcnow()
    row.revoked_at = now
    db.execute(
        update(GrantRow).where(GrantRow.token_id == row.id, GrantRow.revoked_at.is_(None)).values(revoked_at=now)
    )
    return True


def authenticate(db: Session, token: str, *, touch_after_s: float = 60.0) -> UserRow | None:
    """The user a token belongs to, or None for a malformed, unknown or revoked token.

    ``last_used_at`` is written at most once a minute so reads do not turn into writes.
    """
    found = authenticate_token(db, token, touch_after_s=touch_after_s)
    return found[0] if found is not None else None


def authenticate_token(db: Session, token: str, *, touch_after_s: float = 60.0) -> tuple[UserRow, int] | None:
    """Like :func:`authenticate`, with the token's row id (grants remember it)."""
    parsed = parse_token(token)
    if parsed is None:
        return None
    row = db.scalar(select(TokenRow).where(TokenRow.public_id == parsed.public_id))
    # Compare even when the row is missing so timing does not reveal which ids exist.
    expected = row.secret_hash if row is not None else "0" * 64
    ok = hmac.compare_digest(expected, hash_secret(parsed.secret))
    if row is None or not ok or row.revoked_at is not None:
        return None
    now: datetime = utcnow()
    if row.last_used_at is None or (now - row.last_used_at).total_seconds() > touch_after_s:
        row.last_used_at = now
        db.commit()
    user = db.get(UserRow, row.user_id)
    return (user, row.id) if user is not None else None
