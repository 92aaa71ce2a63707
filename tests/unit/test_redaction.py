"""Log text never carries a connection password."""

from __future__ import annotations

import pytest

from labinterp.redaction import mask_passwords


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        (
            "cannot connect to postgresql+psycopg://app:s3cr%40t@db:5432/li",
            "cannot connect to postgresql+psycopg://app:***@db:5432/li",
        ),
        ("redis://:hunter2@cache:6379/0 refused", "redis://:***@cache:6379/0 refused"),
        ("host=db user=app password=hunter2 dbname=li", "host=db user=app password=*** dbname=li"),
        ("redis://cache:6379/0 refused", "redis://cache:6379/0 refused"),  # nothing to mask
    ],
)
def test_passwords_in_urls_and_dsns_are_masked(text: str, shown: str) -> None:
    assert mask_passwords(text) == shown
