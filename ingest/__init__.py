"""Sources -> the ingest boundary -> Kafka: the webhook, IMAP, JSONL files and the simulator (docs/architecture.md)."""
