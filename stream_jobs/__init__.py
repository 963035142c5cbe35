"""Canonical events -> call facts and mail cases: the pure core, the ClickHouse store, the
replay and the stream worker."""
