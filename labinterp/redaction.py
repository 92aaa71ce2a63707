"""Text fit for a log line: secrets in connection strings masked.

Exception messages from database and broker clients can carry the URL or DSN they were
given, password included (a DSN that did not parse, a redirect, a client's repr).
"""

from __future__ import annotations

import re

# scheme://user:password@host -> scheme://user:***@host
_URL_PASSWORD = re.compile(r"(?P<head>[a-zA-Z][a-zA-Z0-9+.-]*://[^:/@\s]*:)[^@\s]*@")
# password=secret in a libpq DSN or a query string
_KEY_PASSWORD = re.compile(r"(?P<head>\b(?:password|passwd|pwd)\s*=\s*)[^\s&;]+", re.IGNORECASE)


def mask_passwords(text: str) -> str:
    """``text`` with the password of every URL and every ``password=`` replaced by ***."""
    text = _URL_PASSWORD.sub(r"\g<head>***@", text)
    return _KEY_PASSWORD.sub(r"\g<head>***", text)
