"""The breach alerts: the rules, each defined once (rules), their message templates (templates),
rendered for Prometheus (prometheus) and Grafana (grafana), and the Alertmanager configuration
(alertmanager); files writes what is committed under deploy/."""
