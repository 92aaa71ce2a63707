"""A clinic's webhook is an http(s) URL with a host and no credentials in it, and its secret
is long enough to be worth signing with; each refusal says what is wrong."""

from __future__ import annotations

import pytest

from labinterp.services.errors import InvalidInput
from labinterp.services.webhooks import check_secret, check_url


@pytest.mark.parametrize(
    "url",
    [
        "https://clinic.example.org/hooks/labinterp",
        "http://127.0.0.1:8080/alerts",
        "HTTPS://clinic.example.org",
        "https://[2001:db8::1]:8443/x?token=abc",
    ],
)
def test_http_and_https_urls_with_a_host_are_accepted(url):
    assert check_url(f"  {url}\n") == url


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("", "needs a URL"),
        ("clinic.example.org/hooks", "https://"),
        ("ftp://clinic.example.org/hooks", "https://"),
        ("javascript:alert(1)", "https://"),
        ("https:///hooks", "no host"),
        ("https://user:secret@clinic.example.org/", "password"),
        ("https://clinic.example.org:99999/", "port"),
        ("https://clinic.example.org/a b", "space"),
        ("https://clinic.example.org/" + "a" * 2000, "longer than 2000"),
    ],
)
def test_anything_else_is_refused_saying_why(url, says):
    with pytest.raises(InvalidInput) as refused:
        check_url(url)
    assert list(refused.value.errors) == ["url"]
    assert says in refused.value.errors["url"][0]


def test_a_secret_is_trimmed_and_must_be_at_least_16_characters():
    assert check_secret("0123456789abcdef\n") == "0123456789abcdef"
    for weak, says in (("", "empty"), ("  \n", "empty"), ("0123456789abcde", "at least 16")):
        with pytest.raises(InvalidInput) as refused:
            check_secret(weak)
        assert says in refused.value.errors["secret"][0]
