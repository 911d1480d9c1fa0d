"""The STS credential broker: AWS S3 (or an S3 service with STS, e.g. MinIO) via AssumeRole.

Each grant gets temporary credentials from ``sts:AssumeRole`` on ``role_arn`` with an
**inline session policy** (:func:`session_policy`) that allows only the grant's prefix.
The effective rights are the *intersection* of the role's own policies and the session
policy, so the role may be broad (the whole bucket) and each session is still narrow.

Where each guarantee comes from:

* prefix scope and read-only: the session policy, enforced by AWS (and MinIO). moto, used
  in the tests, does NOT enforce session policies, ``s3:prefix`` conditions or expiry; the
  tests therefore unit-test the policy the hub sends and show enforcement with a role whose
  own policy is prefix-scoped.
* expiry: ``DurationSeconds`` (at least 900 s, at most 43,200 s and the role's
  MaxSessionDuration), never beyond the grant's ``expires_at`` except that AWS cannot mint
  credentials shorter than 900 s: a grant with less than 15 minutes left gets 900-second
  credentials whose reported ``expiry`` is the grant's deadline (clients refresh by then;
  the hub refuses refreshes past it).
* **revocation: not possible per session.** STS credentials stay valid until they expire;
  :meth:`StsBroker.revoke` is a documented no-op. The hub compensates by refusing further
  refreshes of a revoked grant and by keeping ``duration_s`` short. (Incident response on
  real AWS: a role policy denying ``aws:TokenIssueTime`` before now kills *every* session
  of the role, the only "revoke" AWS offers.)
"""

from __future__ import annotations

import re
from datetime import datetime, timezone
from typing import Any

from dshub.hub.brokers.base import GrantSpec, StorageAccess
from dshub.hub.brokers.rcd import BrokerError
from dshub.models import Access, Credentials, Location

__all__ = ["StsBroker", "session_policy", "BrokerError"]

MIN_DURATION_S = 900  # AWS minimum for AssumeRole
MAX_DURATION_S = 43_200  # AWS maximum (the role's MaxSessionDuration may be lower)

# Characters that mean something inside an IAM policy resource or condition value:
# '*' and '?' are wildcards, '${' starts a policy variable. Any of them in a bucket or
# prefix could widen the grant beyond the prefix, so they are refused, not escaped.
_POLICY_META = re.compile(r"[*?$\x00-\x1f]")
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")

# DeleteObject: a resumed upload deletes stray objects of its own session (inside the
# prefix only; the hub itself deletes committed data, never a grant).
WRITE_OBJECT_ACTIONS = [
    "s3:PutObject", "s3:GetObject", "s3:DeleteObject", "s3:AbortMultipartUpload", "s3:ListMultipartUploadParts"
]
WRITE_BUCKET_ACTIONS = ["s3:ListBucket", "s3:ListBucketMultipartUploads"]
READ_OBJECT_ACTIONS = ["s3:GetObject"]
READ_BUCKET_ACTIONS = ["s3:ListBucket"]


def _check_scope(bucket: str, prefix: str) -> None:
    if not _BUCKET.match(bucket):
        raise BrokerError("invalid bucket name for a session policy")
    if not prefix.endswith("/") or prefix.startswith("/") or _POLICY_META.search(prefix):
        raise BrokerError("grant prefix must be relative, end with '/' and contain no * ? $ or control chars")
    if any(part in ("", ".", "..") for part in prefix[:-1].split("/")):
        raise BrokerError("grant prefix has an empty, '.' or '..' component")


def session_policy(bucket: str, prefix: str, access: Access) -> dict[str, Any]:
    """The inline session policy for one grant: objects under ``prefix`` and nothing else.

    write: put/get objects and manage multipart uploads under ``arn:aws:s3:::bucket/prefix*``;
    list the bucket (objects and multipart uploads) only with ``s3:prefix`` under the prefix.
    write also deletes objects under the prefix (the client removes strays of its own
    session). read: get objects under the prefix, list only under the prefix. No bucket
    administration, no other bucket. Raises BrokerError for a prefix that could widen it.
    """
    _check_scope(bucket, prefix)
    if access == Access.write:
        object_actions, bucket_actions = WRITE_OBJECT_ACTIONS, WRITE_BUCKET_ACTIONS
    elif access == Access.read:
        object_actions, bucket_actions = READ_OBJECT_ACTIONS, READ_BUCKET_ACTIONS
    else:  # pragma: no cover - Access has two members
        raise BrokerError(f"unknown access {access!r}")
    statements: list[dict[str, Any]] = []
    if access == Access.write:
        # rclone's multipart cleanup (`rclone cleanup` of the session folder, run by the
        # client) lists uploads with the folder's prefix *without* the trailing '/': the
        # exact string only, which matches this session's keys and those of versions whose
        # number starts with the same digits (v1 → v10) of the same dataset — key names,
        # never content. A recording test against moto pins it.
        statements.append({
            "Sid": "ListUploadsOfTheFolder",
            "Effect": "Allow",
            "Action": ["s3:ListBucketMultipartUploads"],
            "Resource": [f"arn:aws:s3:::{bucket}"],
            "Condition": {"StringEquals": {"s3:prefix": [prefix[:-1]]}},
        })
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "ObjectsInPrefix",
                "Effect": "Allow",
                "Action": list(object_actions),
                "Resource": [f"arn:aws:s3:::{bucket}/{prefix}*"],
            },
            {
                "Sid": "ListOnlyThePrefix",
                "Effect": "Allow",
                "Action": list(bucket_actions),
                "Resource": [f"arn:aws:s3:::{bucket}"],
                "Condition": {"StringLike": {"s3:prefix": [f"{prefix}*"]}},
            },
            *statements,
        ],
    }


def _session_name(grant_id: str) -> str:
    # RoleSessionName: 2-64 chars of [\w+=,.@-]; it shows up in CloudTrail, so keep the
    # grant id recognisable.
    safe = re.sub(r"[^\w+=,.@-]", "", grant_id)[:32] or "grant"
    return f"dshub-{safe}"


class StsBroker:
    """Prefix-scoped credentials from STS AssumeRole with an inline session policy."""

    name = "sts"

    def __init__(
        self,
        *,
        bucket: str,
        region: str,
        role_arn: str,
        s3_endpoint_url: str | None,
        sts_endpoint_url: str | None,
        access_key_id: str | None,
        secret_access_key: str | None,
        session_token: str | None = None,
        duration_s: int = 3600,
        advertise_endpoint: str | None = None,
    ) -> None:
        self.bucket = bucket
        self.region = region
        self.role_arn = role_arn
        self.s3_endpoint_url = s3_endpoint_url
        self.sts_endpoint_url = sts_endpoint_url
        self._access_key_id = access_key_id
        self._secret_access_key = secret_access_key
        self._session_token = session_token
        self.duration_s = duration_s
        self.advertise_endpoint = advertise_endpoint
        self._sts: Any = None

    def __repr__(self) -> str:
        return f"StsBroker(bucket={self.bucket!r}, role_arn={self.role_arn!r}, sts={self.sts_endpoint_url!r})"

    # --- Broker protocol ----------------------------------------------------------------

    def start(self) -> None:
        """Create the STS client (nothing to supervise)."""
        self._client()

    def stop(self) -> None:
        """Nothing runs; drop the client."""
        self._sts = None

    def restore(self, grants: list[GrantSpec]) -> None:
        """Nothing to re-arm: issued STS credentials live on by themselves until they expire."""

    def grant(self, spec: GrantSpec) -> tuple[Location, Credentials]:
        """AssumeRole with the grant's session policy; duration bounded by ``spec.expires_at``."""
        return self._assume(spec)

    def refresh(self, spec: GrantSpec) -> tuple[Location, Credentials]:
        """A new AssumeRole (new keys, same scope); earlier keys stay valid until they expire."""
        return self._assume(spec)

    def revoke(self, grant_id: str, *, lapsed_by: datetime | None = None) -> None:
        """No-op: STS credentials cannot be revoked one by one (see the module docstring).

        They stay valid until their expiry; the hub must refuse further refreshes of the
        grant and keep ``duration_s`` short.
        """

    def advertised_location(self, grant_id: str, stored: Location) -> Location:
        """STS locations never move."""
        return stored

    def storage(self) -> StorageAccess:
        """The hub's own identity: explicit keys, or None for boto3's default chain."""
        return StorageAccess(
            endpoint=self.s3_endpoint_url,
            bucket=self.bucket,
            region=self.region,
            access_key_id=self._access_key_id,
            secret_access_key=self._secret_access_key,
            session_token=self._session_token,
        )

    # --- internals ----------------------------------------------------------------------

    def _client(self) -> Any:
        if self._sts is None:
            import boto3  # heavy; only the sts broker needs it

            kwargs: dict[str, Any] = {"region_name": self.region}
            if self.sts_endpoint_url:
                kwargs["endpoint_url"] = self.sts_endpoint_url
            if self._access_key_id and self._secret_access_key:
                kwargs.update(
                    aws_access_key_id=self._access_key_id,
                    aws_secret_access_key=self._secret_access_key,
                    aws_session_token=self._session_token,
                )
            self._sts = boto3.session.Session().client("sts", **kwargs)
        return self._sts

    def duration_for(self, spec: GrantSpec, now: datetime | None = None) -> int:
        """DurationSeconds for AssumeRole: clamp(duration_s, 900, 43200), not beyond expiry.

        Raises BrokerError if the grant has already expired. Below 900 s left, 900 (AWS's
        minimum) is used; the reported expiry is still the grant's deadline.
        """
        now = now or datetime.now(timezone.utc)
        remaining = int((spec.expires_at - now).total_seconds())
        if remaining <= 0:
            raise BrokerError("grant has expired")
        wanted = max(MIN_DURATION_S, min(self.duration_s, MAX_DURATION_S))
        return max(MIN_DURATION_S, min(wanted, remaining))

    def location(self, prefix: str) -> Location:
        """Where a grant's client finds the bytes."""
        endpoint = self.advertise_endpoint or self.s3_endpoint_url
        return Location(
            endpoint=endpoint,
            bucket=self.bucket,
            prefix=prefix,
            region=self.region,
            provider="AWS" if endpoint is None else "Other",
        )

    def _assume(self, spec: GrantSpec) -> tuple[Location, Credentials]:
        import json

        from botocore.exceptions import BotoCoreError, ClientError

        policy = json.dumps(session_policy(self.bucket, spec.prefix, spec.access), separators=(",", ":"))
        duration = self.duration_for(spec)
        try:
            out = self._client().assume_role(
                RoleArn=self.role_arn,
                RoleSessionName=_session_name(spec.grant_id),
                DurationSeconds=duration,
                Policy=policy,
            )
        except ClientError as exc:
            err = exc.response.get("Error", {})
            # Code and message only: botocore's str(exc) is fine too, but be explicit.
            raise BrokerError(f"AssumeRole failed: {err.get('Code', '?')}: {err.get('Message', '')}") from None
        except BotoCoreError as exc:
            raise BrokerError(f"AssumeRole failed: {type(exc).__name__}") from None
        c = out["Credentials"]
        expiration = c["Expiration"]
        if isinstance(expiration, datetime) and expiration.tzinfo is None:
            expiration = expiration.replace(tzinfo=timezone.utc)
        expiry = min(expiration, spec.expires_at) if isinstance(expiration, datetime) else spec.expires_at
        creds = Credentials(
            access_key_id=c["AccessKeyId"],
            secret_access_key=c["SecretAccessKey"],
            session_token=c.get("SessionToken"),
            expiry=expiry,
        )
        return self.location(spec.prefix), creds

