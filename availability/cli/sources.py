"""Real sources: `import queue-log|calls-csv|mail` (files -> canonical events, to a JSONL file or
to Kafka), `ingest queue-log --follow` (a growing queue_log -> Kafka), and `sources` (each
source's health in the warehouse). docs/sources.md."""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from availability.cli.args import KAFKA_ENV, KEY_NOTE, SharedOptions, console_options, positive
from availability.cli.progress import STOP, Console, key_text
from availability.cli.rejects import EXIT_REJECTED, RejectsWriter
from availability.wiring import Wiring
from schemas.errors import InputError

if TYPE_CHECKING:
    from zoneinfo import ZoneInfo

    from ingest.sources.importer import Refused
    from ingest.sources.records import Record
    from schemas.events import Event

BATCH = 5000  # events a Kafka publish or a file write takes at once


# -- import ---------------------------------------------------------------------------------------


def cmd_import(args: argparse.Namespace, wiring: Wiring) -> int:
    from ingest.sources.importer import ImportStats, accept_records

    paths = [Path(p) for p in args.paths]
    for path in paths:
        if not path.exists():
            raise InputError(f"{path}: no such file or directory")
        if args.kind != "mail" and not path.is_file():  # a mail archive may be a directory
            raise InputError(f"{path}: not a file")
    agreements = wiring.agreements(args.agreements)
    read = _reader(args, agreements, wiring)  # a mapping or option mistake: one line before any work
    boundary = wiring.boundary(agreements)
    stats = ImportStats()
    outputs = [Path(args.out)] if args.out else []
    for out in outputs:
        if not out.parent.is_dir():
            raise InputError(f"--out {out}: cannot write (no such directory {out.parent})")
        if any(out.exists() and out.samefile(path) for path in paths):
            raise InputError(f"--out {out}: is an input; name another file")
    with RejectsWriter(args.rejects, inputs=paths + outputs) as rejects:
        records = read(paths)
        events = accept_records(records, boundary, stats, _refused_to(rejects))
        if args.to_kafka:
            sent = _publish(wiring, events)
            where = f"published {sent} events to Kafka"
        else:
            fingerprint = boundary.pseudonymiser.fingerprint
            where = f"wrote {_write(Path(args.out), events, fingerprint)} events to {args.out}"
    print(f"{where}; {stats.summary()}", file=sys.stderr)
    for line in stats.by_reason():
        print(line, file=sys.stderr)
    return EXIT_REJECTED if stats.refusals else 0


def _reader(args: argparse.Namespace, agreements: Any, wiring: Wiring) -> Callable[[list[Path]], Iterator[Record]]:
    """The adapter of `args.kind`, configured: the paths -> their records."""
    if args.kind == "queue-log":
        from ingest.sources.queue_log import QueueLogOptions, read_queue_log

        options = QueueLogOptions(source=args.source, queue_map=dict(args.queue_map), timezone=args.timezone)
        return lambda paths: _each(paths, lambda path: read_queue_log(path, options))
    if args.kind == "calls-csv":
        from ingest.sources.calls_csv import load_mapping, read_calls_csv

        mapping = load_mapping(args.mapping)
        return lambda paths: _each(paths, lambda path: read_calls_csv(path, mapping))
    from ingest.sources.mail_archive import read_mail_archive

    if args.mailbox not in agreements.mailboxes:
        known = ", ".join(agreements.mailboxes) or "none"
        raise InputError(f"unknown mailbox '{args.mailbox}' (the agreements define: {known})")
    if not args.address:
        wiring.tell(
            "warning: no --address: no message can be told to be the mailbox's reply, so every message counts as "
            "received and no case is answered"
        )
    # One call for all paths: an inbox and a sent archive are threaded (and de-duplicated) together.
    return lambda paths: _each([paths], lambda p: read_mail_archive(p, args.mailbox, args.address, source=args.source))


def _each(paths: Iterable[Any], read: Callable[[Any], Iterable[Record]]) -> Iterator[Record]:
    """The records of each path in turn; a file that cannot be read is one line naming it."""
    for path in paths:
        try:
            yield from read(path)
        except OSError as exc:  # an error of the reading only: the writing's are the consumer's
            name = exc.filename or path
            raise InputError(f"{name}: cannot read ({exc.strerror or type(exc).__name__})") from None


def _refused_to(rejects: RejectsWriter) -> Callable[[Refused], None]:
    def refused(r: Refused) -> None:
        rejects.record(r.origin, r.reason, r.text)

    return refused


def _write(path: Path, events: Iterator[Event], fingerprint: str) -> int:
    """The events as JSONL, each marked with the key's fingerprint, so `process` takes them as
    they are (ingest/boundary.py); written to a temporary name and renamed when complete."""
    from schemas.events import encode

    partial = path.with_name(f".{path.name}.partial")
    count = 0
    try:
        with partial.open("wb") as handle:
            for event in events:  # reading errors come as InputError (_each), never as OSError
                event.pseudonymised = fingerprint
                handle.write(encode(event) + b"\n")
                count += 1
        partial.replace(path)
    except OSError as exc:
        partial.unlink(missing_ok=True)
        raise InputError(f"{path}: cannot write ({exc.strerror})") from None
    except BaseException:  # a reading error or Ctrl-C: no half file left behind
        partial.unlink(missing_ok=True)
        raise
    return count


def _publish(wiring: Wiring, events: Iterator[Event]) -> int:
    from ingest.kafka.admin import ensure_topics

    ensure_topics(wiring.bootstrap, wiring.prefix)
    sent = 0
    with wiring.retrying_publisher() as publisher:
        batch: list[Event] = []
        for event in events:
            batch.append(event)
            if len(batch) >= BATCH:
                sent += publisher.publish(batch)
                batch = []
        sent += publisher.publish(batch)
    return sent


def event_topics(prefix: str) -> str:
    """The event topics' names, for a banner."""
    from schemas.topics import EVENT_TOPICS, with_prefix

    return ", ".join(with_prefix(t, prefix).name for t in EVENT_TOPICS)


def publishing_rows(wiring: Wiring, fingerprint: str) -> list[tuple[str, str]]:
    """A source's banner rows on where its events go and with which key."""
    return [
        ("writes", f"Kafka {wiring.bootstrap}: {event_topics(wiring.prefix)}"),
        ("key", key_text(fingerprint, wiring.settings.uses_development_key)),
    ]


# -- sources --------------------------------------------------------------------------------------


def cmd_sources(args: argparse.Namespace, wiring: Wiring) -> int:
    from stream_jobs.worker.source_health import reason_kind

    with wiring.warehouse(args.warehouse, create=False) as wh:
        health = wh.source_health()
    now = datetime.now(UTC)
    rows = []
    for source, events, newest, stored, rejects in health:
        kinds: Counter[str] = Counter()
        for reason, n, _ in rejects:
            kinds[reason_kind(reason)] += n
        rows.append(
            {
                "source": source,
                "events": events,
                "newest_event": _z(newest),
                "last_stored": _z(stored),
                "rejected": sum(kinds.values()),
                # A line rejected once stays counted after a later run stored it (agreements
                # corrected): the last time says whether the rejects are still coming.
                "last_rejected": _z(max((last for _, _, last in rejects), default=None)),
                "rejected_by_reason": dict(kinds.most_common()),
            }
        )
    if args.format == "json":
        print(json.dumps({"evaluated_at": _z(now), "sources": rows}, ensure_ascii=False, indent=2))
    else:
        _table(rows, now, sys.stdout)
    return 0


def _z(t: datetime | None) -> str | None:
    """An instant the warehouse gave (UTC, maybe without its zone) as RFC 3339 with Z."""
    from schemas.events import utc_z

    return utc_z(t if t.tzinfo else t.replace(tzinfo=UTC)) if t is not None else None


def _table(rows: list[dict[str, Any]], now: datetime, out: IO[str]) -> None:
    if not rows:
        print("no source has sent anything to this warehouse yet", file=out)
        return
    width = max(len("source"), *(len(r["source"] or "(unnamed)") for r in rows))
    heads = f"{'events':>9}  {'newest event':<17}  {'last stored':<17}  {'rejected':>8}  last rejected"
    print(f"{'source':<{width}}  {heads}", file=out)
    for r in rows:
        print(
            f"{r['source'] or '(unnamed)':<{width}}  {r['events']:>9}  {_minute(r['newest_event']):<17}  "
            f"{_minute(r['last_stored']):<17}  {r['rejected']:>8}  {_minute(r['last_rejected'])}",
            file=out,
        )
        for reason, n in r["rejected_by_reason"].items():
            print(f"{'':<{width}}    {n:>7} × {reason}", file=out)


def _minute(text: str | None) -> str:
    return text[:16].replace("T", " ") if text else "–"


# -- the parsers ----------------------------------------------------------------------------------


def queue_map_arg(text: str) -> tuple[str, str]:
    name, sep, queue = text.partition("=")
    if not sep or not name or not queue:
        raise argparse.ArgumentTypeError(f"'{text}' is not NAME=QUEUE_ID (e.g. IT=kundreskontra)")
    return name, queue


def timezone_arg(text: str) -> ZoneInfo:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        return ZoneInfo(text)
    except (ZoneInfoNotFoundError, ValueError):
        raise argparse.ArgumentTypeError(f"unknown time zone '{text}' (e.g. Europe/Stockholm)") from None


def queue_log_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--queue-map",
        type=queue_map_arg,
        action="append",
        default=[],
        metavar="NAME=ID",
        help="a queue_log queue name -> the agreements' queue id (repeat; others are lower-cased)",
    )
    p.add_argument(
        "--timezone",
        type=timezone_arg,
        default=UTC,
        metavar="TZ",
        help="the zone of times written without one (Wazo's table); epoch seconds need none (default UTC)",
    )
    p.add_argument("--source", default="asterisk", help="the events' source name (default asterisk)")


def add_commands(sub: Any, options: SharedOptions) -> None:
    p = sub.add_parser(
        "import",
        help="real sources -> canonical events: an Asterisk queue_log, a call-record CSV, a mail archive",
        epilog="Writes --out FILE.jsonl (then `availability process FILE.jsonl`) or publishes --to-kafka "
        f"({KAFKA_ENV}). Exit 2 when some records were rejected. {KEY_NOTE} See docs/sources.md.",
    )
    kinds = p.add_subparsers(title="kinds", required=True, metavar="KIND", dest="kind")
    q = kinds.add_parser("queue-log", help="Asterisk/FreePBX/PBXware/Wazo queue_log: native lines or a table export")
    q.add_argument("paths", nargs="+", metavar="FILE")
    queue_log_options(q)
    c = kinds.add_parser("calls-csv", help="a call-record CSV export, read by a YAML mapping")
    c.add_argument("paths", nargs="+", metavar="FILE")
    c.add_argument("--mapping", required=True, metavar="M.yaml", help="columns -> the call lifecycle (docs/sources.md)")
    m = kinds.add_parser("mail", help="a mailbox's archive: .eml files, an mbox file or a Maildir")
    m.add_argument("paths", nargs="+", metavar="PATH")
    m.add_argument("--mailbox", required=True, metavar="ID", help="the mailbox id in the agreements")
    m.add_argument(
        "--address",
        action="append",
        default=[],
        metavar="ADDR",
        help="the mailbox's own address (repeat for aliases): a message from it is a reply; without one, "
        "every message counts as received",
    )
    m.add_argument("--source", help="the events' source name (default mail/ID)")
    for kind in (q, c, m):
        options.agreements(kind)
        target = kind.add_mutually_exclusive_group(required=True)
        target.add_argument("--out", metavar="FILE.jsonl", help="write the events here (pseudonymised)")
        target.add_argument("--to-kafka", action="store_true", help=f"publish them to Kafka ({KAFKA_ENV})")
        kind.add_argument("--rejects", metavar="FILE", help="write rejected records here (JSONL) instead of stderr")
        kind.set_defaults(run=cmd_import)

    p = sub.add_parser("sources", help="each source's health: events stored, newest event, rejects by reason")
    options.warehouse(p)
    p.add_argument(
        "--format", choices=["table", "json"], default="table", help="a table to read, or JSON (default table)"
    )
    p.set_defaults(run=cmd_sources)


def add_ingest_queue_log(sources: Any, options: SharedOptions) -> None:
    """`ingest queue-log --follow FILE` (under `ingest`, beside the webhook and IMAP)."""
    p = sources.add_parser(
        "queue-log",
        help=f"tail a growing Asterisk queue_log -> Kafka, with a checkpoint that survives rotation ({KAFKA_ENV})",
    )
    p.add_argument("--follow", required=True, metavar="FILE", help="the queue_log to follow")
    p.add_argument(
        "--checkpoint",
        metavar="FILE",
        help="where the position is kept (default ./queue-log-NAME.checkpoint.json; private: it may hold caller ids)",
    )
    p.add_argument(
        "--interval",
        type=positive(float),
        default=1.0,
        metavar="S",
        help="seconds between looks at the file (default 1)",
    )
    p.add_argument("--once", action="store_true", help="read what is there, publish it and exit")
    queue_log_options(p)
    options.agreements(p)
    console_options(p, "lines read, events published, records rejected", loglevel="info")
    p.set_defaults(run=cmd_follow_queue_log)


def cmd_follow_queue_log(args: argparse.Namespace, wiring: Wiring) -> int:
    """Tail the queue_log to Kafka: read, translate, pass the live boundary, publish, and only
    then move the checkpoint (ingest/sources/follow.py): a crash reads the last batch again,
    whose stable ids make the repeat harmless. SIGTERM stops after the batch at hand."""
    import logging
    import signal

    from ingest.kafka.admin import ensure_topics
    from ingest.log_limit import limit_repeats, plain_logging
    from ingest.sources.follow import Follower, FollowStats, run_follow
    from ingest.sources.importer import ImportStats, accept_records
    from ingest.sources.queue_log import QueueLogOptions, QueueLogTranslator

    plain_logging(args.loglevel)
    limit_repeats()
    log = logging.getLogger("ingest.sources.follow")
    agreements = wiring.agreements(args.agreements)
    boundary = wiring.boundary(agreements, live=True)
    path = Path(args.follow)
    checkpoint = Path(args.checkpoint) if args.checkpoint else Path(f"queue-log-{path.name}.checkpoint.json")
    follower = Follower(path, checkpoint, args.interval)
    options = QueueLogOptions(source=args.source, queue_map=dict(args.queue_map), timezone=args.timezone)
    translator = QueueLogTranslator(options, follower.state)
    stats = ImportStats()
    stopping: list[int] = []
    signal.signal(signal.SIGTERM, lambda signum, _: stopping.append(signum))

    def refused(r: Refused) -> None:  # the origin (file:line) and the reason: never the line itself
        log.warning("%s: rejected: %s", r.origin, r.reason)

    ensure_topics(wiring.bootstrap, wiring.prefix)
    console = Console("queue-log", quiet=args.quiet, status_every=args.status_every)
    where = follower.position
    reads = f"{path} from line {where[1] + 1} of {where[0]}" if where else f"{path} (not there yet: waiting for it)"
    console.banner(
        f"following {path}" + (" once" if args.once else f", looking every {args.interval:g} s"),
        [
            ("reads", reads),
            ("keeps", f"its place in {checkpoint}"),
            *publishing_rows(wiring, boundary.pseudonymiser.fingerprint),
            ("stop", f"{STOP} (the batch under way is published and checkpointed first)"),
        ],
    )
    lines = FollowStats()
    totals = lambda: {  # noqa: E731
        "lines read": lines.lines,
        "events published": stats.events,
        "rejected": stats.refusals,
    }
    with wiring.retrying_publisher() as publisher, console.ticking(totals):

        def accept_and_publish(records: list[Record]) -> None:
            publisher.publish(list(accept_records(records, boundary, stats, refused)))
            log.info("%s: %s", path, stats.summary())

        run_follow(follower, translator, accept_and_publish, stop=lambda: bool(stopping), once=args.once, stats=lines)
    follower.close()
    print(f"queue-log {path}: {stats.summary()}", file=sys.stderr)
    for line in stats.by_reason():
        print(line, file=sys.stderr)
    return 0
