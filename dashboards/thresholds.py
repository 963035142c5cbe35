"""The wall's colour rules, once for Grafana's tiles (dashboards/grafana) and the terminal wall
(availability/cli/wall.py): no Grafana SDK here, so the terminal need not load it."""

from __future__ import annotations

AMBER_MARGIN = 0.05  # amber: at or above target but within 5 percentage points of it
WAIT_AMBER_SHARE = 0.5  # the longest wait turns amber at half the service-level time, red at it


def target_bounds(target: float) -> tuple[float, float]:
    """(red below, amber below) for a share against its target, rounded as Grafana stores its
    thresholds: 0.8 + 0.05 is 0.8500000000000001, and exactly 85 % must be green."""
    return round(target, 4), round(target + AMBER_MARGIN, 4)
