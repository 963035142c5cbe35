"""The stream-path commands: `topics create`, `publish`, `simulate --to-kafka`, `stream`."""

from __future__ import annotations

import argparse
import ipaddress
import sys
import time
from collections.abc import Iterable, Mapping
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from availability.cli.args import (
    KAFKA_ENV,
    SharedOptions,
    console_options,
    input_files,
    instant_arg,
    listen_arg,
    non_negative,
    positive,
)
from availability.cli.progress import STOP, Console, Meter, counted, http_url, key_text
from availability.cli.rejects import EXIT_REJECTED, RejectsWriter
from availability.wiring import Wiring
from schemas.agreements import Agreements
from schemas.errors import InputError

if TYPE_CHECKING:
    from ingest.pseudonymise import Pseudonymiser
    from stream_jobs.warehouse import Warehouse
    from stream_jobs.worker.app import WorkerCounts
    from stream_jobs.worker.serving import SqlOptions

STATUS_EVERY = 60.0  # seconds between plain progress lines when stderr is not a terminal


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
    total = sum(p.stat().st_size for p in paths)
    # The rejects file is checked (never an input, its directory exists) before Kafka is asked.
    with RejectsWriter(args.rejects, inputs=paths) as on_reject:
        ensure_topics(wiring.bootstrap, wiring.prefix)
        with wiring.retrying_publisher() as publisher, Meter("publish", total, args.status_every) as meter:
            done = 0
            for path in paths:
                for batch in read_batches(path, boundary):
                    for r in batch.rejected:
                        on_reject(r)
                    accepted += publisher.publish(batch.events)
                    rejected += len(batch.rejected)
                    read = done + batch.bytes_read
                    meter.update(f"{accepted} events published, {rejected} rejected{_read(read, total)}", read)
                done += path.stat().st_size
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
    started, first, day, days = time.monotonic(), None, None, 0
    every = args.status_every
    speed = args.speed
    # Without --speed a bar of the simulated days; with it the simulated clock, since a paced
    # run may wait minutes for its first event (an evening start waits for the morning).
    with wiring.retrying_publisher() as publisher, Meter("simulate", None if speed else args.days, every) as meter:
        for ev in events:
            accepted = boundary.accept(encode(ev))
            if isinstance(accepted, Rejection):
                raise InputError(f"the simulator made an invalid event: {accepted.reason}")
            first = first or ev.time
            if speed:
                due = (ev.time - first).total_seconds() / speed - (time.monotonic() - started)
                if due > 0.05:  # send what is due, then wait for the next event's moment
                    count += publisher.publish(pending)
                    pending = []
                    _wait(due, meter, partial(_clock_line, first, started, speed, agreements, count))
            elif ev.time.date() != day:
                day, days = ev.time.date(), days + 1
                meter.update(f"day {days} of {args.days} ({day}), {count + len(pending)} events published", days - 1)
            pending.append(accepted)
            if len(pending) >= 5000:
                count += publisher.publish(pending)
                pending = []
        count += publisher.publish(pending)
    print(f"published {count} simulated events to Kafka", file=sys.stderr)
    return 0


def _wait(seconds: float, meter: Meter, line: Any) -> None:
    """Sleep `seconds`, telling the simulated clock: refreshed each second on a terminal,
    elsewhere at once (the next event may be minutes away) and then every status interval."""
    end = time.monotonic() + seconds
    meter.update(line(seconds), now=True)
    while (left := end - time.monotonic()) > 0:
        time.sleep(min(left, 1.0))
        meter.update(line(max(0.0, end - time.monotonic())))


def _clock_line(first: datetime, started: float, speed: float, agreements: Agreements, count: int, left: float) -> str:
    """'simulated 2026-04-01 08:12:30 at 60×: 1234 events published, next in 3 s' (local time)."""
    from datetime import timedelta

    now = (first + timedelta(seconds=(time.monotonic() - started) * speed)).astimezone(agreements.timezone)
    events = "1 event" if count == 1 else f"{count} events"
    return f"simulated {now:%Y-%m-%d %H:%M:%S} at {speed:g}×: {events} published, next in {left:.0f} s"


def _read(done: int, total: int) -> str:
    return f" ({done / total:.0%} of {_size(total)} read)" if total else ""


def _size(n: float) -> str:
    for unit in ("bytes", "kB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1000
    raise AssertionError("unreachable")


def cmd_stream(args: argparse.Namespace, wiring: Wiring) -> int:
    from ingest.boundary import now_utc
    from ingest.kafka.admin import ensure_topics
    from stream_jobs.core.live import shifted_clock
    from stream_jobs.worker.app import WorkerCounts, WorkerOptions, WorkerParts, run

    wiring.warehouse_target(args.warehouse)  # before Kafka is asked: a mistake costs no wait
    agreements = wiring.agreements(args.agreements)
    if args.clock_anchor and not args.clock_start:
        raise InputError("--clock-anchor needs --clock-start")
    anchor = args.clock_anchor.timestamp() if args.clock_anchor else None
    clock = shifted_clock(args.clock_start, args.clock_speed, anchor=anchor) if args.clock_start else now_utc
    boundary = wiring.boundary(agreements, live=True, clock=clock)  # warns before the worker starts
    ensure_topics(wiring.bootstrap, wiring.prefix)
    console = Console("stream", quiet=args.quiet, status_every=args.status_every)
    counts = WorkerCounts()
    with wiring.warehouse(args.warehouse) as warehouse:
        pseudonymiser = wiring.pseudonymiser(agreements)
        parts = WorkerParts(wiring.bootstrap, wiring.prefix, agreements, warehouse, boundary, pseudonymiser, clock)
        banner = _worker_banner(args, wiring, warehouse, pseudonymiser)

        def on_started() -> None:  # Faust has started: /metrics answers
            console.banner("started, waiting for its partitions", banner)

        options = WorkerOptions(
            sql=sql_options(args, wiring),
            web_host=args.web_host,
            web_port=args.web_port,
            loglevel=args.loglevel,
            max_events=args.batch_events,
            max_seconds=args.batch_seconds,
            from_beginning=args.from_beginning,
            dead_letter_file=Path(args.dead_letter_file) if args.dead_letter_file else None,
            counts=counts,
            on_started=on_started,
            on_assigned=lambda topics: console.say(_consuming(topics)),
        )
        with console.ticking(lambda: _worker_totals(counts), lambda: _lag(counts)):
            run(parts, options)
    return 0


def _worker_banner(
    args: argparse.Namespace, wiring: Wiring, warehouse: Warehouse, pseudonymiser: Pseudonymiser
) -> list[tuple[str, str]]:
    from availability.cli.sources import event_topics
    from schemas.topics import DEAD_LETTER, with_prefix
    from stream_jobs.warehouse import redact
    from stream_jobs.worker.app import GROUP, default_dead_letter_file

    topics = event_topics(wiring.prefix)
    fallback = Path(args.dead_letter_file) if args.dead_letter_file else default_dead_letter_file(warehouse.target)
    metrics = f"{http_url(args.web_host, args.web_port)}/metrics"
    rows = [
        ("reads", f"Kafka {wiring.bootstrap}: {topics} (consumer group {wiring.prefix}{GROUP})"),
        ("writes", f"the warehouse {redact(warehouse.target)}"),
        ("rejects", f"to {with_prefix(DEAD_LETTER, wiring.prefix).name}, or the file {fallback} when it refuses"),
        ("metrics", f"{metrics} (its health too: it answers while the worker runs)"),
    ]
    if warehouse.directory is not None and args.sql_listen is not None:
        rows.append(("SQL", f"{http_url(*args.sql_listen)} (read-only, user {wiring.settings.sql_user})"))
    rows.append(("key", key_text(pseudonymiser.fingerprint, wiring.settings.uses_development_key)))
    rows.append(("stop", f"{STOP} (commits what is stored)"))
    return rows


def _consuming(topics: Mapping[str, int]) -> str:
    if not topics:
        return "consuming no partitions: the group's other workers hold them all"
    each = ", ".join(f"{topic} {n}" for topic, n in sorted(topics.items()))
    return f"consuming {sum(topics.values())} partitions ({each})"


def _worker_totals(counts: WorkerCounts) -> dict[str, int]:
    registry = counts.registry
    return {
        "events stored": counted(registry, "availability_stream_events", outcome="processed"),
        "rejected": counted(registry, "availability_stream_events", outcome="rejected"),
        "dead letters": counted(registry, "availability_stream_dead_letters"),
        "batches retried": counted(registry, "availability_stream_batch_retries"),
    }


def _lag(counts: WorkerCounts) -> str:
    lag = counts.lag()
    return f"consumer lag {lag}" if lag is not None else "consumer lag not known yet"


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
    p.add_argument(
        "--replication-factor",
        type=positive(int),
        default=1,
        metavar="N",
        help="copies of each partition a new topic gets (default 1: one broker; 3 on a cluster)",
    )
    p.set_defaults(run=cmd_topics_create)

    p = sub.add_parser("publish", help=f"JSONL events through the ingest boundary to Kafka ({KAFKA_ENV})")
    p.add_argument("files", nargs="+", metavar="FILE.jsonl")
    options.agreements(p)
    p.add_argument("--rejects", metavar="FILE", help="write rejected lines here (JSONL) instead of to stderr")
    p.add_argument(
        "--status-every",
        type=non_negative,
        default=STATUS_EVERY,
        metavar="SECONDS",
        help="when stderr is not a terminal (which gets a progress bar): a progress line this often (default 60; "
        "0: only the final line)",
    )
    p.set_defaults(run=cmd_publish)

    p = sub.add_parser("stream", help=f"the stream worker: Kafka -> warehouse, until stopped ({KAFKA_ENV})")
    options.agreements(p)
    options.warehouse(p)
    p.add_argument(
        "--web-host",
        default="127.0.0.1",
        metavar="ADDRESS",
        help="the address /metrics listens on (default 127.0.0.1, like every listener here; 0.0.0.0 in a container "
        "that Prometheus scrapes across the network)",
    )
    p.add_argument("--web-port", type=int, default=6066, metavar="PORT", help="the port of /metrics (default 6066)")
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
    p.add_argument(
        "--batch-events",
        type=positive(int),
        default=5000,
        metavar="N",
        help="write at most N events to the warehouse at once (default 5000)",
    )
    p.add_argument(
        "--batch-seconds",
        type=positive(float),
        default=0.5,
        metavar="S",
        help="write what has arrived at least every S seconds, however few events (default 0.5)",
    )
    console_options(p, "events stored and rejected, dead letters, batches retried, consumer lag")
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
        metavar="X",
        help="with --clock-start: the clock runs this many times as fast as the wall clock (as simulate --speed; "
        "default 1)",
    )
    p.add_argument(
        "--clock-anchor",
        type=instant_arg,
        metavar="TIME",
        help="with --clock-start: the wall-clock instant (RFC 3339) at which the clock reads --clock-start "
        "(default: when the worker starts), so a publisher paced by the same clock agrees with it",
    )
    p.set_defaults(run=cmd_stream)
