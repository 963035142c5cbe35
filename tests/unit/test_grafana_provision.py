"""`dashboards.grafana.provision.provision()` against a stand-in for Grafana's HTTP API.

No Grafana server can be installed on these machines, so this is NOT a Grafana: a small HTTP
server in this file implements just the endpoints provision() uses (datasources by uid,
folders, dashboards/db, the alerting provisioning API) with Grafana's status codes for "not
found" and "already exists", keeps what it is sent, and records every request. It shows that
provision() talks to those endpoints with the right payloads and is idempotent; it cannot show
that a real Grafana accepts every field, which needs a Grafana (the generated dashboards' JSON
is checked separately, tests/unit/test_grafana_dashboards.py).
"""

from __future__ import annotations

import json
import re
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

from dashboards.grafana.provision import ALERTING_DIR, Change, provision

TOKEN = "glsa_stand-in-token"


@dataclass
class FakeGrafana:
    """State and request log of the stand-in."""

    prefix: str = ""
    datasources: dict[str, dict[str, Any]] = field(default_factory=dict)
    folders: dict[str, dict[str, Any]] = field(default_factory=dict)
    dashboards: dict[str, dict[str, Any]] = field(default_factory=dict)
    contact_points: dict[str, dict[str, Any]] = field(default_factory=dict)
    rules: dict[str, dict[str, Any]] = field(default_factory=dict)
    rule_groups: dict[str, dict[str, Any]] = field(default_factory=dict)
    policies: dict[str, Any] | None = None
    templates: dict[str, Any] = field(default_factory=dict)
    mute_timings: dict[str, Any] = field(default_factory=dict)
    requests: list[tuple[str, str, Any]] = field(default_factory=list)
    url: str = ""

    def handle(self, method: str, path: str, body: Any) -> tuple[int, Any]:
        self.requests.append((method, path, body))
        route = path.removeprefix(self.prefix)
        for pattern, handler in self.routes():
            match = re.fullmatch(pattern, f"{method} {route}")
            if match:
                result: tuple[int, Any] = handler(body, *match.groups())
                return result
        return 404, {"message": f"stand-in: no route {method} {route}"}

    def routes(self) -> list[tuple[str, Any]]:
        return [
            (r"GET /api/datasources/uid/([\w-]+)", lambda b, uid: self._get(self.datasources, uid)),
            (r"POST /api/datasources", self._create_datasource),
            (r"PUT /api/datasources/uid/([\w-]+)", lambda b, uid: self._update(self.datasources, uid, b)),
            (r"GET /api/folders/([\w-]+)", lambda b, uid: self._get(self.folders, uid)),
            (r"POST /api/folders", self._create_folder),
            (
                r"PUT /api/folders/([\w-]+)",
                lambda b, uid: self._update(self.folders, uid, self.folders.get(uid, {}) | b),
            ),
            (r"GET /api/dashboards/uid/([\w-]+)", self._get_dashboard),
            (r"POST /api/dashboards/db", self._save_dashboard),
            (r"GET /api/v1/provisioning/contact-points", lambda b: (200, list(self.contact_points.values()))),
            (r"POST /api/v1/provisioning/contact-points", lambda b: self._create(self.contact_points, b)),
            (
                r"PUT /api/v1/provisioning/contact-points/([\w-]+)",
                lambda b, uid: self._update(self.contact_points, uid, b),
            ),
            (r"GET /api/v1/provisioning/alert-rules/([\w-]+)", lambda b, uid: self._get(self.rules, uid)),
            (r"POST /api/v1/provisioning/alert-rules", lambda b: self._create(self.rules, b)),
            (r"PUT /api/v1/provisioning/alert-rules/([\w-]+)", lambda b, uid: self._update(self.rules, uid, b)),
            (r"PUT /api/v1/provisioning/folder/([\w-]+)/rule-groups/([^/]+)", self._put_group),
            (r"PUT /api/v1/provisioning/policies", self._put_policies),
            (r"PUT /api/v1/provisioning/templates/([^/]+)", self._put_template),
            (r"GET /api/v1/provisioning/mute-timings/([^/]+)", lambda b, name: self._get(self.mute_timings, name)),
            (r"POST /api/v1/provisioning/mute-timings", self._create_mute_timing),
            (
                r"PUT /api/v1/provisioning/mute-timings/([^/]+)",
                lambda b, name: self._update(self.mute_timings, name, b),
            ),
        ]

    # -- generic ---------------------------------------------------------------------------------

    @staticmethod
    def _get(store: dict[str, Any], uid: str) -> tuple[int, Any]:
        return (200, store[uid]) if uid in store else (404, {"message": "not found"})

    @staticmethod
    def _create(store: dict[str, Any], body: dict[str, Any]) -> tuple[int, Any]:
        if body["uid"] in store:
            return 409, {"message": "already exists"}
        store[body["uid"]] = body
        return 201, body

    @staticmethod
    def _update(store: dict[str, Any], uid: str, body: dict[str, Any]) -> tuple[int, Any]:
        if uid not in store:
            return 404, {"message": "not found"}
        store[uid] = body
        return 200, body

    # -- Grafana's shapes ------------------------------------------------------------------------

    def _create_datasource(self, body: dict[str, Any]) -> tuple[int, Any]:
        if body["uid"] in self.datasources or any(d["name"] == body["name"] for d in self.datasources.values()):
            return 409, {"message": "data source with the same name already exists"}
        self.datasources[body["uid"]] = body
        return 200, {"datasource": body, "id": len(self.datasources), "message": "Datasource added"}

    def _create_folder(self, body: dict[str, Any]) -> tuple[int, Any]:
        if body["uid"] in self.folders:
            return 409, {"message": "a folder with the same uid already exists"}
        self.folders[body["uid"]] = body
        return 200, body | {"id": len(self.folders)}

    def _get_dashboard(self, body: Any, uid: str) -> tuple[int, Any]:
        if uid not in self.dashboards:
            return 404, {"message": "Dashboard not found"}
        stored = self.dashboards[uid]
        return 200, {"dashboard": stored["dashboard"], "meta": {"folderUid": stored["folderUid"]}}

    def _save_dashboard(self, body: dict[str, Any]) -> tuple[int, Any]:
        uid = body["dashboard"]["uid"]
        if body.get("folderUid") not in self.folders:
            return 400, {"message": "folder not found"}
        if uid in self.dashboards and not body.get("overwrite"):
            return 412, {"status": "version-mismatch"}
        version = self.dashboards.get(uid, {}).get("version", 0) + 1
        self.dashboards[uid] = body | {"version": version}
        return 200, {"status": "success", "uid": uid, "version": version}

    def _create_mute_timing(self, body: dict[str, Any]) -> tuple[int, Any]:
        if body["name"] in self.mute_timings:
            return 409, {"message": "already exists"}
        self.mute_timings[body["name"]] = body
        return 201, body

    def _put_group(self, body: dict[str, Any], folder: str, group: str) -> tuple[int, Any]:
        if folder not in self.folders:
            return 404, {"message": "folder not found"}
        self.rule_groups[f"{folder}/{group}"] = body
        return 200, body

    def _put_policies(self, body: dict[str, Any]) -> tuple[int, Any]:
        self.policies = body
        return 202, {"message": "policies updated"}

    def _put_template(self, body: dict[str, Any], name: str) -> tuple[int, Any]:
        self.templates[name] = body
        return 202, body | {"name": name}


@pytest.fixture
def grafana() -> Iterator[FakeGrafana]:
    yield from _serve(FakeGrafana())


def _serve(fake: FakeGrafana) -> Iterator[FakeGrafana]:
    class Handler(BaseHTTPRequestHandler):
        def _reply(self) -> None:
            if self.headers.get("Authorization") != f"Bearer {TOKEN}":
                status, payload = 401, {"message": "Unauthorized"}
            else:
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length)) if length else None
                status, payload = fake.handle(self.command, self.path.split("?")[0], body)
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_PUT = do_DELETE = _reply

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    fake.url = f"http://127.0.0.1:{server.server_address[1]}{fake.prefix}"
    try:
        yield fake
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def _creations(requests: list[tuple[str, str, Any]]) -> list[str]:
    return [path for method, path, _ in requests if method == "POST" and not path.endswith("/dashboards/db")]


def _run(grafana: FakeGrafana, alerting_dir: Path | None = None, **kwargs: Any) -> list[Change]:
    return provision(grafana.url, TOKEN, alerting_dir=alerting_dir, **kwargs)


def test_first_run_creates_second_run_updates_and_creates_nothing(grafana: FakeGrafana, tmp_path: Path) -> None:
    first = _run(grafana, tmp_path / "no-alerting")
    assert {(c.kind, c.uid, c.outcome) for c in first} == {
        ("datasource", "prometheus", "created"),
        ("datasource", "clickhouse", "created"),
        ("folder", "availability", "created"),
        ("dashboard", "availability-wall", "created"),
        ("dashboard", "availability-history", "created"),
        ("dashboard", "availability-mailbox", "created"),
    }
    stored = (dict(grafana.datasources), dict(grafana.folders), set(grafana.dashboards))
    grafana.requests.clear()

    second = _run(grafana, tmp_path / "no-alerting")
    assert {c.outcome for c in second} <= {"updated", "unchanged"}
    assert [(c.kind, c.uid) for c in second] == [(c.kind, c.uid) for c in first]
    assert _creations(grafana.requests) == []  # no POST /api/datasources, no POST /api/folders
    assert (dict(grafana.datasources), dict(grafana.folders), set(grafana.dashboards)) == stored
    assert {d["version"] for d in grafana.dashboards.values()} == {2}  # overwritten by uid


def test_payloads(grafana: FakeGrafana) -> None:
    _run(
        grafana,
        prometheus_url="http://prometheus.example:9090",
        clickhouse_host="ch.example",
        clickhouse_port=9440,
        clickhouse_database="availability_prod",
        clickhouse_password="secret",
        clickhouse_secure=True,
    )
    prometheus, clickhouse = grafana.datasources["prometheus"], grafana.datasources["clickhouse"]
    assert (prometheus["type"], prometheus["url"], prometheus["access"]) == (
        "prometheus",
        "http://prometheus.example:9090",
        "proxy",
    )
    assert clickhouse["type"] == "grafana-clickhouse-datasource"
    assert clickhouse["jsonData"] == {
        "host": "ch.example",
        "port": 9440,
        "protocol": "native",
        "secure": True,
        "username": "default",
        "defaultDatabase": "availability_prod",
    }
    assert clickhouse["secureJsonData"] == {"password": "secret"}
    assert grafana.folders["availability"]["title"] == "Tillgänglighet"
    for uid, saved in grafana.dashboards.items():
        assert saved["folderUid"] == "availability" and saved["overwrite"] is True
        assert saved["dashboard"]["uid"] == uid and saved["dashboard"]["id"] is None
        datasources = {t["datasource"]["uid"] for p in saved["dashboard"]["panels"] for t in p.get("targets", [])}
        assert datasources <= {"prometheus", "clickhouse"}


def test_update_without_password_keeps_it_out_of_the_payload(grafana: FakeGrafana) -> None:
    _run(grafana, clickhouse_password="secret")
    grafana.requests.clear()
    _run(grafana)
    [update] = [b for m, p, b in grafana.requests if m == "PUT" and p.endswith("/datasources/uid/clickhouse")]
    assert "secureJsonData" not in update


def test_folder_title_is_updated_in_place(grafana: FakeGrafana) -> None:
    _run(grafana)
    changes = _run(grafana, folder_title="Tillgänglighet (test)")
    assert Change("folder", "availability", "updated") in changes
    assert grafana.folders["availability"]["title"] == "Tillgänglighet (test)"
    assert len(grafana.folders) == 1


def test_grafana_under_a_sub_path() -> None:
    for fake in _serve(FakeGrafana(prefix="/grafana")):
        _run(fake)
        assert all(path.startswith("/grafana/api/") for _, path, _ in fake.requests)
        assert len(fake.dashboards) == 3


def test_wrong_token_fails(grafana: FakeGrafana) -> None:
    from grafana_client.client import GrafanaUnauthorizedError

    with pytest.raises(GrafanaUnauthorizedError):
        provision(grafana.url, "wrong", alerting_dir=None)


ALERTING_YAML = """
apiVersion: 1
contactPoints:
  - orgId: 1
    name: managers
    receivers:
      - uid: managers-webhook
        type: webhook
        settings:
          url: ${AVAILABILITY_TEST_WEBHOOK}
policies:
  - orgId: 1
    receiver: managers
    group_by: [alertname, queue]
muteTimes:
  - orgId: 1
    name: weekends
    time_intervals:
      - weekdays: [saturday, sunday]
templates:
  - orgId: 1
    name: availability
    template: '{{ define "availability.title" }}{{ .CommonLabels.queue }}{{ end }}'
groups:
  - orgId: 1
    name: availability
    folder: Tillgänglighet
    interval: 1m
    rules:
      - uid: availability-sl
        title: Service level below target
        condition: C
        data:
          - refId: A
            relativeTimeRange: {from: 600, to: 0}
            datasourceUid: prometheus
            model: {expr: "up", refId: A}
          - refId: C
            datasourceUid: __expr__
            model: {type: math, expression: is_number($A), refId: C}
        for: 5m
        labels: {process: '{{ $labels.queue }}'}
"""


def test_alerting_files_are_provisioned_when_present(
    grafana: FakeGrafana, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AVAILABILITY_TEST_WEBHOOK", "https://chat.example/hook")
    (tmp_path / "alerting.yaml").write_text(ALERTING_YAML, encoding="utf-8")
    first = _run(grafana, tmp_path)
    assert Change("contact-point", "managers-webhook", "created") in first
    assert Change("alert-rule", "availability-sl", "created") in first
    rule = grafana.rules["availability-sl"]
    assert (rule["folderUID"], rule["ruleGroup"], rule["orgID"]) == ("availability", "availability", 1)
    assert rule["data"][1]["model"]["expression"] == "is_number($A)"  # `$A` is not an environment lookup
    assert rule["labels"] == {"process": "{{ $labels.queue }}"}
    assert grafana.contact_points["managers-webhook"]["settings"]["url"] == "https://chat.example/hook"
    assert grafana.rule_groups["availability/availability"]["interval"] == 60
    assert grafana.policies == {"receiver": "managers", "group_by": ["alertname", "queue"]}
    assert "availability" in grafana.templates
    assert Change("mute-timing", "weekends", "created") in first

    grafana.requests.clear()
    second = _run(grafana, tmp_path)
    assert Change("contact-point", "managers-webhook", "updated") in second
    assert Change("alert-rule", "availability-sl", "updated") in second
    assert Change("mute-timing", "weekends", "updated") in second
    assert _creations(grafana.requests) == []
    assert len(grafana.rules) == 1 and len(grafana.contact_points) == 1


def test_the_repositorys_alerting_files_if_any(grafana: FakeGrafana) -> None:
    """Whatever deploy/grafana/provisioning/alerting holds (written from dashboards/alerting/files.py)
    goes through provision(); without files, provisioning just skips alerting."""
    files = sorted(ALERTING_DIR.glob("*.y*ml")) if ALERTING_DIR.is_dir() else []
    changes = _run(grafana, ALERTING_DIR)
    documents = [d for f in files for d in yaml.safe_load_all(f.read_text(encoding="utf-8")) if isinstance(d, dict)]
    rule_uids = {r["uid"] for d in documents for g in d.get("groups") or [] for r in g.get("rules") or []}
    assert set(grafana.rules) == rule_uids
    assert {c.uid for c in changes if c.kind == "alert-rule"} == rule_uids
    assert set(grafana.folders) >= {"availability"}


def test_file_provisioning_matches_the_api_provisioning() -> None:
    """deploy/grafana/provisioning/{datasources,dashboards}/availability.yaml create the same uids."""
    from dashboards.grafana.provision import DEFAULT_FOLDER_TITLE, DEFAULT_FOLDER_UID, datasources

    root = ALERTING_DIR.parent
    files = yaml.safe_load((root / "datasources" / "availability.yaml").read_text(encoding="utf-8"))
    api = datasources(prometheus_url="x", clickhouse_host="x", clickhouse_port=9000, clickhouse_database="x")
    assert [(d["uid"], d["type"]) for d in files["datasources"]] == [(d["uid"], d["type"]) for d in api]
    assert [sorted(d["jsonData"]) for d in files["datasources"]] == [sorted(d["jsonData"]) for d in api]
    [provider] = yaml.safe_load((root / "dashboards" / "availability.yaml").read_text(encoding="utf-8"))["providers"]
    assert (provider["folder"], provider["folderUid"]) == (DEFAULT_FOLDER_TITLE, DEFAULT_FOLDER_UID)
    assert provider["type"] == "file" and provider["options"]["path"]


# -- errors as one line (issue #7, item 19) ----------------------------------------------------


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_an_unreachable_grafana_is_one_line_and_exit_1(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Was a 75-line traceback. The URL's password is not repeated."""
    from availability.cli import main

    port = _closed_port()
    monkeypatch.delenv("AVAILABILITY_GRAFANA_TOKEN", raising=False)
    started = time.monotonic()
    url = f"http://admin:hunter2@127.0.0.1:{port}/grafana"
    code = main(["dashboards", "provision", "--grafana-url", url, "--token", TOKEN])
    err = capsys.readouterr().err
    assert code == 1
    assert err.count("\n") == 1, err
    assert err.startswith(f"availability: cannot reach Grafana at http://127.0.0.1:{port}/grafana ("), err
    assert "Connection refused" in err
    assert "hunter2" not in err and "Traceback" not in err
    assert time.monotonic() - started < 30


def test_provision_raises_an_availability_error_when_grafana_is_unreachable() -> None:
    from schemas.errors import AvailabilityError

    with pytest.raises(AvailabilityError, match=r"^cannot reach Grafana at http://127\.0\.0\.1:\d+ \("):
        provision(f"http://127.0.0.1:{_closed_port()}", TOKEN, alerting_dir=None)


def test_what_grafana_refuses_is_one_line_too(grafana: FakeGrafana, capsys: pytest.CaptureFixture[str]) -> None:
    from availability.cli import main

    code = main(["dashboards", "provision", "--grafana-url", grafana.url, "--token", "wrong"])
    err = capsys.readouterr().err
    assert code == 1
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert err.startswith(f"availability: Grafana at {grafana.url} answered 401"), err
