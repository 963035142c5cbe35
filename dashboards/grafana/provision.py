"""Provision a Grafana over its HTTP API (grafana-client), idempotently, by uid.

`provision(url, token)` creates or updates:

1. the datasources the dashboards refer to: Prometheus (uid `prometheus`) and ClickHouse
   (uid `clickhouse`, plugin `grafana-clickhouse-datasource`, which must be installed);
2. the folder (uid `availability`, title "Tillgänglighet" unless told otherwise);
3. the three dashboards of dashboards/grafana/files.py, overwritten by uid;
4. if deploy/grafana/provisioning/alerting holds YAML files (Grafana's file-provisioning format):
   their notification templates, contact points, mute timings, notification policy tree and
   alert-rule groups, translated to the alerting provisioning API.

Running it again changes nothing but versions: every object is found by its uid and updated.
The same objects can instead be provisioned from files: deploy/grafana/provisioning/.

A Grafana that cannot be reached (refused, unknown host, timeout, TLS) is a ProvisionError
naming the URL without its user and password; what Grafana answers with an error status stays
grafana-client's GrafanaException (the command turns both into one line, `grafana_error`).
"""

from __future__ import annotations

import os
import re
import unicodedata
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit, urlunsplit

import yaml
from grafana_client.api import GrafanaApi
from grafana_client.client import GrafanaClientError, GrafanaException, GrafanaTimeoutError

from dashboards.grafana.common import CLICKHOUSE_TYPE, CLICKHOUSE_UID, PROMETHEUS_UID
from dashboards.grafana.files import generate
from schemas.agreements import Agreements
from schemas.errors import AvailabilityError

DEFAULT_FOLDER_TITLE = "Tillgänglighet"
DEFAULT_FOLDER_UID = "availability"
ALERTING_DIR = Path(__file__).resolve().parents[2] / "deploy" / "grafana" / "provisioning" / "alerting"
MESSAGE = "availability: provisioned by dashboards/grafana/provision.py"

Outcome = Literal["created", "updated", "unchanged"]


class ProvisionError(AvailabilityError):
    """Grafana cannot be reached, or refused the provisioning; the message is one line."""


@dataclass(frozen=True)
class Change:
    kind: str  # datasource, folder, dashboard, template, contact-point, mute-timing, policies, alert-rule, rule-group
    uid: str
    outcome: Outcome


def datasources(
    *,
    prometheus_url: str,
    clickhouse_host: str,
    clickhouse_port: int,
    clickhouse_database: str,
    clickhouse_username: str = "default",
    clickhouse_password: str | None = None,
    clickhouse_protocol: Literal["native", "http"] = "native",
    clickhouse_secure: bool = False,
) -> list[dict[str, Any]]:
    """The datasource payloads (Grafana's /api/datasources shape)."""
    clickhouse: dict[str, Any] = {
        "uid": CLICKHOUSE_UID,
        "name": "ClickHouse",
        "type": CLICKHOUSE_TYPE,
        "access": "proxy",
        "isDefault": False,
        "jsonData": {
            "host": clickhouse_host,
            "port": clickhouse_port,
            "protocol": clickhouse_protocol,
            "secure": clickhouse_secure,
            "username": clickhouse_username,
            "defaultDatabase": clickhouse_database,
        },
    }
    if clickhouse_password is not None:  # omitted: an update keeps the stored password
        clickhouse["secureJsonData"] = {"password": clickhouse_password}
    prometheus = {
        "uid": PROMETHEUS_UID,
        "name": "Prometheus",
        "type": "prometheus",
        "access": "proxy",
        "url": prometheus_url,
        "isDefault": True,
        "jsonData": {"httpMethod": "POST", "timeInterval": "15s"},
    }
    return [prometheus, clickhouse]


def provision(
    url: str,
    token: str | tuple[str, str],
    *,
    folder_title: str = DEFAULT_FOLDER_TITLE,
    folder_uid: str = DEFAULT_FOLDER_UID,
    prometheus_url: str = "http://localhost:9090",
    clickhouse_host: str = "localhost",
    clickhouse_port: int = 9000,
    clickhouse_database: str = "availability",
    clickhouse_username: str = "default",
    clickhouse_password: str | None = None,
    clickhouse_protocol: Literal["native", "http"] = "native",
    clickhouse_secure: bool = False,
    agreements: Agreements | None = None,
    alerting_dir: Path | None = ALERTING_DIR,
    timeout: float = 30.0,
) -> list[Change]:
    """Create or update everything in the Grafana at `url` (a service-account token, or a
    (user, password) pair). Returns what was created or updated, in order. An unreachable
    Grafana raises ProvisionError."""
    # Local files are read first: an error reading them is not a Grafana that cannot be reached.
    documents = _alerting_documents(alerting_dir) if alerting_dir is not None else []
    dashboards = generate(agreements).values()
    with _reaching(url, timeout):
        api = _connect(url, token, timeout)
        changes: list[Change] = []
        for payload in datasources(
            prometheus_url=prometheus_url,
            clickhouse_host=clickhouse_host,
            clickhouse_port=clickhouse_port,
            clickhouse_database=clickhouse_database,
            clickhouse_username=clickhouse_username,
            clickhouse_password=clickhouse_password,
            clickhouse_protocol=clickhouse_protocol,
            clickhouse_secure=clickhouse_secure,
        ):
            changes.append(_datasource(api, payload))
        folders = _Folders(api, changes)
        folders.ensure(folder_uid, folder_title)
        for dashboard in dashboards:
            changes.append(_dashboard(api, dashboard, folder_uid))
        for document in documents:
            changes.extend(_alerting(api, document, folders, folder_title, folder_uid))
        return changes


def grafana_error(url: str, exc: GrafanaException) -> str:
    """One line for an error status Grafana answered (grafana-client's exceptions)."""
    status = f" {exc.status_code}" if getattr(exc, "status_code", None) else ""
    message = " ".join(str(getattr(exc, "message", "") or type(exc).__name__).split())[:300]
    return f"Grafana at {redact_url(url)} answered{status} ({message})"


def redact_url(url: str) -> str:
    """The URL without a user and password (`http://admin:pw@grafana:3000` -> `http://grafana:3000`)."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        if ":" in host:
            host = f"[{host}]"
        netloc = f"{host}:{parts.port}" if parts.port is not None else host
        return urlunsplit((parts.scheme, netloc, parts.path, "", ""))
    except ValueError:
        return "(the given URL)"


_ERRNO = re.compile(r"\[Errno -?\d+\] ([^'\")\]]+)")


def _network_reason(exc: BaseException) -> str:
    """The useful end of a network error: `Connection refused`, `Name or service not known`, ..."""
    text = str(exc)
    found = _ERRNO.findall(text)
    if found:
        return str(found[-1]).strip()
    for known in ("timed out", "certificate verify failed", "Name or service not known"):
        if known in text:
            return known
    return type(exc).__name__


@contextmanager
def _reaching(url: str, timeout: float) -> Iterator[None]:
    """An unreachable Grafana as one ProvisionError line, without the URL's credentials."""
    try:
        yield
    except OSError as exc:  # niquests' ConnectionError, Timeout, SSLError ... are OSErrors
        raise ProvisionError(f"cannot reach Grafana at {redact_url(url)} ({_network_reason(exc)})") from None
    except GrafanaTimeoutError:
        raise ProvisionError(f"cannot reach Grafana at {redact_url(url)} (no answer within {timeout:g} s)") from None


# -- datasources, folders, dashboards -----------------------------------------------------------


def _connect(url: str, token: str | tuple[str, str], timeout: float) -> Any:
    # grafana-client builds `<scheme>://<host>:<port>/<path>api`: a sub-path needs its slash.
    base = url.rstrip("/") + "/"
    factory: Any = GrafanaApi  # grafana-client has no type annotations
    return factory.from_url(base, credential=token, timeout=timeout)


def _missing(exc: GrafanaClientError) -> bool:
    return int(exc.status_code) == 404


def _datasource(api: Any, payload: dict[str, Any]) -> Change:
    uid = payload["uid"]
    try:
        api.datasource.get_datasource_by_uid(uid)
    except GrafanaClientError as exc:
        if not _missing(exc):
            raise
        api.datasource.create_datasource(payload)
        return Change("datasource", uid, "created")
    api.datasource.update_datasource_by_uid(uid, payload)
    return Change("datasource", uid, "updated")


class _Folders:
    def __init__(self, api: Any, changes: list[Change]) -> None:
        self.api = api
        self.changes = changes
        self.done: set[str] = set()

    def ensure(self, uid: str, title: str) -> str:
        if uid in self.done:
            return uid
        try:
            folder = self.api.folder.get_folder(uid)
        except GrafanaClientError as exc:
            if not _missing(exc):
                raise
            self.api.folder.create_folder(title, uid=uid)
            self.changes.append(Change("folder", uid, "created"))
        else:
            if folder.get("title") != title:
                self.api.folder.update_folder(uid, title=title, overwrite=True)
                self.changes.append(Change("folder", uid, "updated"))
            else:
                self.changes.append(Change("folder", uid, "unchanged"))
        self.done.add(uid)
        return uid


def _dashboard(api: Any, dashboard: Mapping[str, Any], folder_uid: str) -> Change:
    uid = str(dashboard["uid"])
    try:
        api.dashboard.get_dashboard(uid)
        outcome: Outcome = "updated"
    except GrafanaClientError as exc:
        if not _missing(exc):
            raise
        outcome = "created"
    body = {"dashboard": {**dashboard, "id": None}, "folderUid": folder_uid, "overwrite": True, "message": MESSAGE}
    api.dashboard.update_dashboard(body)
    return Change("dashboard", uid, outcome)


# -- alerting (files written in Grafana's file-provisioning format) ----------------------------


def _alerting_documents(directory: Path) -> list[dict[str, Any]]:
    """The YAML documents in the directory, if any. `${VAR}` is replaced by the environment
    variable VAR when it is set (upper-case names, braces required), so secrets such as webhook
    URLs need not be in the files; `$A` in expressions and `$labels` in templates stay as they are."""
    if not directory.is_dir():
        return []
    documents = []
    for path in sorted(p for p in directory.iterdir() if p.suffix in (".yaml", ".yml") and p.is_file()):
        for document in yaml.safe_load_all(_expand_env(path.read_text(encoding="utf-8"))):
            if isinstance(document, dict):
                documents.append(document)
    return documents


_ENV = re.compile(r"\$\{([A-Z_][A-Z0-9_]*)\}")


def _expand_env(text: str) -> str:
    def replace(match: re.Match[str]) -> str:
        return os.environ.get(match.group(1), match.group(0))

    return _ENV.sub(replace, text)


def _alerting(
    api: Any, document: Mapping[str, Any], folders: _Folders, folder_title: str, folder_uid: str
) -> list[Change]:
    changes: list[Change] = []
    provisioning = api.alertingprovisioning
    for template in document.get("templates") or []:
        provisioning.create_or_update_template(template["name"], {"template": template["template"]})
        changes.append(Change("template", template["name"], "updated"))
    changes.extend(_contact_points(provisioning, document.get("contactPoints") or []))
    for timing in document.get("muteTimes") or []:
        body = _without(timing, "orgId")
        try:
            provisioning.get_mute_timing(timing["name"])
        except GrafanaClientError as exc:
            if not _missing(exc):
                raise
            provisioning.create_mute_timing(body)
            changes.append(Change("mute-timing", timing["name"], "created"))
        else:
            provisioning.update_mute_timing(timing["name"], body)
            changes.append(Change("mute-timing", timing["name"], "updated"))
    for policy in document.get("policies") or []:
        provisioning.set_notification_policy_tree(_without(policy, "orgId"))
        changes.append(Change("policies", "root", "updated"))
    for group in document.get("groups") or []:
        title = group.get("folder") or folder_title
        uid = folder_uid if title == folder_title else _slug(title)
        folders.ensure(uid, title)
        changes.extend(_rule_group(provisioning, group, uid))
    return changes


def _contact_points(provisioning: Any, contact_points: Iterable[Mapping[str, Any]]) -> list[Change]:
    changes: list[Change] = []
    if not contact_points:
        return changes
    existing = {cp.get("uid") for cp in provisioning.get_contactpoints() or []}
    for contact_point in contact_points:
        name = contact_point["name"]
        for index, receiver in enumerate(contact_point.get("receivers") or []):
            uid = receiver.get("uid") or _slug(f"{name}-{receiver['type']}-{index}")
            body = {
                "uid": uid,
                "name": name,
                "type": receiver["type"],
                "settings": receiver.get("settings") or {},
                "disableResolveMessage": bool(receiver.get("disableResolveMessage", False)),
            }
            if uid in existing:
                provisioning.update_contactpoint(uid, body)
                changes.append(Change("contact-point", uid, "updated"))
            else:
                provisioning.create_contactpoint(body)
                existing.add(uid)
                changes.append(Change("contact-point", uid, "created"))
    return changes


def _rule_group(provisioning: Any, group: Mapping[str, Any], folder_uid: str) -> list[Change]:
    changes: list[Change] = []
    name = group["name"]
    rules = []
    for rule in group.get("rules") or []:
        body = _without(rule, "orgId") | {"folderUID": folder_uid, "ruleGroup": name, "orgID": 1}
        uid = body["uid"]
        try:
            provisioning.get_alertrule(uid)
        except GrafanaClientError as exc:
            if not _missing(exc):
                raise
            provisioning.create_alertrule(body)
            changes.append(Change("alert-rule", uid, "created"))
        else:
            provisioning.update_alertrule(uid, body)
            changes.append(Change("alert-rule", uid, "updated"))
        rules.append(body)
    interval = _seconds(group.get("interval", "1m"))
    provisioning.update_rule_group(
        folder_uid, name, {"title": name, "folderUid": folder_uid, "interval": interval, "rules": rules}
    )
    changes.append(Change("rule-group", f"{folder_uid}/{name}", "updated"))
    return changes


def _without(mapping: Mapping[str, Any], *keys: str) -> dict[str, Any]:
    return {k: v for k, v in mapping.items() if k not in keys}


def _slug(text: str) -> str:
    """A Grafana uid (at most 40 of [a-zA-Z0-9-_]) from a title."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-zA-Z0-9_-]+", "-", ascii_text).strip("-").lower()[:40] or "folder"


_DURATION = re.compile(r"(\d+)([smhd])")


def _seconds(value: str | int) -> int:
    """`60`, `60s`, `1m`, `1h30m` -> seconds (a rule group's evaluation interval)."""
    if isinstance(value, int):
        return value
    parts = _DURATION.findall(str(value))
    if not parts or "".join(n + u for n, u in parts) != str(value):
        raise ValueError(f"invalid interval {value!r}")
    return sum(int(n) * {"s": 1, "m": 60, "h": 3600, "d": 86400}[u] for n, u in parts)
