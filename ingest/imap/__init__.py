"""A function mailbox over IMAP -> raw mail events (docs/imap.md)."""
