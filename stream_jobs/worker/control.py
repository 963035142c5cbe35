"""The worker's control socket: work another command asks of the process that owns the warehouse.

`availability rederive` on a warehouse directory a worker holds cannot open it; it asks the
worker over a Unix socket in that directory (owner-only, like the directory: no network, no
password). The work runs on the batch consumer's loop between batches, one step at a time, so
it never writes beside the sink (the Deriver and the warehouse's writer belong to one thread)
and ingestion goes on between steps.

Protocol: `POST /rederive` with `{"month": "YYYY-MM" | null, "fingerprint": "…"}`; the answer is
JSON lines: `{"progress": {...}}` per step, then `{"done": {...}}` or `{"error": "…"}`.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import json
import logging
import queue
import socket
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

from schemas.errors import AvailabilityError
from stream_jobs.worker.loop_thread import LoopThread

log = logging.getLogger(__name__)
STEP_SECONDS = 1.0  # work done between two batches, at most about this long


class ControlError(AvailabilityError):
    """The worker refused or could not do what was asked; the message says why."""


@dataclass
class Job:
    """Steps to run between batches; each yields its progress, the last returns the result."""

    steps: Iterator[dict[str, Any]]
    progress: queue.SimpleQueue[dict[str, Any]] = field(default_factory=queue.SimpleQueue)
    result: Future[dict[str, Any]] = field(default_factory=Future)


class Jobs:
    """Handed over from the control socket's thread; run by the batch consumer (`run_pending`)."""

    def __init__(self) -> None:
        self._waiting: queue.SimpleQueue[Job] = queue.SimpleQueue()
        self._current: Job | None = None

    def submit(self, steps: Iterator[dict[str, Any]]) -> Job:
        job = Job(steps)
        self._waiting.put(job)
        return job

    def run_pending(self) -> None:
        """Run steps of the current job for about STEP_SECONDS; call between batches."""
        deadline = time.monotonic() + STEP_SECONDS
        while time.monotonic() < deadline:
            if self._current is None:
                try:
                    self._current = self._waiting.get_nowait()
                except queue.Empty:
                    return
            job = self._current
            try:
                job.progress.put(next(job.steps))
            except StopIteration as done:
                job.result.set_result(done.value or {})
                self._current = None
            except Exception as exc:  # the job's own failure: reported to its caller, the worker goes on
                log.exception("a control job failed")
                job.result.set_exception(exc)
                self._current = None


class ControlServer:
    """Listens on a socket in a private temporary directory (a warehouse's path may be longer than
    a socket's 108 bytes; the holder file says where it is). `start_job(request) -> steps` turns
    a request into a job's steps, or raises ControlError with the reason."""

    def __init__(self, jobs: Jobs, start_job: Callable[[dict[str, Any]], Iterator[dict[str, Any]]]) -> None:
        self.path = Path(tempfile.mkdtemp(prefix="availability-control-")) / "control.sock"
        self.jobs, self.start_job = jobs, start_job
        self._thread = LoopThread("control")

    def start(self) -> None:
        self._thread.start(self._listen)

    def stop(self) -> None:
        self._thread.stop()
        with contextlib.suppress(OSError):
            self.path.unlink()
            self.path.parent.rmdir()

    async def _listen(self) -> web.AppRunner:
        app = web.Application()
        app.router.add_post("/rederive", self._rederive)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.UnixSite(runner, str(self.path)).start()
        self.path.chmod(0o600)
        return runner

    async def _rederive(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "application/x-ndjson"})
        await response.prepare(request)
        try:
            job = self.jobs.submit(self.start_job(await request.json()))
        except (ControlError, ValueError) as exc:
            await response.write(_line({"error": str(exc)}))
            return response
        loop = asyncio.get_running_loop()
        while not job.result.done():
            await asyncio.sleep(0.2)
            while not job.progress.empty():
                await response.write(_line({"progress": job.progress.get_nowait()}))
        try:
            done = await loop.run_in_executor(None, job.result.result)
        except Exception as exc:
            await response.write(_line({"error": f"{type(exc).__name__}: {exc}"}))
        else:
            await response.write(_line({"done": done}))
        return response


def request(path: Path, action: str, body: dict[str, Any], on_progress: Callable[[dict[str, Any]], None]) -> Any:
    """Ask the worker listening on `path`; returns its result, raises ControlError with its reason."""
    connection = _UnixConnection(str(path))
    try:
        connection.request("POST", f"/{action}", json.dumps(body), {"Content-Type": "application/json"})
        answer = connection.getresponse()
        for raw in answer:
            line = json.loads(raw)
            if "progress" in line:
                on_progress(line["progress"])
            elif "done" in line:
                return line["done"]
            elif "error" in line:
                raise ControlError(line["error"])
    except OSError as exc:
        raise ControlError(f"the worker's control socket {path} does not answer ({exc})") from None
    finally:
        connection.close()
    raise ControlError("the worker stopped before it finished (see its log); run the command again")


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str) -> None:
        super().__init__("localhost", timeout=None)  # a rederive takes as long as it takes
        self.socket_path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.connect(self.socket_path)
        self.sock = sock


def _line(record: dict[str, Any]) -> bytes:
    return (json.dumps(record, default=str) + "\n").encode()
