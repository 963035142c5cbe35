"""A deterministic simulator of the centre's CallGuide and mailbox traffic (docs/simulator.md)."""

from ingest.simulator.traffic import simulate, write_jsonl

__all__ = ["simulate", "write_jsonl"]
