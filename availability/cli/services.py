"""The long-running sources and Grafana: `ingest webhook`, `ingest imap`, `dashboards provision`."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from availability.cli.args import KAFKA_ENV, SharedOptions, console_options, positive
from availability.cli.progress import STOP, Console, counted, key_text
from availability.cli.sources import add_ingest_queue_log, event_topics, publishing_rows
from availability.wiring import Wiring
from schemas.errors import InputError


def cmd_ingest_webhook(args: argparse.Namespace, wiring: Wiring) -> int:
    from ingest.log_limit import limit_repeats, plain_logging
    from ingest.webhook import METRICS, check_token, create_service_app, serve

    plain_logging(args.loglevel)
    limit_repeats()  # at once: a broker outage while starting is one line a minute, not ~150 a second
    agreements = wiring.agreements(args.agreements)
    token = wiring.webhook_token()
    check_token(token, args.allow_anonymous)  # before the boundary's key warning: the error alone
    boundary = wiring.boundary(agreements, live=True)
    publisher = wiring.reconnecting_publisher()
    app = create_service_app(boundary, publisher, token=token, allow_anonymous=args.allow_anonymous)
    if token is None:
        wiring.tell("warning: the webhook accepts posts without a token (--allow-anonymous)")
    console = Console("webhook", quiet=args.quiet, status_every=args.status_every)
    registry = app[METRICS]

    def listening(address: str) -> None:
        login = "a bearer token (AVAILABILITY_WEBHOOK_TOKEN)" if token else "no token (--allow-anonymous)"
        console.banner(
            f"listening on {address}",
            [
                ("reads", f"POST {address}/events: CloudEvents from CallGuide, with {login}"),
                ("writes", f"Kafka {wiring.bootstrap}: {event_topics(wiring.prefix)}"),
                ("metrics", f"{address}/metrics, health {address}/healthz (503 while Kafka is away)"),
                ("key", key_text(boundary.pseudonymiser.fingerprint, wiring.settings.uses_development_key)),
                ("stop", f"{STOP} (requests under way are answered first)"),
            ],
        )

    requests = "availability_webhook_requests"
    totals = lambda: {  # noqa: E731
        "requests": counted(registry, requests),
        "events accepted": counted(registry, "availability_webhook_events", outcome="accepted"),
        "refused": counted(registry, "availability_webhook_events", outcome="rejected"),
        "requests answered 503": counted(registry, requests, status="503"),
        "answered 401 (token missing or wrong)": counted(registry, requests, status="401"),
    }
    with console.ticking(totals):
        serve(app, args.host, args.port, on_listening=listening)
    return 0


def cmd_ingest_imap(args: argparse.Namespace, wiring: Wiring) -> int:
    from ingest.imap.source import RunStats, run
    from ingest.log_limit import limit_repeats, plain_logging

    plain_logging(args.loglevel)
    limit_repeats()  # a broker outage: one line a minute per kind
    agreements = wiring.agreements(args.agreements)
    boundary = wiring.boundary(agreements, live=True)  # warns about the development key before polling
    poller = wiring.imap_poller(
        agreements,
        args.mailbox,
        args.host,
        args.port,
        args.user,
        ssl=args.ssl,
        insecure_plaintext=args.insecure_plaintext,
        tls_ca=args.tls_ca,
        inbox=args.inbox,
        sent=args.sent,
        done=args.done or None,
        checkpoint=args.checkpoint,
        auth=args.auth,
        tenant=args.tenant,
        client_id=args.client_id,
        authority=args.authority,
        authority_ca=args.authority_ca,
    )
    console = Console(f"imap {args.mailbox}", quiet=args.quiet, status_every=args.status_every)
    stats = RunStats()
    security = "IMAPS" if args.ssl else "plain text, NO TLS" if args.insecure_plaintext else "STARTTLS"
    folders = ", ".join(f"{f} ({kind})" for f, kind in _folders(args))

    def polled() -> None:
        console.banner(
            f"polling every {args.interval:g} s" if not args.once else "polled once",
            [
                ("reads", f"{args.user} at {args.host}:{poller.port} ({security}, {args.auth}): {folders}"),
                ("keeps", f"its place in {poller.checkpoint.path}"),
                *publishing_rows(wiring, boundary.pseudonymiser.fingerprint),
                ("stop", f"{STOP} (the poll under way is published and committed first)"),
            ],
        )

    totals = lambda: {  # noqa: E731
        "polls": stats.polls,
        "messages read": stats.read,
        "events published": stats.published,
        "rejected": stats.rejected,
    }
    with wiring.publisher() as publisher, console.ticking(totals):
        run(poller, boundary, publisher.publish, interval=args.interval, once=args.once, stats=stats, polled=polled)
    print(
        f"imap {args.mailbox}: {stats.polls} polls, {stats.read} messages read, {stats.published} events published, "
        f"{stats.rejected} rejected" + (f", ignored {dict(stats.ignored)}" if stats.ignored else ""),
        file=sys.stderr,
    )
    return 0


def _folders(args: argparse.Namespace) -> list[tuple[str, str]]:
    folders = [(args.inbox, "received"), (args.sent, "replied")]
    return [*folders, (args.done, "closed")] if args.done else folders


def cmd_dashboards_provision(args: argparse.Namespace, wiring: Wiring) -> int:
    from grafana_client.client import GrafanaException

    from dashboards.grafana.provision import ProvisionError, grafana_error, provision

    if not args.grafana_url:
        raise InputError("no Grafana given: use --grafana-url URL or set AVAILABILITY_GRAFANA_URL")
    token = args.token or wiring.grafana_token()
    if not token:
        raise InputError("no Grafana token given: use --token or set AVAILABILITY_GRAFANA_TOKEN")
    try:
        changes = provision(
            args.grafana_url,
            token,
            agreements=wiring.agreements(args.agreements),
            prometheus_url=args.prometheus_url,
            clickhouse_host=args.clickhouse_host,
            clickhouse_port=args.clickhouse_port or (8123 if args.clickhouse_protocol == "http" else 9000),
            clickhouse_database=args.clickhouse_database,
            clickhouse_protocol=args.clickhouse_protocol,
            clickhouse_username=wiring.settings.sql_user,
            clickhouse_password=password.get_secret_value() if (password := wiring.settings.sql_password) else None,
        )
    except GrafanaException as exc:  # an error status: one line, not grafana-client's traceback
        raise ProvisionError(grafana_error(args.grafana_url, exc)) from None
    for change in changes:
        print(f"{change.kind} {change.uid}: {change.outcome}")
    return 0


def add_commands(sub: Any, options: SharedOptions) -> None:
    ingest = sub.add_parser(
        "ingest", help="run a source: the CallGuide webhook, an IMAP function mailbox, a growing queue_log"
    )
    sources = ingest.add_subparsers(title="sources", required=True, metavar="SOURCE")
    p = sources.add_parser(
        "webhook",
        help=f"HTTP receiver for CallGuide CloudEvents -> Kafka ({KAFKA_ENV}, AVAILABILITY_WEBHOOK_TOKEN)",
        epilog="POST /events (one CloudEvent or application/cloudevents-batch+json), GET /healthz, GET /metrics. "
        "A bearer token (env AVAILABILITY_WEBHOOK_TOKEN) is required unless --allow-anonymous.",
    )
    p.add_argument(
        "--host",
        default="127.0.0.1",
        metavar="ADDRESS",
        help="the address to listen on (default 127.0.0.1: this machine only; 0.0.0.0 accepts other machines' "
        "posts, which should come through a TLS-terminating proxy: the webhook speaks plain HTTP)",
    )
    p.add_argument(
        "--port", type=int, default=8088, metavar="PORT", help="the port to listen on (default 8088; 0: any free one)"
    )
    p.add_argument("--allow-anonymous", action="store_true", help="accept requests without a token (tests only)")
    options.agreements(p)
    console_options(p, "requests, events accepted and refused, requests answered 503", loglevel="info")
    p.set_defaults(run=cmd_ingest_webhook)

    p = sources.add_parser(
        "imap",
        help=f"poll a function mailbox over IMAP -> Kafka ({KAFKA_ENV}, AVAILABILITY_IMAP_PASSWORD)",
        epilog="Inbox -> mail.received, sent folder -> mail.replied, done folder -> mail.closed; see docs/imap.md. "
        "The password comes from env AVAILABILITY_IMAP_PASSWORD; with --auth oauth2 (Exchange Online) the app's "
        "client secret from env AVAILABILITY_IMAP_CLIENT_SECRET.",
    )
    p.add_argument("--mailbox", required=True, metavar="ID", help="the mailbox id in the agreements")
    p.add_argument("--host", required=True, help="the IMAP server")
    p.add_argument("--port", type=int, help="the IMAP server's port (default 993 with --ssl, else 143)")
    p.add_argument("--user", required=True, help="the account to log in as (with oauth2: the mailbox's address)")
    p.add_argument("--ssl", action="store_true", help="implicit TLS (IMAPS, port 993); without it STARTTLS (port 143)")
    p.add_argument(
        "--tls-ca", metavar="FILE", help="verify the server's certificate against this CA (PEM), not the system's CAs"
    )
    p.add_argument(
        "--insecure-plaintext",
        action="store_true",
        help="log in WITHOUT TLS: the password crosses the network in clear text (test servers only)",
    )
    p.add_argument(
        "--auth",
        choices=["password", "oauth2"],
        default="password",
        help="password (the default): LOGIN with AVAILABILITY_IMAP_PASSWORD; oauth2: XOAUTH2 with an app-only token "
        "from Microsoft Entra ID (Exchange Online; --user is the shared mailbox's address)",
    )
    p.add_argument("--tenant", help="--auth oauth2: the Entra tenant (directory) id or domain")
    p.add_argument("--client-id", help="--auth oauth2: the app registration's application (client) id")
    p.add_argument(
        "--authority",
        metavar="URL",
        help="--auth oauth2: the Entra host (default https://login.microsoftonline.com; national clouds differ)",
    )
    p.add_argument(
        "--authority-ca", metavar="FILE", help="--auth oauth2: verify the authority's certificate against this CA (PEM)"
    )
    p.add_argument("--inbox", default="INBOX", help="the folder of received mail (default INBOX)")
    p.add_argument("--sent", default="Sent", help="the folder of the mailbox's replies (default Sent)")
    p.add_argument("--done", default="Done", help="folder of cases finished without reply (default Done; '' for none)")
    p.add_argument(
        "--checkpoint", metavar="FILE", help="UIDVALIDITY/UID checkpoint (default ./imap-ID.checkpoint.json)"
    )
    p.add_argument(
        "--interval", type=positive(float), default=60.0, metavar="S", help="seconds between polls (default 60)"
    )
    p.add_argument("--once", action="store_true", help="poll once and exit")
    options.agreements(p)
    console_options(p, "polls, messages read, events published and rejected", loglevel="info")
    p.set_defaults(run=cmd_ingest_imap)

    add_ingest_queue_log(sources, options)

    dashboards = sub.add_parser("dashboards", help="Grafana dashboards, alert rules and datasources")
    actions = dashboards.add_subparsers(title="actions", required=True, metavar="ACTION")
    p = actions.add_parser(
        "provision", help="create or update (by uid) datasources, folder, dashboards and alert rules in Grafana"
    )
    p.add_argument("--grafana-url", default=options.settings.grafana_url, help="env AVAILABILITY_GRAFANA_URL")
    p.add_argument("--token", help="a service-account token (env AVAILABILITY_GRAFANA_TOKEN)")
    p.add_argument(
        "--prometheus-url",
        default="http://localhost:9090",
        metavar="URL",
        help="the Prometheus the live dashboards' datasource queries, as Grafana reaches it "
        "(default http://localhost:9090)",
    )
    p.add_argument(
        "--clickhouse-host",
        default="localhost",
        metavar="HOST",
        help="the warehouse's host as Grafana reaches it (default localhost)",
    )
    p.add_argument(
        "--clickhouse-protocol",
        choices=["native", "http"],
        default="native",
        help="native (the default: a ClickHouse server, port 9000) or http (a server's 8123, or the stream worker's "
        "read-only SQL on an embedded warehouse); the user and password are AVAILABILITY_SQL_USER and "
        "AVAILABILITY_SQL_PASSWORD",
    )
    p.add_argument("--clickhouse-port", type=int, help="default 9000, or 8123 with --clickhouse-protocol http")
    p.add_argument(
        "--clickhouse-database",
        default="availability",
        metavar="DB",
        help="the warehouse's database (default availability)",
    )
    options.agreements(p)
    p.set_defaults(run=cmd_dashboards_provision)
