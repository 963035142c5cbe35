"""Telephony and function-mailbox availability analytics (application shell)."""

__version__ = "0.1.0"
