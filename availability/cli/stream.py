"""The stream-path commands: `topics create`, `publish`, `simulate --to-kafka`, `stream`."""

from __future__ import annotations

import argparse
import ipaddress
import sys
import time
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from availability.cli.args import KAFKA_ENV, SharedOptions, input_files, instant_arg, listen_arg, positive
from availability.cli.rejects import EXIT_REJECTED, RejectsWriter
from availability.wiring import Wiring
from schemas.agreements import Agreements
from schemas.errors import InputError

if TYPE_CHECKING:
    from stream_jobs.worker.serving import SqlOptions


def cmd_topics_create(args: argparse.Namespace, wiring: Wiring) -> int:
    from ingest.kafka.admin import ensure_topics

    for line in ensure_topics(wiring.bootstrap, wiring.prefix, args.replication_factor):
        print(line)
    return 0


def cmd_publish(args: argparse.Namespace, wiring: Wiring) -> int:
    """The JSONL ingest boundary, then Kafka: the stream-path twin of `process`."""
    from ingest.jsonl import read_batches
    from ingest.kafka.admin import ensure_topics

    paths = input_files(args.files)
    boundary = wiring.boundary(wiring.agreements(args.agreements))
    accepted = rejected = 0
    # The rejects file is checked (never an input, its directory exists) before Kafka is asked.
    with RejectsWriter(args.rejects, inputs=paths) as on_reject:
        ensure_topics(wiring.bootstrap, wiring.prefix)
        with wiring.retrying_publisher() as publisher:
            for path in paths:
                for batch in read_batches(path, boundary):
                    for r in batch.rejected:
                        on_reject(r)
                    accepted += publisher.publish(batch.events)
                    rejected += len(batch.rejected)
    print(f"published {accepted} events to Kafka, {rejected} rejected", file=sys.stderr)
    return EXIT_REJECTED if rejected else 0


def publish_simulation(args: argparse.Namespace, wiring: Wiring, agreements: Agreements, events: Iterable[Any]) -> int:
    """`simulate --to-kafka`: through the ingest boundary to Kafka, at `--speed`× real time."""
    from ingest.boundary import Rejection
    from ingest.kafka.admin import ensure_topics
    from schemas.events import encode

    boundary = wiring.boundary(agreements)
    ensure_topics(wiring.bootstrap, wiring.prefix)
    count = 0
    pending: list[Any] = []
    started, first = time.monotonic(), None
    with wiring.retrying_publisher() as publisher:
        for ev in events:
            accepted = boundary.accept(encode(ev))
            if isinstance(accepted, Rejection):
                raise InputError(f"the simulator made an invalid event: {accepted.reason}")
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


def cmd_stream(args: argparse.Namespace, wiring: Wiring) -> int:
    from ingest.boundary import now_utc
    from ingest.kafka.admin import ensure_topics
    from stream_jobs.core.live import shifted_clock
    from stream_jobs.worker.app import WorkerOptions, WorkerParts, run

    wiring.warehouse_target(args.warehouse)  # before Kafka is asked: a mistake costs no wait
    agreements = wiring.agreements(args.agreements)
    if args.clock_anchor and not args.clock_start:
        raise InputError("--clock-anchor needs --clock-start")
    anchor = args.clock_anchor.timestamp() if args.clock_anchor else None
    clock = shifted_clock(args.clock_start, args.clock_speed, anchor=anchor) if args.clock_start else now_utc
    boundary = wiring.boundary(agreements, live=True, clock=clock)  # warns before the worker starts
    ensure_topics(wiring.bootstrap, wiring.prefix)
    options = WorkerOptions(
        sql=sql_options(args, wiring),
        web_port=args.web_port,
        loglevel=args.loglevel,
        max_events=args.batch_events,
        max_seconds=args.batch_seconds,
        from_beginning=args.from_beginning,
        dead_letter_file=Path(args.dead_letter_file) if args.dead_letter_file else None,
    )
    with wiring.warehouse(args.warehouse) as warehouse:
        pseudonymiser = wiring.pseudonymiser(agreements)
        parts = WorkerParts(wiring.bootstrap, wiring.prefix, agreements, warehouse, boundary, pseudonymiser, clock)
        run(parts, options)
    return 0


def sql_options(args: argparse.Namespace, wiring: Wiring) -> SqlOptions:
    """The read-only SQL interface: loopback needs no password; any other address does."""
    from stream_jobs.worker.serving import SqlOptions
    from stream_jobs.worker.sql_http import SqlLimits

    listen = args.sql_listen
    password = wiring.settings.sql_password.get_secret_value() if wiring.settings.sql_password else ""
    if listen is not None and not password and not _loopback(listen[0]):
        raise InputError(
            f"--sql-listen {listen[0]}:{listen[1]} is reachable from other machines: set AVAILABILITY_SQL_PASSWORD "
            "(and AVAILABILITY_SQL_USER) for the read-only user first"
        )
    limits = SqlLimits(max_concurrent=args.sql_max_queries, max_seconds=args.sql_max_seconds)
    return SqlOptions(listen, wiring.settings.sql_user, password, limits)


def _loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def add_commands(sub: Any, options: SharedOptions) -> None:
    topics = sub.add_parser("topics", help=f"Kafka topics ({KAFKA_ENV})")
    topics_sub = topics.add_subparsers(title="actions", required=True, metavar="ACTION")
    p = topics_sub.add_parser("create", help="create the topics, or check they match their definitions")
    p.add_argument("--replication-factor", type=positive(int), default=1)
    p.set_defaults(run=cmd_topics_create)

    p = sub.add_parser("publish", help=f"JSONL events through the ingest boundary to Kafka ({KAFKA_ENV})")
    p.add_argument("files", nargs="+", metavar="FILE.jsonl")
    options.agreements(p)
    p.add_argument("--rejects", metavar="FILE", help="write rejected lines here (JSONL) instead of to stderr")
    p.set_defaults(run=cmd_publish)

    p = sub.add_parser("stream", help=f"the stream worker: Kafka -> warehouse, until stopped ({KAFKA_ENV})")
    options.agreements(p)
    options.warehouse(p)
    p.add_argument("--web-port", type=int, default=6066, help="port of /metrics (default 6066)")
    p.add_argument(
        "--sql-listen",
        type=listen_arg,
        default=("127.0.0.1", 8123),
        metavar="HOST:PORT",
        help="with an embedded warehouse: serve read-only SQL on ClickHouse's HTTP interface here, for reports and "
        "Grafana (default 127.0.0.1:8123; `off` for none; user and password from AVAILABILITY_SQL_USER and "
        "AVAILABILITY_SQL_PASSWORD, which any address but loopback requires)",
    )
    p.add_argument(
        "--sql-max-queries", type=positive(int), default=2, metavar="N", help="SQL queries running at once (default 2)"
    )
    p.add_argument(
        "--sql-max-seconds",
        type=positive(float),
        default=60.0,
        metavar="S",
        help="a SQL query's time limit, enforced by the engine (default 60)",
    )
    p.add_argument("--batch-events", type=positive(int), default=5000, help="write at most N events a batch")
    p.add_argument("--batch-seconds", type=positive(float), default=0.5, help="write a batch at least every S seconds")
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
        type=instant_arg,
        metavar="TIME",
        help="demos and tests: the live metrics' clock starts at TIME (RFC 3339) instead of the wall clock's now",
    )
    p.add_argument(
        "--clock-speed",
        type=positive(float),
        default=1.0,
        help="with --clock-start: the clock runs this many times as fast as the wall clock (as simulate --speed)",
    )
    p.add_argument(
        "--clock-anchor",
        type=instant_arg,
        metavar="TIME",
        help="with --clock-start: the wall-clock instant (RFC 3339) at which the clock reads --clock-start "
        "(default: when the worker starts), so a publisher paced by the same clock agrees with it",
    )
    p.set_defaults(run=cmd_stream)
