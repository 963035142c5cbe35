"""The stream-path commands: `topics create`, `publish`, `stream`, `simulate --to-kafka`."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Iterable
from typing import Any

from availability.cli import common
from availability.settings import Settings
from schemas.errors import InputError

EXIT_REJECTED = 2
Command = Callable[[argparse.Namespace, Settings], int]


def cmd_topics_create(args: argparse.Namespace, settings: Settings) -> int:
    from ingest.kafka.admin import ensure_topics

    for line in ensure_topics(settings.kafka_bootstrap_servers, settings.topic_prefix, args.replication_factor):
        print(line)
    return 0


def cmd_publish(args: argparse.Namespace, settings: Settings) -> int:
    """The JSONL ingest boundary, then Kafka: the stream-path twin of `process`."""
    from ingest.jsonl import read_batches
    from ingest.kafka.admin import ensure_topics

    paths = common.input_files(args.files)
    boundary = common.boundary(settings, common.agreements(args.agreements))
    accepted = rejected = 0
    # The rejects file is checked (never an input, its directory exists) before Kafka is asked.
    with common.RejectsWriter(args.rejects, inputs=paths) as on_reject:
        ensure_topics(settings.kafka_bootstrap_servers, settings.topic_prefix)
        with _retrying_publisher(settings) as publisher:
            for path in paths:
                for batch in read_batches(path, boundary):
                    for r in batch.rejected:
                        on_reject(r)
                    accepted += publisher.publish(batch.events)
                    rejected += len(batch.rejected)
    print(f"published {accepted} events to Kafka, {rejected} rejected", file=sys.stderr)
    return EXIT_REJECTED if rejected else 0


def publish_simulation(args: argparse.Namespace, settings: Settings, events: Iterable[Any]) -> int:
    """`simulate --to-kafka`: through the ingest boundary to Kafka, at `--speed`× real time."""
    from ingest.kafka.admin import ensure_topics
    from schemas.events import encode

    boundary = common.boundary(settings, common.agreements(args.agreements))
    ensure_topics(settings.kafka_bootstrap_servers, settings.topic_prefix)
    count = 0
    pending: list[Any] = []
    started, first = time.monotonic(), None
    with _retrying_publisher(settings) as publisher:
        for ev in events:
            accepted = boundary.accept(encode(ev))
            if isinstance(accepted, str):
                raise InputError(f"the simulator made an invalid event: {accepted}")
            first = first or ev.time
            if args.speed:
                due = (ev.time - first).total_seconds() / args.speed - (time.monotonic() - started)
                if due > 0.05:  # send what is due, then wait for the next event's moment
                    count += publisher.publish(pending)
                    pending = []
                    time.sleep(due)
            pending.append(accepted)
            if len(pending) >= 5000:
                count += publisher.publish(pending)
                pending = []
        count += publisher.publish(pending)
    print(f"published {count} simulated events to Kafka", file=sys.stderr)
    return 0


def _retrying_publisher(settings: Settings) -> Any:
    """A publisher that keeps trying while the broker is away (a restart), saying so on stderr."""
    from ingest.kafka.publisher import RetryingPublisher

    def say(text: str) -> None:
        print(f"availability: {text}", file=sys.stderr)

    return RetryingPublisher(settings.kafka_bootstrap_servers, settings.topic_prefix, on_retry=say)


def cmd_stream(args: argparse.Namespace, settings: Settings) -> int:
    from pathlib import Path

    from ingest.boundary import now_utc
    from ingest.kafka.admin import ensure_topics
    from stream_jobs.core.live import shifted_clock
    from stream_jobs.worker.app import run

    if not args.warehouse:
        raise InputError("no warehouse given: use --warehouse DIR|URL or set AVAILABILITY_WAREHOUSE")
    agreements = common.agreements(args.agreements)
    common.boundary(settings, agreements)  # warns about the development key before the worker starts
    ensure_topics(settings.kafka_bootstrap_servers, settings.topic_prefix)
    clock = shifted_clock(args.clock_start, args.clock_speed) if args.clock_start else now_utc
    run(
        settings,
        agreements,
        args.warehouse,
        web_port=args.web_port,
        loglevel=args.loglevel,
        max_events=args.batch_events,
        max_seconds=args.batch_seconds,
        from_beginning=args.from_beginning,
        clock=clock,
        dead_letter_file=Path(args.dead_letter_file) if args.dead_letter_file else None,
    )
    return 0


def cmd_ingest_webhook(args: argparse.Namespace, settings: Settings) -> int:
    from ingest.webhook import serve

    serve(settings, common.agreements(args.agreements), args.host, args.port, args.allow_anonymous)
    return 0


def cmd_ingest_imap(args: argparse.Namespace, settings: Settings) -> int:
    import logging

    from ingest.imap.source import run
    from ingest.log_limit import limit_repeats

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("kafka").setLevel(logging.WARNING)
    limit_repeats()  # a broker outage: one line a minute per kind
    agreements = common.agreements(args.agreements)
    common.boundary(settings, agreements)  # warns about the development key before polling starts
    stats = run(
        settings,
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
        interval=args.interval,
        once=args.once,
    )
    print(f"imap {args.mailbox}: {stats}", file=sys.stderr)
    return 0


def cmd_dashboards_provision(args: argparse.Namespace, settings: Settings) -> int:
    from grafana_client.client import GrafanaException

    from dashboards.grafana.provision import ProvisionError, grafana_error, provision

    if not args.grafana_url:
        raise InputError("no Grafana given: use --grafana-url URL or set AVAILABILITY_GRAFANA_URL")
    token = args.token or (settings.grafana_token.get_secret_value() if settings.grafana_token else None)
    if not token:
        raise InputError("no Grafana token given: use --token or set AVAILABILITY_GRAFANA_TOKEN")
    try:
        changes = provision(
            args.grafana_url,
            token,
            agreements=common.agreements(args.agreements),
            prometheus_url=args.prometheus_url,
            clickhouse_host=args.clickhouse_host,
            clickhouse_port=args.clickhouse_port,
            clickhouse_database=args.clickhouse_database,
        )
    except GrafanaException as exc:  # an error status: one line, not grafana-client's traceback
        raise ProvisionError(grafana_error(args.grafana_url, exc)) from None
    for change in changes:
        print(f"{change.kind} {change.uid}: {change.outcome}")
    return 0


def add_commands(sub: Any, settings: Settings, agreements_opt: Callable[[Any], None]) -> None:
    env = "env KAFKA_BOOTSTRAP_SERVERS, AVAILABILITY_TOPIC_PREFIX"
    topics = sub.add_parser("topics", help=f"Kafka topics ({env})")
    topics_sub = topics.add_subparsers(title="actions", required=True, metavar="ACTION")
    p = topics_sub.add_parser("create", help="create the topics, or check they match their definitions")
    p.add_argument("--replication-factor", type=common.positive(int), default=1)
    p.set_defaults(run=cmd_topics_create)

    p = sub.add_parser("publish", help=f"JSONL events through the ingest boundary to Kafka ({env})")
    p.add_argument("files", nargs="+", metavar="FILE.jsonl")
    agreements_opt(p)
    p.add_argument("--rejects", metavar="FILE", help="write rejected lines here (JSONL) instead of to stderr")
    p.set_defaults(run=cmd_publish)

    p = sub.add_parser("stream", help=f"the stream worker: Kafka -> warehouse, until stopped ({env})")
    agreements_opt(p)
    p.add_argument(
        "--warehouse",
        metavar="W",
        default=settings.warehouse,
        help="a directory (embedded ClickHouse) or http://user:pass@host:8123/db (env AVAILABILITY_WAREHOUSE)",
    )
    p.add_argument("--web-port", type=int, default=6066, help="port of /metrics (default 6066)")
    p.add_argument("--batch-events", type=common.positive(int), default=5000, help="write at most N events a batch")
    p.add_argument(
        "--batch-seconds", type=common.positive(float), default=0.5, help="write a batch at least every S seconds"
    )
    p.add_argument("--loglevel", default="warning", choices=["debug", "info", "warning", "error"])
    p.add_argument(
        "--from-beginning",
        action="store_true",
        help="read the topics from their start into this warehouse (a new or restored warehouse behind the consumer "
        "group; repeats are harmless)",
    )
    p.add_argument(
        "--dead-letter-file",
        metavar="FILE",
        help="where rejected messages go when the dead-letter topic cannot take them (JSONL, mode 0600; default "
        "dead-letters.jsonl in the warehouse directory, or ~/.local/state/availability/ for a server warehouse)",
    )
    p.add_argument(
        "--clock-start",
        type=common.instant_arg,
        metavar="TIME",
        help="demos and tests: the live metrics' clock starts at TIME (RFC 3339) instead of the wall clock's now",
    )
    p.add_argument(
        "--clock-speed",
        type=common.positive(float),
        default=1.0,
        help="with --clock-start: the clock runs this many times as fast as the wall clock (as simulate --speed)",
    )
    p.set_defaults(run=cmd_stream)

    ingest = sub.add_parser("ingest", help="run a source: the CallGuide webhook or an IMAP function mailbox")
    sources = ingest.add_subparsers(title="sources", required=True, metavar="SOURCE")
    p = sources.add_parser(
        "webhook",
        help=f"HTTP receiver for CallGuide CloudEvents -> Kafka ({env}, AVAILABILITY_WEBHOOK_TOKEN)",
        epilog="POST /events (one CloudEvent or application/cloudevents-batch+json), GET /healthz, GET /metrics. "
        "A bearer token (env AVAILABILITY_WEBHOOK_TOKEN) is required unless --allow-anonymous.",
    )
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8088)
    p.add_argument("--allow-anonymous", action="store_true", help="accept requests without a token (tests only)")
    agreements_opt(p)
    p.set_defaults(run=cmd_ingest_webhook)

    p = sources.add_parser(
        "imap",
        help=f"poll a function mailbox over IMAP -> Kafka ({env}, AVAILABILITY_IMAP_PASSWORD)",
        epilog="Inbox -> mail.received, sent folder -> mail.replied, done folder -> mail.closed; see docs/imap.md. "
        "The password comes from env AVAILABILITY_IMAP_PASSWORD.",
    )
    p.add_argument("--mailbox", required=True, metavar="ID", help="the mailbox id in the agreements")
    p.add_argument("--host", required=True)
    p.add_argument("--port", type=int, help="default 993 with --ssl, else 143")
    p.add_argument("--user", required=True)
    p.add_argument("--ssl", action="store_true", help="implicit TLS (IMAPS, port 993); without it STARTTLS (port 143)")
    p.add_argument(
        "--tls-ca", metavar="FILE", help="verify the server's certificate against this CA (PEM), not the system's CAs"
    )
    p.add_argument(
        "--insecure-plaintext",
        action="store_true",
        help="log in WITHOUT TLS: the password crosses the network in clear text (test servers only)",
    )
    p.add_argument("--inbox", default="INBOX")
    p.add_argument("--sent", default="Sent")
    p.add_argument("--done", default="Done", help="folder of cases finished without reply ('' for none)")
    p.add_argument(
        "--checkpoint", metavar="FILE", help="UIDVALIDITY/UID checkpoint (default ./imap-ID.checkpoint.json)"
    )
    p.add_argument("--interval", type=common.positive(float), default=60.0, help="seconds between polls")
    p.add_argument("--once", action="store_true", help="poll once and exit")
    agreements_opt(p)
    p.set_defaults(run=cmd_ingest_imap)

    dashboards = sub.add_parser("dashboards", help="Grafana dashboards, alert rules and datasources")
    actions = dashboards.add_subparsers(title="actions", required=True, metavar="ACTION")
    p = actions.add_parser(
        "provision", help="create or update (by uid) datasources, folder, dashboards and alert rules in Grafana"
    )
    p.add_argument("--grafana-url", default=settings.grafana_url, help="env AVAILABILITY_GRAFANA_URL")
    p.add_argument("--token", help="a service-account token (env AVAILABILITY_GRAFANA_TOKEN)")
    p.add_argument("--prometheus-url", default="http://localhost:9090")
    p.add_argument("--clickhouse-host", default="localhost")
    p.add_argument("--clickhouse-port", type=int, default=9000)
    p.add_argument("--clickhouse-database", default="availability")
    agreements_opt(p)
    p.set_defaults(run=cmd_dashboards_provision)
