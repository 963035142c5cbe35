"""The README, followed as a newcomer follows it: every shell block, in order, in a fresh copy
of the repository, with nothing of this test's environment (no activated venv, no
AVAILABILITY_* settings) — so a command that only works on the developer's machine fails here.

Each ```sh block runs as one bash script (`set -euo pipefail`), as someone pasting it into a
terminal would; lines that change the shell (`export …`, `. .venv/bin/activate`) carry over to
the later blocks, as they would in that terminal. What cannot run as written is named in
RULES with the reason, nowhere else:

- the test command itself (it is what runs this test),
- a source that needs a server of the reader's own (the IMAP poller's `imap.example`),
- the long-running services (the worker, the webhook, a paced simulation): started in the
  background, waited for until they answer, used by the lines after them, and stopped at the
  end of their block, where each must exit as documented (SIGTERM: 0; Ctrl-C: 130).

The inputs a reader brings (a queue_log, a call-record export, a mailbox archive) are written
into the fresh directory first (INPUTS), small but real. The topics get a prefix of their own
(AVAILABILITY_TOPIC_PREFIX, which the README documents) so the run shares the broker with the
other tests without meeting their consumer groups.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import unavailable

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
BLOCK = re.compile(r"^```sh\n(.*?)^```", re.MULTILINE | re.DOTALL)


@dataclass(frozen=True)
class Rule:
    """How a README line that cannot simply run is run: `skip` (with the reason), or `service`
    (started in the background; `ready` is a shell condition it must reach; `stop` the signal
    that ends it and `code` the exit status the README promises for it)."""

    pattern: str
    skip: str | None = None
    ready: str | None = None
    stop: str = "TERM"
    code: int = 0


RULES = (
    Rule(r"pytest\b", skip="the test command: it is what runs this test"),
    Rule(
        r"^availability ingest imap\b",
        skip="needs an IMAP server of the reader's (tests/integration/test_imap.py runs it)",
    ),
    # Ready when the service itself says so (its banner), not when something answers on its port:
    # a developer's own worker there would pass a curl.
    Rule(r"^availability stream\b", ready="grep -q 'stream: consuming' {log}"),
    Rule(r"^availability ingest webhook\b", ready="grep -q 'webhook: listening on' {log}"),
    # The live wall (demo and a worker's): its queue table must be drawn, then Ctrl-C ends it.
    Rule(r"^availability demo --live\b", ready="grep -q Telefonköer {log}", stop="INT"),
    Rule(r"^availability wall\b", ready="grep -q Telefonköer {log}", stop="INT"),
    # A paced simulation runs for a simulated day: it must show its clock, then Ctrl-C ends it.
    Rule(r"^availability simulate .*--speed", ready="grep -q 'simulated 20' {log}", stop="INT", code=130),
)


def rule_for(line: str) -> Rule | None:
    matches = [r for r in RULES if re.search(r.pattern, line)]
    assert len(matches) <= 1, f"README line matches several rules: {line}"
    return matches[0] if matches else None


def shell_blocks(text: str) -> list[list[str]]:
    """The README's ```sh blocks as lists of commands (continuation lines joined)."""
    blocks = []
    for body in BLOCK.findall(text):
        lines, pending = [], ""
        for raw in body.splitlines():
            pending += raw.rstrip()
            if pending.endswith("\\"):
                pending = pending[:-1] + " "
                continue
            if pending.strip():
                lines.append(pending.strip())
            pending = ""
        blocks.append(lines)
    return blocks


def without_comment(line: str) -> str:
    """The command without its trailing comment (the README writes ` # ` after a command; no
    command of it has a ` # ` of its own)."""
    return "" if line.startswith("#") else re.sub(r"\s+#\s.*$", "", line)


def carries_over(line: str) -> bool:
    """A line that changes the shell the later blocks run in."""
    return bool(re.match(r"^(export\s|\.\s|source\s)", line))


def block_script(lines: list[str], carried: list[str], number: int) -> str:
    """One README block as the bash script a reader's terminal would run, services in the
    background with their readiness awaited and their exit checked at the end."""
    out = [
        "set -euo pipefail",
        # a service that died before it was ready, or a wait that never ends: say which, show its log
        'await() { for _ in $(seq 600); do eval "$2" && return 0; kill -0 "$1" 2>/dev/null || break; sleep 0.2; done;'
        ' echo "README service not ready: $3" >&2; cat "$4" >&2; return 1; }',
        'finish() { kill -"$2" "$1"; set +e; wait "$1"; status=$?; set -e;'
        ' if [ "$status" != "$3" ]; then echo "README service exited $status, expected $3: $4" >&2; cat "$5" >&2; return 1; fi; }',
        *carried,
    ]
    stops: list[str] = []
    for n, line in enumerate(lines):
        command = without_comment(line)
        rule = rule_for(command)
        if rule is not None and rule.skip:
            out.append(f"echo {shlex.quote('README: not run (' + rule.skip + '): ' + command)} >&2")
            continue
        out.append(f"echo {shlex.quote('README$ ' + command)} >&2")
        if rule is None:
            out.append(command)
            continue
        log = f"readme-{number}-{n}.log"
        ready = (rule.ready or "true").format(log=log)
        out += [
            f"{command} >{log} 2>&1 &",
            f"svc{n}=$!",
            f"await $svc{n} {shlex.quote(ready)} {shlex.quote(command)} {log}",
        ]
        stops.insert(0, f"finish $svc{n} {rule.stop} {rule.code} {shlex.quote(command)} {log}")
    return "\n".join(out + stops) + "\n"


# The files the README's "Your own data" lines name, as a reader would have them: a queue_log
# of one answered call, an ACE contact list of one call, and a mailbox with one received mail.
INPUTS = {
    "queue_log": "1714806931|1714806931.1|IT|NONE|ENTERQUEUE||0701234567|1\n"
    "1714806943|1714806931.1|IT|SIP/201|CONNECT|12|1714806931.2|3\n"
    "1714807063|1714806931.1|IT|SIP/201|COMPLETECALLER|12|120|1\n",
    "export.csv": "",  # filled from the shipped mapping's sample in tests/unit/test_calls_csv.py
    "kundreskontra.mbox": "From medborgare@example.org Mon May  4 08:15:00 2026\n"
    "From: Medborgare <medborgare@example.org>\n"
    "To: kundreskontra@kommun.se\n"
    "Subject: Fråga om faktura\n"
    "Date: Mon, 04 May 2026 08:15:00 +0200\n"
    "Message-ID: <a1@example.org>\n"
    "Content-Type: text/plain; charset=utf-8\n"
    "\n"
    "Hej, en fråga om min faktura.\n",
}


def ace_export() -> str:
    from tests.unit.test_calls_csv import ACE_HEADER, ACE_ROWS

    return "\n".join([ACE_HEADER, *ACE_ROWS[:3]]) + "\n"  # an answer, an abandon, a callback


def fresh_copy(target: Path) -> None:
    """The repository's files as a clone would have them (tracked and new, not ignored)."""
    listed = subprocess.run(
        ["git", "-C", str(ROOT), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        check=True,
        capture_output=True,
    ).stdout.split(b"\0")
    for name in filter(None, listed):
        source = ROOT / os.fsdecode(name)
        if source.is_file():  # a file deleted in the work tree but still in the index is gone
            (target / os.fsdecode(name)).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / os.fsdecode(name))


def newcomer_env() -> dict[str, str]:
    """A login shell's environment: no venv on PATH, no settings of this project."""
    keep = {k: v for k, v in os.environ.items() if not k.startswith(("AVAILABILITY_", "VIRTUAL_ENV", "PYTHON"))}
    venv_bins = {str(Path(sys.prefix) / "bin"), str(Path(sys.executable).parent)}
    keep["PATH"] = os.pathsep.join(p for p in os.environ["PATH"].split(os.pathsep) if p not in venv_bins)
    keep["AVAILABILITY_TOPIC_PREFIX"] = f"readme-{uuid.uuid4().hex[:8]}."
    keep.pop("CI", None)  # CI changes the tests' behaviour, not the product's; a reader has none
    return keep


def test_the_readme_blocks_are_what_the_test_knows() -> None:
    """The rules above still match README lines: a renamed command is not silently unchecked."""
    commands = [without_comment(line) for block in shell_blocks(README.read_text(encoding="utf-8")) for line in block]
    for rule in RULES:
        assert any(re.search(rule.pattern, c) for c in commands), f"no README line for rule {rule.pattern}"
    assert any(carries_over(c) for c in commands), "the README never activates the venv for its later commands"


@pytest.mark.integration
def test_every_readme_command_works_as_written_in_a_fresh_copy(tmp_path: Path, kafka_bootstrap: str) -> None:
    for tool in ("git",):
        if shutil.which(tool) is None:
            unavailable(f"{tool} is not installed")
    repo = tmp_path / "availability"
    fresh_copy(repo)
    INPUTS["export.csv"] = ace_export()
    for name, text in INPUTS.items():
        (repo / name).write_text(text, encoding="utf-8")
    env = newcomer_env()  # the same HOME: pip's and kafka.sh's caches stay where they are
    env["KAFKA_BOOTSTRAP_SERVERS"] = kafka_bootstrap
    carried: list[str] = []
    for number, lines in enumerate(shell_blocks(README.read_text(encoding="utf-8"))):
        script = block_script(lines, carried, number)
        done = subprocess.run(
            ["bash", "-c", script], cwd=repo, env=env, capture_output=True, text=True, timeout=600, check=False
        )
        assert done.returncode == 0, (
            f"README block {number + 1} failed (exit {done.returncode}):\n{chr(10).join(lines)}\n"
            f"--- stderr (last 4000 characters) ---\n{done.stderr[-4000:]}\n--- stdout ---\n{done.stdout[-2000:]}"
        )
        carried += [without_comment(line) for line in lines if carries_over(without_comment(line))]


@pytest.mark.parametrize("page", ["README.md", *sorted(p.name for p in (ROOT / "docs").glob("*.md"))])
def test_every_table_ends_before_the_text_after_it(page: str) -> None:
    """A table row followed by text without a blank line swallows that text as a row (the
    README's Speed section did): each table ends at a blank line, and every line that starts
    with `|` outside code is inside a table."""
    from markdown_it import MarkdownIt

    path = ROOT / page if page == "README.md" else ROOT / "docs" / page
    source = path.read_text(encoding="utf-8")
    lines = source.splitlines()
    covered: set[int] = set()
    for token in MarkdownIt("commonmark").enable("table").parse(source):
        if token.type == "table_open" and token.map:
            start, end = token.map
            covered.update(range(start, end))
            swallowed = [n + 1 for n in range(start, end) if not lines[n].lstrip().startswith("|")]
            assert not swallowed, f"{page}:{swallowed[0]}: text runs into the table above it"
            assert end == len(lines) or not lines[end].strip(), f"{page}:{end + 1}: no blank line after a table"
    fenced = False
    for number, line in enumerate(lines):
        fenced ^= line.startswith("```")
        assert fenced or not line.startswith("|") or number in covered, f"{page}:{number + 1}: a row outside any table"
