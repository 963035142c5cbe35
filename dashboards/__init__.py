"""What the users see: the monthly report (report.py; reporting/ for its formats and its mail), the
Grafana dashboards (grafana/) and the breach alerts (alerting/). The KPI formulas are written once per language:
dashboards/kpi_sql.py (the report and the ClickHouse panels), dashboards/kpi_promql.py (the live
wall and the alert rules). This layer reads stream_jobs, ingest and schemas, never availability.
"""
