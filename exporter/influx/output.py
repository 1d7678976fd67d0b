"""The InfluxDB output: every successful poll's points go through the disk queue to the server, in order.

Polling never waits for InfluxDB: ``take`` renders and appends to the queue (a few ms), and one sender thread
drains the queue in batches. A point is counted as written only once the server accepted its batch. While the
server is unreachable, failing or rate limiting, the same batch is retried with back-off; when the credentials
or the database are wrong, the error is logged with what to fix and retried every few minutes, the points
waiting meanwhile; points the server refuses as such are isolated by halving the batch and dropped, counted.
"""

from __future__ import annotations

import logging
import random
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import replace

from prometheus_client import CollectorRegistry, Counter
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from exporter.influx.queue import DiskQueue
from exporter.influx.writers import ACTIONS, WriteFailed, Writer
from exporter.poller import Polled
from exporter.render_influx import Point, points

log = logging.getLogger(__name__)

BATCH_SIZE = 5000  # points per request: InfluxDB's own advice for line protocol batches
MAX_BACKOFF = 30.0  # seconds; so that points flow again at most this long after the server is back
CONFIG_RETRY = 300.0  # seconds between attempts while the credentials, bucket or database are wrong
KEEP_DAY_DIGESTS_SECONDS = (
    8 * 86400.0
)  # daily_energy refreshes the last few days: older digests are of no use
FIX = {
    "unauthorized": "check ENPHASE_INFLUX_TOKEN (2.x) or ENPHASE_INFLUX_USERNAME and _PASSWORD (1.x)",
    "not_found": "check that ENPHASE_INFLUX_BUCKET (2.x) or ENPHASE_INFLUX_DATABASE (1.x) exists",
}


class InfluxOutput:
    def __init__(
        self,
        writer: Writer,
        queue: DiskQueue,
        registry: CollectorRegistry,
        *,
        batch_size: int = BATCH_SIZE,
        max_backoff: float = MAX_BACKOFF,
        config_retry: float = CONFIG_RETRY,
        clock: Callable[[], float] = time.time,
        jitter: Callable[[float, float], float] = random.uniform,
    ) -> None:
        self._writer = writer
        self._queue = queue
        self._batch_size = self._batch_limit = batch_size
        self._max_backoff = max_backoff
        self._config_retry = config_retry
        self._clock = clock
        self._jitter = jitter
        self._failures = 0  # consecutive failed attempts: the back-off exponent
        self._last_reason: str | None = None
        self._last_success: float | None = None
        self._unqueued = 0  # points dropped in the current episode of a queue that cannot be written
        self._rejected = 0  # points InfluxDB refused in the current episode of refusals
        self._queued_days: dict[tuple[str, float], int] = {}  # (site, day start) -> digest of what was queued
        self._days_lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._idle = threading.Condition()
        self._thread = threading.Thread(target=self._run, name="influxdb-writer", daemon=True)
        self._written = Counter(
            "enphase_influxdb_points_written",
            "Points the InfluxDB server accepted.",
            registry=registry,
        )
        self._write_failures = Counter(
            "enphase_influxdb_write_failures",
            "Failed write requests to InfluxDB, by reason.",
            ["reason"],
            registry=registry,
        )
        self._dropped = Counter(
            "enphase_influxdb_points_dropped",
            "Points given up: the oldest when the queue reached its bound (queue_full), refused by the "
            "server as malformed or conflicting (rejected), or that could not be queued at all, such as on "
            "a full disk (queue_error).",
            ["reason"],
            registry=registry,
        )
        for reason in ACTIONS:
            self._write_failures.labels(reason)
        for reason in ("queue_full", "rejected", "queue_error"):
            self._dropped.labels(reason)
        registry.register(_QueueCollector(self))

    # -- the poller's side ----------------------------------------------------------------------------------

    def __call__(self, polled: Polled) -> None:
        """Poller listener: the points of one successful poll."""
        self.put(points(self._changed_days_only(polled)))

    def _changed_days_only(self, polled: Polled) -> Polled:
        """``daily_energy`` answers the last few days every hour, mostly as they were: a day whose answer is
        the one already queued is not queued again (it was half of what a site queued). After any loss of
        points (a full queue, a refusal, a queue that could not be written) every day is queued again."""
        if polled.history is None:
            return polled
        site, changed = polled.site.site_id, []
        digests = {(site, day.start_timestamp): hash(repr(day)) for day in polled.history.days}
        with self._days_lock:  # polls of several sites, and the sender on a refusal, share the digests
            for day in polled.history.days:
                key = (site, day.start_timestamp)
                if self._queued_days.get(key) != digests[key]:
                    self._queued_days[key] = digests[key]
                    changed.append(day)
            oldest = polled.observed_at - KEEP_DAY_DIGESTS_SECONDS
            for key in [key for key in self._queued_days if key[1] < oldest]:
                del self._queued_days[key]
        return replace(polled, history=replace(polled.history, days=tuple(changed)))

    def _forget_queued_days(self) -> None:
        """Points were lost: the recent days go again in full at their next poll."""
        with self._days_lock:
            self._queued_days.clear()

    def put(self, new_points: Iterable[Point]) -> None:
        lines = [point.line() for point in new_points]
        try:
            dropped = self._queue.put(lines)
        except sqlite3.Error as error:  # a full disk, a file gone read-only: polling carries on regardless
            self._forget_queued_days()
            self._dropped.labels("queue_error").inc(len(lines))
            if not self._unqueued:
                log.error(
                    "Cannot queue points for InfluxDB (%s): they are dropped, counted in "
                    'enphase_influxdb_points_dropped_total{reason="queue_error"}, until the queue can be '
                    "written again",
                    error,
                )
            self._unqueued += len(lines)
            return
        if self._unqueued:
            log.warning("The InfluxDB queue takes points again; %d were dropped meanwhile", self._unqueued)
            self._unqueued = 0
        if dropped:
            self._forget_queued_days()
            self._dropped.labels("queue_full").inc(dropped)
            log.warning(
                "The InfluxDB queue reached ENPHASE_INFLUX_QUEUE_MAX_BYTES=%d; dropped the %d oldest points",
                self._queue.max_bytes,
                dropped,
            )
        self._wake.set()

    # -- life cycle -----------------------------------------------------------------------------------------

    def start(self) -> None:
        if self._queue.points:
            log.info("%d points waiting for InfluxDB from before", self._queue.points)
        log.info("Writing points to InfluxDB at %s", self._writer.target)
        self._thread.start()

    def flush(self, timeout: float) -> bool:
        """Wait until the queue is empty (True), or ``timeout`` seconds have passed or the server refused the
        credentials or the database, which waiting does not fix (False)."""
        deadline = time.monotonic() + timeout
        with self._idle:
            while self._queue.points and not self.needs_a_person:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._idle.wait(min(left, 0.5))
        return not self._queue.points

    def close(self, grace: float = 5.0) -> None:
        """Stop sending; points not yet accepted stay in the queue for the next start."""
        self._stop.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(grace)
        if not self._thread.is_alive():  # a sender stuck in a request still uses the queue and the writer
            self._queue.close()
            self._writer.close()

    @property
    def queue(self) -> DiskQueue:
        return self._queue

    @property
    def last_success(self) -> float | None:
        return self._last_success

    @property
    def needs_a_person(self) -> bool:
        """The latest attempt failed for a reason only a person can fix (credentials, bucket, database)."""
        return self._last_reason is not None and ACTIONS[self._last_reason] == "config"

    # -- the sender thread ----------------------------------------------------------------------------------

    def _run(self) -> None:
        while not self._stop.is_set():
            if not self._queue.points:
                with self._idle:
                    self._idle.notify_all()
                self._wake.wait()
                self._wake.clear()
                continue
            try:
                delay = self.send_once()
            except sqlite3.Error as error:  # reading or removing sent points; the next put logs the episode
                log.debug("The InfluxDB queue failed while sending: %s", error)
                delay = self._max_backoff
            except Exception:  # a bug here must not end the thread: the points would never leave again
                log.exception("Unexpected error while writing to InfluxDB")
                delay = self._max_backoff
            if delay > 0:
                self._stop.wait(delay)

    def send_once(self) -> float:
        """Send the oldest batch once; returns how many seconds to wait before the next attempt.

        The sender thread calls this in a loop; ``backfill`` calls it directly, to drain with a progress bar.
        """
        batch = self._queue.peek(self._batch_limit)
        try:
            self._writer.write("\n".join(line for _, line in batch))
        except WriteFailed as failed:
            self._write_failures.labels(failed.reason).inc()
            return self._after_failure(failed, batch)
        self._queue.remove_through(batch[-1][0])
        self._written.inc(len(batch))
        self._last_success = self._clock()
        self._end_rejections()
        if self._last_reason is not None:
            log.info("InfluxDB at %s accepts points again", self._writer.target)
        self._failures, self._last_reason = 0, None
        self._batch_limit = min(self._batch_size, self._batch_limit * 2)  # grow back after isolating
        return 0.0

    def _after_failure(self, failed: WriteFailed, batch: list[tuple[int, str]]) -> float:
        if failed.action == "bad_points":
            if len(batch) > 1:  # find the refused point by halving; the others go through meanwhile
                self._batch_limit = max(1, len(batch) // 2)
                return 0.0
            self._queue.remove_through(batch[0][0])
            self._dropped.labels("rejected").inc()
            self._forget_queued_days()
            if not self._rejected:  # one line per episode: a bad field can spoil every point of a poll
                log.error(
                    "InfluxDB at %s refused a point, which is dropped (%s); further refusals are counted in "
                    'enphase_influxdb_points_dropped_total{reason="rejected"} until a batch is accepted',
                    self._writer.target,
                    failed.detail,
                )
            self._rejected += 1
            return 0.0
        self._failures += 1
        self._log_failure(failed)
        if failed.action == "config":
            return self._config_retry
        if failed.retry_after is not None:
            return failed.retry_after
        ceiling = min(self._max_backoff, 2.0 ** (self._failures - 1))
        return ceiling / 2 + self._jitter(0, ceiling / 2)  # jittered, never immediate

    def _end_rejections(self) -> None:
        if self._rejected > 1:
            log.error(
                "InfluxDB at %s refused %d points in all, each dropped", self._writer.target, self._rejected
            )
        self._rejected = 0

    def _log_failure(self, failed: WriteFailed) -> None:
        """One line when writing starts failing or fails differently; then quiet until it works again."""
        if failed.reason == self._last_reason:
            log.debug("Writing to InfluxDB still fails: %s", failed)
            return
        self._last_reason = failed.reason
        waiting = self._queue.points
        if failed.action == "config":
            log.error(
                "InfluxDB at %s refuses the points (%s): %s. %d points wait in the queue; next try in %.0f s",
                self._writer.target,
                failed.detail,
                FIX[failed.reason],
                waiting,
                self._config_retry,
            )
        else:
            log.warning(
                "Cannot write to InfluxDB at %s (%s); %d points wait in the queue and are retried",
                self._writer.target,
                failed.detail,
                waiting,
            )


class _QueueCollector(Collector):
    """Queue size and last success, read at scrape time; the timestamp is absent until a first success."""

    def __init__(self, output: InfluxOutput) -> None:
        self._output = output

    def collect(self) -> Iterator[Metric]:
        queue = self._output.queue
        yield GaugeMetricFamily(
            "enphase_influxdb_queue_points", "Points waiting in the queue for InfluxDB.", value=queue.points
        )
        yield GaugeMetricFamily(
            "enphase_influxdb_queue_on_disk",
            "1 when the queue is kept on disk; 0 when its directory could not be used and points wait in "
            "memory, lost on a restart (see the log).",
            value=queue.on_disk,
        )
        yield GaugeMetricFamily(
            "enphase_influxdb_queue_bytes",
            f"Size of the waiting points, in bytes (bounded by {queue.max_bytes}).",
            value=queue.bytes,
        )
        if self._output.last_success is not None:
            yield GaugeMetricFamily(
                "enphase_influxdb_last_success_timestamp_seconds",
                "When InfluxDB last accepted a batch (Unix time).",
                value=self._output.last_success,
            )
