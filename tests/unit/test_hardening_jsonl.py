"""Hardening (issue #7, item 17) of the JSONL reader: bounded memory whatever the line lengths.

A line longer than the event limit is rejected with its line number and size without ever being
held whole; batches are bounded by bytes as well as by lines; line numbers stay exact across
chunk boundaries, blank lines, CRLF, a byte-order mark and a last line without a line end.
"""

from __future__ import annotations

import json
import tracemalloc

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from ingest.boundary import Rejection
from ingest.jsonl import read_batches
from schemas.events import MAX_EVENT_BYTES


class Recorder:
    """A stand-in boundary: accepts every line except those starting with b"bad", and
    remembers the longest input it was given."""

    def __init__(self) -> None:
        self.longest = 0

    def accept(self, raw: bytes) -> bytes | Rejection:
        self.longest = max(self.longest, len(raw))
        if raw.startswith(b"bad"):
            return Rejection("bad line")
        return raw.rstrip(b"\r\n")


class Raising:
    def accept(self, raw: bytes) -> Rejection:
        raise UnicodeDecodeError("utf-8", raw, 0, 1, "invalid start byte")


def collect(batches):
    batches = list(batches)
    return batches, [e for b in batches for e in b.events], [r for b in batches for r in b.rejected]


def test_a_line_longer_than_the_limit_is_rejected_by_size_and_never_read_whole(tmp_path):
    path = tmp_path / "huge.jsonl"
    huge = 30 * 1024 * 1024  # 30 MiB without its line end
    with path.open("wb") as f:
        f.write(b"one\n")
        f.write(b'{"x": "' + b"a" * (huge - 9) + b'"}\n')
        f.write(b"three\r\n")
    boundary = Recorder()
    tracemalloc.start()
    try:
        _, events, rejects = collect(read_batches(path, boundary))  # type: ignore[arg-type]
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert events == [b"one", b"three"]
    assert [(r.line, r.file) for r in rejects] == [(2, str(path))]
    # The reason names the size and the limit; the rejects file keeps only the line's head.
    assert rejects[0].reason == f"line is {huge} bytes, more than the {MAX_EVENT_BYTES} bytes an event may have"
    assert rejects[0].raw == b'{"x": "' + b"a" * (1024 - 7)
    assert boundary.longest <= MAX_EVENT_BYTES + 1  # the boundary never saw it
    # Reading it line by line held all 30 MiB at once; chunks keep the peak to a few MiB.
    assert peak < 8 * 1024 * 1024, peak


def test_a_line_at_the_limit_goes_to_the_boundary_and_one_byte_more_does_not(tmp_path):
    path = tmp_path / "edge.jsonl"
    at_limit = b"a" * MAX_EVENT_BYTES
    path.write_bytes(at_limit + b"\r\n" + b"b" * (MAX_EVENT_BYTES + 1) + b"\n" + at_limit)
    _, events, rejects = collect(read_batches(path, Recorder()))  # type: ignore[arg-type]
    assert events == [at_limit, at_limit]  # with CRLF, and as the last line without a line end
    assert [(r.line, r.reason.split(",")[0]) for r in rejects] == [(2, f"line is {MAX_EVENT_BYTES + 1} bytes")]


def test_batches_are_bounded_by_bytes_as_well_as_lines(tmp_path):
    path = tmp_path / "wide.jsonl"
    line = b"w" * 10_240  # 10 KiB + "\n" = 10 241 bytes a line
    path.write_bytes((line + b"\n") * 30)
    batches, events, _ = collect(read_batches(path, Recorder(), batch_size=20_000, batch_bytes=64 * 1024))  # type: ignore[arg-type]
    # 6 lines hold 61 440 bytes < 65 536; the 7th reaches 71 680 >= 65 536 and closes the batch:
    # 30 lines -> 7, 7, 7, 7, then the last 2.
    assert [len(b.events) for b in batches] == [7, 7, 7, 7, 2]
    assert len(events) == 30
    assert [b.bytes_read for b in batches] == [7 * 10_241 * i for i in (1, 2, 3, 4)] + [30 * 10_241]


def test_a_boundary_that_raises_rejects_the_line_instead_of_stopping_the_file(tmp_path):
    path = tmp_path / "latin1.jsonl"
    path.write_bytes('{"subject": "Fråga"}\n'.encode("latin-1") * 2)
    _, events, rejects = collect(read_batches(path, Raising()))  # type: ignore[arg-type]
    assert events == []
    assert [r.line for r in rejects] == [1, 2]
    assert rejects[0].reason.startswith("could not be read (UnicodeDecodeError:"), rejects[0].reason


def test_failed_events_map_back_to_their_line_and_raw_bytes(tmp_path):
    path = tmp_path / "map.jsonl"
    path.write_bytes(b"first\n\nbad\nfourth\r\nfifth")
    (batch,) = list(read_batches(path, Recorder()))  # type: ignore[arg-type]
    fourth = batch.events[1]
    rejected = batch.reject(fourth, "could not be derived (ValueError: x)")
    assert (rejected.file, rejected.line, rejected.reason, rejected.raw) == (
        str(path),
        4,
        "could not be derived (ValueError: x)",
        b"fourth",
    )


LINE = st.one_of(
    st.binary(max_size=30).map(lambda b: b.replace(b"\n", b"")),
    st.sampled_from([b"", b"  ", b"\r", b"bad", b"x" * 20, b"x" * 21, b"y" * 22 + b"\r", b"z" * 60]),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    lines=st.lists(LINE, max_size=25),
    final_newline=st.booleans(),
    bom=st.booleans(),
    chunk=st.integers(min_value=1, max_value=40),
    batch_size=st.integers(min_value=1, max_value=5),
)
def test_line_numbers_and_contents_match_a_plain_split_for_any_chunking(
    tmp_path, lines, final_newline, bom, chunk, batch_size
):
    """The reference: split the whole file at b"\\n"; line n is the n-th piece; blank pieces are
    skipped; a piece longer than the limit (not counting a final "\\r") is rejected."""
    limit = 20
    assume(not (lines and lines[0].startswith(b"\xef\xbb\xbf")))  # a byte-order mark only when `bom`
    content = (b"\xef\xbb\xbf" if bom else b"") + b"\n".join(lines) + (b"\n" if final_newline and lines else b"")
    path = tmp_path / "any.jsonl"
    path.write_bytes(content)
    batches, events, rejects = collect(
        read_batches(path, Recorder(), batch_size, max_line_bytes=limit, chunk_bytes=chunk)  # type: ignore[arg-type]
    )
    expected_events, expected_rejects = [], []
    for number, piece in enumerate(lines, start=1):
        size = len(piece) - piece.endswith(b"\r")
        if size > limit:
            expected_rejects.append((number, "too long"))
        elif piece.strip():
            if piece.startswith(b"bad"):
                expected_rejects.append((number, "bad line"))
            else:
                expected_events.append(piece.rstrip(b"\r\n"))
    assert events == expected_events
    assert [(r.line, "too long" if r.reason.startswith("line is") else r.reason) for r in rejects] == expected_rejects
    assert batches[-1].bytes_read == len(content)
    for b in batches[:-1]:
        assert len(b.events) + len(b.rejected) == batch_size


def test_a_crlf_line_of_exactly_the_limit_is_an_event_as_with_lf(tmp_path):
    """Review finding: the reader handed the boundary the line with its CR, so an event of
    exactly MAX_EVENT_BYTES was accepted from an LF file and rejected from a CRLF one."""
    from ingest.boundary import Boundary
    from ingest.pseudonymise import Pseudonymiser
    from schemas.agreements import load_agreements

    agreements = load_agreements()
    boundary = Boundary(agreements, Pseudonymiser(b"k" * 32, agreements))
    event = {"specversion": "1.0", "id": "e1", "source": "callguide", "type": "call.ended",
             "time": "2026-04-01T08:00:00Z", "data": {"call_id": "c1"}, "datacontenttype": ""}  # fmt: skip
    padding = MAX_EVENT_BYTES - len(json.dumps(event).encode())
    event["datacontenttype"] = "x" * padding  # dropped by the boundary; only the size matters here
    line = json.dumps(event).encode()
    assert len(line) == MAX_EVENT_BYTES
    for end in (b"\n", b"\r\n"):
        path = tmp_path / f"one{len(end)}.jsonl"
        path.write_bytes(line + end)
        batches = list(read_batches(path, boundary))
        assert [len(b.events) for b in batches] == [1], end
        assert [r.reason for b in batches for r in b.rejected] == [], end
