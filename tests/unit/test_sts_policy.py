"""The session policy the STS broker sends: real AWS enforces it, moto does not, so it is
checked here statement by statement."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest

from dshub.hub.brokers.base import GrantSpec
from dshub.hub.brokers.sts import BrokerError, StsBroker, _session_name, session_policy
from dshub.models import Access

PREFIX = "datasets/0b6f3c1e-9a1d-4f7e-8c55-3a1f2e4d5c6b/v3/"


def _actions(policy: dict) -> set[str]:
    return {a for st in policy["Statement"] for a in st["Action"]}


def _resources(policy: dict) -> set[str]:
    return {r for st in policy["Statement"] for r in st["Resource"]}


@pytest.mark.parametrize("access", [Access.read, Access.write])
def test_every_statement_is_allow_and_scoped(access: Access) -> None:
    p = session_policy("dshub", PREFIX, access)
    assert p["Version"] == "2012-10-17"
    for st in p["Statement"]:
        assert st["Effect"] == "Allow"
        assert "NotAction" not in st and "NotResource" not in st
        for a in st["Action"]:
            assert a.startswith("s3:") and "*" not in a
    assert _resources(p) == {f"arn:aws:s3:::dshub/{PREFIX}*", "arn:aws:s3:::dshub"}
    # The only wildcard in the whole document is the one right after the prefix's '/'.
    text = json.dumps(p)
    assert text.count("*") == 2 and text.count(f"{PREFIX}*") == 2


def test_write_actions() -> None:
    p = session_policy("dshub", PREFIX, Access.write)
    obj, lst, uploads = p["Statement"]
    assert uploads["Action"] == ["s3:ListBucketMultipartUploads"]
    assert uploads["Condition"] == {"StringEquals": {"s3:prefix": [PREFIX[:-1]]}}
    assert set(obj["Action"]) == {"s3:PutObject", "s3:GetObject", "s3:DeleteObject", "s3:AbortMultipartUpload",
                                  "s3:ListMultipartUploadParts"}
    assert obj["Resource"] == [f"arn:aws:s3:::dshub/{PREFIX}*"]
    assert set(lst["Action"]) == {"s3:ListBucket", "s3:ListBucketMultipartUploads"}
    assert lst["Resource"] == ["arn:aws:s3:::dshub"]
    assert lst["Condition"] == {"StringLike": {"s3:prefix": [f"{PREFIX}*"]}}


def test_read_actions_have_no_write_or_delete() -> None:
    p = session_policy("dshub", PREFIX, Access.read)
    assert _actions(p) == {"s3:GetObject", "s3:ListBucket"}
    for forbidden in ("s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload", "s3:PutObjectAcl"):
        assert forbidden not in _actions(p)
    lst = [st for st in p["Statement"] if "s3:ListBucket" in st["Action"]][0]
    assert lst["Condition"] == {"StringLike": {"s3:prefix": [f"{PREFIX}*"]}}


def test_write_deletes_only_objects_in_its_prefix_and_has_no_admin() -> None:
    p = session_policy("dshub", PREFIX, Access.write)
    acts = _actions(p)
    assert not {a for a in acts if "Acl" in a or "Policy" in a or "Bucket" in a
                and a not in ("s3:ListBucket", "s3:ListBucketMultipartUploads")}
    deleting = [st for st in p["Statement"] if any("Delete" in a for a in st["Action"])]
    assert [a for st in deleting for a in st["Action"] if "Delete" in a] == ["s3:DeleteObject"]
    assert deleting[0]["Resource"] == [f"arn:aws:s3:::dshub/{PREFIX}*"]


@pytest.mark.parametrize(
    "prefix",
    ["datasets/x/v1", "/datasets/x/v1/", "datasets/*/", "datasets/x?/", "datasets/${aws:username}/",
     "datasets//v1/", "datasets/../v1/", "./", "", "/", "datasets/x\n/"],
)
def test_prefixes_that_could_widen_the_scope_are_refused(prefix: str) -> None:
    with pytest.raises(BrokerError):
        session_policy("dshub", prefix, Access.write)


@pytest.mark.parametrize("bucket", ["", "a", "dshub*", "dshub/x", "Dshub", "dshub?"])
def test_bad_buckets_are_refused(bucket: str) -> None:
    with pytest.raises(BrokerError):
        session_policy(bucket, PREFIX, Access.read)


def test_policy_fits_aws_size_limit() -> None:
    # AWS limits the packed session policy to 2,048 characters.
    long_prefix = "datasets/" + "a" * 200 + "/v123456/"
    p = session_policy("a-bucket-name-that-is-rather-long-for-testing", long_prefix, Access.write)
    assert len(json.dumps(p, separators=(",", ":"))) < 2048


def _broker(duration_s: int = 3600) -> StsBroker:
    return StsBroker(bucket="dshub", region="us-east-1", role_arn="arn:aws:iam::123456789012:role/r",
                     s3_endpoint_url=None, sts_endpoint_url=None, access_key_id=None,
                     secret_access_key=None, duration_s=duration_s)


def test_duration_is_clamped_and_bounded_by_expiry() -> None:
    now = datetime(2026, 1, 1, tzinfo=timezone.utc)

    def spec(sec: float) -> GrantSpec:
        return GrantSpec("g", PREFIX, Access.write, now + timedelta(seconds=sec))

    assert _broker(3600).duration_for(spec(86400), now) == 3600
    assert _broker(60).duration_for(spec(86400), now) == 900
    assert _broker(100_000).duration_for(spec(86400), now) == 43_200
    assert _broker(3600).duration_for(spec(1800), now) == 1800
    assert _broker(3600).duration_for(spec(300), now) == 900  # AWS minimum
    with pytest.raises(BrokerError):
        _broker().duration_for(spec(-1), now)


def test_location_provider_and_session_name() -> None:
    b = _broker()
    loc = b.location(PREFIX)
    assert loc.endpoint is None and loc.provider == "AWS" and loc.prefix == PREFIX
    b2 = StsBroker(bucket="dshub", region="eu-west-1", role_arn="arn:x", s3_endpoint_url="http://s3:9000",
                   sts_endpoint_url="http://s3:9000", access_key_id="a", secret_access_key="b",
                   advertise_endpoint="https://s3.example.org")
    assert b2.location(PREFIX).endpoint == "https://s3.example.org" and b2.location(PREFIX).provider == "Other"
    assert "secret" not in repr(b2) and "'b'" not in repr(b2)
    name = _session_name("0b6f3c1e-9a1d-4f7e-8c55-3a1f2e4d5c6b/../x y")
    assert name.startswith("dshub-") and len(name) <= 64 and " " not in name and "/" not in name
