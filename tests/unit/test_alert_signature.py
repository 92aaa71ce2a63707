"""Critical-value alerts are signed as Stripe and GitHub sign webhooks: HMAC-SHA256 under the
clinic's secret over "<unix seconds>.<body>", sent as `t=…,v1=…`."""

from __future__ import annotations

import hashlib
import hmac
import re
import time
from pathlib import Path
from typing import Any

from labinterp.webhook_signature import signature_header, verify

SECRET = "whsec-unit-0123456789abcdef"
BODY = b'{"id":"a1","type":"critical_value","panel_id":"p1"}'
T = 1_796_284_800


def test_the_header_is_the_timestamp_and_the_hmac_of_timestamp_dot_body():
    header = signature_header(SECRET, T, BODY)
    expected = hmac.new(SECRET.encode(), f"{T}.".encode() + BODY, hashlib.sha256).hexdigest()
    assert header == f"t={T},v1={expected}"


def test_a_receiver_verifies_the_body_it_got_with_the_secret_it_holds():
    header = signature_header(SECRET, T, BODY)
    assert verify(SECRET, header, BODY, now=T + 10)
    assert not verify("another-secret-0123456789", header, BODY, now=T + 10)
    assert not verify(SECRET, header, BODY.replace(b"p1", b"p2"), now=T + 10)  # changed body


def test_a_replayed_request_with_an_old_timestamp_is_refused():
    header = signature_header(SECRET, T, BODY)
    assert verify(SECRET, header, BODY, now=T + 299)
    assert not verify(SECRET, header, BODY, now=T + 301)
    # the timestamp is signed: moving it forward breaks the signature
    moved = header.replace(f"t={T}", f"t={T + 600}")
    assert not verify(SECRET, moved, BODY, now=T + 600)


def test_any_v1_may_match_and_a_malformed_header_never_does():
    good = signature_header(SECRET, T, BODY).split(",")[1]
    assert verify(SECRET, f"t={T},v1=00ff,{good}", BODY, now=T)
    for header in ("", "v1=abc", f"t={T}", f"t=soon,{good}", "garbage"):
        assert not verify(SECRET, header, BODY, now=T)


def test_the_readmes_receiver_snippet_verifies_what_labinterp_signs():
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", readme, flags=re.DOTALL)
    [snippet] = [b for b in blocks if "def verify(secret: bytes" in b]
    namespace: dict[str, Any] = {}
    exec(snippet, namespace)  # noqa: S102 - our own README's example
    readme_verify = namespace["verify"]
    now = int(time.time())
    header = signature_header(SECRET, now, BODY)
    assert readme_verify(SECRET.encode(), header, BODY)
    assert not readme_verify(b"another-secret-0123456789", header, BODY)
    assert not readme_verify(SECRET.encode(), header, BODY + b" ")
    stale = signature_header(SECRET, now - 3600, BODY)
    assert not readme_verify(SECRET.encode(), stale, BODY)
