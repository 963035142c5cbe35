"""The Grafana dashboards, generated from code and the service agreements (files: the committed
JSON; common: the shared building blocks; wall, history, mailbox: the three dashboards) and their
provisioning over Grafana's HTTP API (provision)."""
