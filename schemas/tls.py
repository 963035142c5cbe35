"""The one TLS rule of every client this project runs (IMAP, the report's SMTP relay): the
server's certificate and host name verified, TLS 1.2 or newer."""

from __future__ import annotations

import ssl
from pathlib import Path


def verified_context(ca_file: str | Path | None = None) -> ssl.SSLContext:
    """The system's CAs, or only `ca_file` (a private CA). Raises OSError or ssl.SSLError for a
    CA file that cannot be used; each caller says so in its own words."""
    context = ssl.create_default_context(cafile=str(ca_file) if ca_file is not None else None)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context
