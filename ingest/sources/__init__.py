"""Adapters for real sources (Asterisk queue_log, call-record CSV exports, mail archives): each
turns its input into canonical events before the ingest boundary (docs/sources.md)."""
