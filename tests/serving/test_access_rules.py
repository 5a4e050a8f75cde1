"""The pure rules behind the gateway's access checks: key lines, feedback tokens, per-key quotas."""

from __future__ import annotations

import hashlib
import logging
import os
import stat
from pathlib import Path

import pytest

from bertloop.core.config import ConfigError, PlatformConfig
from bertloop.core.secrets import gateway_secret
from serving import provenance
from serving.auth import KeyFileError, KeyRing, keys_required
from serving.quotas import KeyQuotas

SECRET = b"s" * 32


def test_key_lines_by_value_or_digest_with_scopes_and_names() -> None:
    digest = hashlib.sha256(b"prometheus-key-123456").hexdigest()
    ring = KeyRing.parse(
        ["# comment", "", "alice-key-0123456789 predict,feedback alice", f"sha256:{digest} metrics"]
    )
    alice = ring.authenticate("alice-key-0123456789")
    assert alice is not None and alice.identity == "alice" and alice.scopes == {"predict", "feedback"}
    metrics = ring.authenticate("prometheus-key-123456")
    assert metrics is not None and metrics.scopes == {"metrics"} and metrics.identity == f"key-{digest[:12]}"
    assert ring.authenticate("alice-key-012345678") is None and len(ring) == 2


@pytest.mark.parametrize(
    ("line", "words"),
    [
        ("short predict", "shorter than 16"),
        ("alice-key-0123456789 admin", "unknown scopes ['admin']"),
        ("sha256:abc predict", "64 hex digits"),
        ("alice-key-0123456789", "has 1 fields"),
    ],
)
def test_a_bad_key_line_is_named_without_echoing_the_key(line: str, words: str) -> None:
    with pytest.raises(KeyFileError, match=r"key line 1") as error:
        KeyRing.parse([line])
    assert words in str(error.value) and "alice-key" not in str(error.value)


@pytest.mark.parametrize(
    ("mode", "host", "keys", "required"),
    [
        ("auto", "127.0.0.1", 0, False),
        ("auto", "localhost", 1, True),
        ("auto", "0.0.0.0", 0, True),
        ("auto", "::1", 0, False),
        ("off", "0.0.0.0", 3, False),
        ("required", "127.0.0.1", 0, True),
    ],
)
def test_when_keys_are_required(mode: str, host: str, keys: int, required: bool) -> None:
    assert keys_required(mode, host, keys) is required  # type: ignore[arg-type]


def test_a_feedback_token_binds_request_caller_and_time() -> None:
    token = provenance.issue(SECRET, "r1", "alice", 1000.0)
    assert provenance.verify(SECRET, token, "r1", "alice", 1500.0, 3600).valid
    assert not provenance.verify(SECRET, token, "r1", "bob", 1500.0, 3600).valid
    assert not provenance.verify(SECRET, token, "r2", "alice", 1500.0, 3600).valid
    assert not provenance.verify(b"t" * 32, token, "r1", "alice", 1500.0, 3600).valid
    expired = provenance.verify(SECRET, token, "r1", "alice", 5000.0, 3600)
    assert not expired.valid and "expired" in expired.reason
    moved = token.replace("v1.1000.", "v1.4000.")  # a later issue time does not verify
    assert not provenance.verify(SECRET, moved, "r1", "alice", 4100.0, 3600).valid
    assert not provenance.verify(SECRET, "garbage", "r1", "alice", 1500.0, 3600).valid


def test_each_key_has_its_own_bucket_and_in_flight_count() -> None:
    quotas = KeyQuotas(rate_per_second=1.0, burst=2, max_concurrent=1)
    assert quotas.take("a", 0.0) == 0 and quotas.take("a", 0.0) == 0
    assert quotas.take("a", 0.0) == pytest.approx(1.0)
    assert quotas.take("b", 0.0) == 0  # a's spending costs b nothing
    assert quotas.take("a", 1.0) == 0  # refilled after a second
    assert quotas.enter("a") and not quotas.enter("a") and quotas.enter("b")
    quotas.leave("a")
    assert quotas.enter("a")
    assert KeyQuotas(0, 1, 5).take("a", 0.0) == 0  # 0: no rate limit


def test_the_secret_file_is_made_once_readable_by_its_owner(tmp_path: Path) -> None:
    config = PlatformConfig.model_validate(
        {"workspace": tmp_path, "data": {"labels": ["a", "b"], "golden_set": tmp_path / "g.csv"}}
    )
    first = gateway_secret(config, environ={})
    assert gateway_secret(config, environ={}) == first and len(first) >= 32
    assert stat.S_IMODE(os.stat(tmp_path / "gateway-secret").st_mode) == 0o600
    assert gateway_secret(config, environ={"BERTLOOP_GATEWAY_SECRET": "e" * 40}) == b"e" * 40
    with pytest.raises(ConfigError, match="at least 32"):
        gateway_secret(config, environ={"BERTLOOP_GATEWAY_SECRET": "short"})


@pytest.mark.parametrize(("host", "loud"), [("0.0.0.0", True), ("127.0.0.1", False)])
def test_keys_off_beyond_loopback_starts_with_a_loud_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, host: str, loud: bool
) -> None:
    from serving.access import build_access

    config = PlatformConfig.model_validate(
        {"workspace": tmp_path, "data": {"labels": ["a", "b"], "golden_set": tmp_path / "g.csv"},
         "serving": {"auth": "off"}}
    )  # fmt: skip
    with caplog.at_level(logging.WARNING, logger="serving.access"):
        access = build_access(config, host)
    assert not access.require_keys
    warned = [record.getMessage() for record in caplog.records if record.levelno == logging.WARNING]
    assert bool(warned) is loud
    if loud:
        assert "ANYONE" in warned[0] and host in warned[0]
