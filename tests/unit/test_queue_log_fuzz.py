"""Property tests of the queue_log adapter: no line, however malformed, raises; each line gives
exactly one Record (at once, or held and given later, at the latest by flush()); every event is
valid by the contract."""

from __future__ import annotations

from pathlib import Path

import msgspec
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ingest.sources.queue_log import VERBS, QueueLogTranslator, read_queue_log
from schemas.events import decode

VERB = st.sampled_from([*VERBS, "DID", "RINGNOANSWER", "OUTDIAL", "QUEUESTART", "FOO", "enter", ""])
FIELD = st.one_of(
    st.sampled_from(["NONE", "", "c1", "c2", "7009", "q1", "PJSIP/7009", "Local/7@x/n", "Agent/7"]),
    st.text(max_size=12),
)
TIME = st.one_of(
    st.integers(min_value=0, max_value=10**12).map(str),
    st.sampled_from(["1700000000", "1700000000.5", "2012-07-04 07:33:21.1", "2012-13-45 99:99", "-1", "1e9", ""]),
    st.text(max_size=8),
)
LINE = st.one_of(
    st.builds(
        lambda t, c, q, a, v, d: "|".join([t, c, q, a, v, *d]),
        TIME,
        FIELD,
        FIELD,
        FIELD,
        VERB,
        st.lists(FIELD, max_size=6),
    ),
    st.text(max_size=200),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(LINE, max_size=30))
def test_each_line_gives_one_record(lines: list[str]) -> None:
    t = QueueLogTranslator()
    records = []
    for n, line in enumerate(lines):
        records += t.feed(line, f"f:{n}")
    records += t.flush()
    assert sorted(r.origin for r in records) == sorted(f"f:{n}" for n in range(len(lines)))
    for r in records:
        assert (len(r.events) > 0) + (r.ignored is not None) + (r.rejected is not None) == 1
        for e in r.events:
            decode(msgspec.json.encode(e))  # the adapter's events are valid (the boundary still checks ranges)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.text(max_size=80), max_size=15), st.sampled_from(["native", "pbxware", "realtime"]))
def test_any_file_reads(tmp_path: Path, rows: list[str], layout: str) -> None:
    header = {
        "native": [],
        "pbxware": ["uid,date_time,callid,queue_name,type,event,param1,param2,param3,entpos,expos,htime,ttime,time"],
        "realtime": ["time,callid,queuename,agent,event,data1,data2,data3,data4,data5"],
    }[layout]
    # Python's text files end a line at \n, \r and \r\n: a row is one line only without them.
    lines = [r.replace("\r", "").replace("\n", "") for r in rows]
    path = tmp_path / "ql"
    path.write_text("".join(f"{x}\n" for x in header + lines), encoding="utf-8")
    records = list(read_queue_log(path))
    # One record a line; a CSV header sets the layout and is no record.
    expected = len(lines)
    assert len(records) == expected
