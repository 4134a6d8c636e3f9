"""What a modality's generator deployment and the ingress's handle to it do the same way, written once.

`GeneratorReplica` is the base of a generator deployment class (Ray Serve): one engine per replica
(loaded at start; a model that fails to load leaves the replica up, not ready, with the reason, paths
removed), `@serve.batch` parameters from `user_config` (changeable live), deadlines carried with each
item (dropped unstarted once passed), a caller that leaves cancels its item, and expected refusals
returned as `Refusal`, not raised (no error in the replica's log). A subclass gives the engine loader
and its own `@serve.batch` method `_run_batch` (a decorated method holds one queue per class) that
calls `_process_batch`; it may route items elsewhere by overriding `_queue` (the image generator's
continuous batching). `GeneratorHandle` is the ingress's side: a deployment handle whose Ray errors
and refusals become the service errors of errors.py.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import logging
import os
import resource
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Generic, Protocol, TypeVar

from ray.serve.exceptions import BackPressureError, DeploymentUnavailableError
from ray.serve.handle import DeploymentHandle
from ray.util import metrics as ray_metrics

from service.config import BatchConfig
from service.errors import DeadlineExceeded, NotReady, QueueFull, ServiceError, redact_paths
from service.types import BatchStats, ModelInfo

log = logging.getLogger("djepa.service")

ItemT = TypeVar("ItemT")  # an item: the unit of batching
OutT = TypeVar("OutT")  # what the generator answers for one item: its output and its batch's stats


class Engine(Protocol):
    @property
    def info(self) -> ModelInfo: ...

    def generate(self, items: Sequence[Any]) -> list[tuple[Any, BatchStats]]: ...


@dataclasses.dataclass(frozen=True)
class Refusal:
    """The generator's answer when it will not do the work (returned, not raised): the service error's
    class, message and field (plain values: equal when they are, whichever process built them)."""

    kind: type[ServiceError]
    message: str
    field: str | None = None

    @classmethod
    def of(cls, error: ServiceError) -> Refusal:
        return cls(type(error), error.message, error.field)

    def error(self, retry_after_s: int = 1) -> ServiceError:
        """The service error; a full queue's Retry-After is the ingress's (`retry_after_s`)."""
        if issubclass(self.kind, QueueFull):
            return QueueFull(self.message, retry_after_s)
        return self.kind(self.message, self.field)


@dataclasses.dataclass
class Pending(Generic[ItemT]):
    """An item waiting in the batch queue: its deadline (unix time) and whether its batch has started
    (a cancel before that means no work was spent on it)."""

    item: ItemT
    arrived: float  # perf_counter at arrival
    deadline: float | None
    started: bool = False


LATE = Refusal(DeadlineExceeded, "the request's deadline passed before its batch started")


class GeneratorReplica:
    """Base of a generator deployment: see the module docstring."""

    modality = ""  # in messages: "the <modality> model failed to load" ("the model ..." when empty)

    def __init__(self, load: Callable[[], Engine], batch: BatchConfig, name: str | None = None) -> None:
        self.batch = batch
        self.skipped: collections.Counter[str] = collections.Counter()  # items dropped unstarted, by reason
        self.busy_s = 0.0  # wall seconds of engine calls (the batch path; the step scheduler counts its own)
        # the same count on Ray's metrics port (summed over replicas by Prometheus): work never started
        self._skipped_metric = ray_metrics.Counter(
            "djepa_skipped_items_total", description="Items dropped by the generator before their batch "
            "started: deadline passed, or caller gone (cancelled).", tag_keys=("model", "reason"))
        self._engine: Engine | None = None
        self.load_error: str | None = None
        model = f"the {self.modality} model" if self.modality else "the model"
        try:
            self._engine = load()
        except Exception as e:  # never half-serve: stay up, not ready, with the reason (paths removed)
            log.exception("%s failed to load", model)
            first = (str(e).strip().splitlines() or [""])[0]
            self.load_error = redact_paths(f"{model} failed to load: {type(e).__name__}: {first}")
        self._missing = f"{model} is not loaded"
        self.model_id = self._engine.info.id if self._engine is not None else (name or "unknown")

    def _skip(self, reason: str, count: int = 1) -> None:
        if count > 0:
            self.skipped[reason] += count
            self._skipped_metric.inc(count, tags={"model": self.model_id, "reason": reason})

    def _not_loaded(self) -> Refusal:
        return Refusal(NotReady, self.load_error or self._missing)

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            raise self._not_loaded().error()
        return self._engine

    def reconfigure(self, user_config: Mapping[str, Any]) -> None:
        """Live batching changes (`user_config` of deploy/serve.yaml)."""
        self.batch = BatchConfig.from_dict(dict(user_config))
        run_batch: Any = self._run_batch  # type: ignore[attr-defined]  # the subclass's @serve.batch method
        run_batch.set_max_batch_size(self.batch.max_batch_size)
        run_batch.set_batch_wait_timeout_s(self.batch.batch_wait_timeout_s)

    async def info(self) -> ModelInfo | Refusal:
        return self._engine.info if self._engine is not None else self._not_loaded()

    async def batch_config(self) -> BatchConfig:
        return self.batch

    async def work_stats(self) -> dict[str, Any]:
        """This replica's process id, the items it dropped unstarted (by reason), its process CPU seconds and
        the wall seconds its engine calls took (`busy_s`), its context switches (counters since start: a benchmark
        takes differences) and its Python threads now."""
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return {"pid": os.getpid(), "skipped": dict(self.skipped), "cpu_s": time.process_time(),
                "busy_s": self.busy_s, "context_switches": usage.ru_nvcsw + usage.ru_nivcsw,
                "threads": threading.active_count()}

    def refuse(self, item: Any) -> ServiceError | None:
        """Why this item will not be generated, judged before it queues (none by default)."""
        return None

    def _admit(self, item: Any, deadline: float | None) -> Refusal | None:
        """Why `item` will not queue: the model failed to load, `deadline` (unix time) has passed, or
        `refuse` said no; None when it may."""
        if self._engine is None:
            return self._not_loaded()
        if deadline is not None and time.time() >= deadline:
            self._skip("deadline")
            return LATE
        refused = self.refuse(item)
        return Refusal.of(refused) if refused is not None else None

    async def generate(self, item: Any, deadline: float | None = None) -> Any:
        """The item's answer, or a Refusal: `_admit` said no, or `deadline` passed before the item's batch
        started."""
        refusal = self._admit(item, deadline)
        return refusal if refusal is not None else await self._queue(item, deadline)

    async def _queue(self, item: Any, deadline: float | None) -> Any:
        """An admitted item's answer: through the `@serve.batch` queue (`_run_batch`)."""
        pending = Pending(item, time.perf_counter(), deadline)
        run_batch: Any = self._run_batch  # type: ignore[attr-defined]
        try:
            return await run_batch(pending)
        except asyncio.CancelledError:  # the caller left (client gone, deadline passed): Ray drops it
            if not pending.started:
                self._skip("cancelled")
            raise

    async def _process_batch(self, entries: list[Pending[Any]],
                             answer: Callable[[Any, BatchStats], OutT]) -> list[OutT | Refusal]:
        """The body of a subclass's `@serve.batch` method: live entries run in one engine call (in a thread,
        so the replica keeps queueing meanwhile); `answer(output, stats)` wraps each result."""
        start, now = time.perf_counter(), time.time()
        live = [e for e in entries if e.deadline is None or now < e.deadline]  # nobody waits for the rest
        self._skip("deadline", len(entries) - len(live))
        for e in live:
            e.started = True
        results = await asyncio.to_thread(self.engine.generate, [e.item for e in live]) if live else []
        self.busy_s += time.perf_counter() - start
        done = {id(e): answer(out, dataclasses.replace(stats, queue_wait_s=max(0.0, start - e.arrived)))
                for (out, stats), e in zip(results, live, strict=True)}
        return [done.get(id(e), LATE) for e in entries]


class GeneratorHandle(Generic[ItemT, OutT]):
    """The ingress's backend over a generator deployment handle (`what`: "the speech generator")."""

    def __init__(self, handle: DeploymentHandle[Any], retry_after_s: int, what: str) -> None:
        self.handle = handle
        self.retry_after_s = retry_after_s
        self.what = what
        self._info: ModelInfo | None = None

    def _full(self) -> QueueFull:
        return QueueFull(f"{self.what}'s queue is full", self.retry_after_s)

    def _unavailable(self) -> NotReady:
        return NotReady(f"{self.what} is not available")

    async def model_info(self, fresh: bool = False) -> ModelInfo:
        if self._info is None or fresh:
            try:
                info: ModelInfo | Refusal = await self.handle.info.remote()
                if isinstance(info, Refusal):
                    raise info.error(self.retry_after_s)
                self._info = info
            except BackPressureError:
                if self._info is None:  # busy, not broken: it answered nobody yet because it is full
                    raise self._full() from None
            except DeploymentUnavailableError:
                raise self._unavailable() from None
        assert self._info is not None
        return self._info

    async def check_ready(self) -> ModelInfo:
        """The generator's model info asked now (readiness: a dead or failed generator shows)."""
        return await self.model_info(fresh=True)

    async def generate(self, item: ItemT, deadline: float | None = None) -> OutT:
        try:
            response = self.handle.generate.remote(item, deadline)
        except BackPressureError:
            raise self._full() from None
        try:
            result: OutT | Refusal = await response
        except BackPressureError:
            raise self._full() from None
        except DeploymentUnavailableError:
            raise self._unavailable() from None
        except asyncio.CancelledError:
            response.cancel()  # type: ignore[no-untyped-call]  # deadline passed or the client left: stop the work
            raise
        if isinstance(result, Refusal):
            raise result.error(self.retry_after_s)
        return result
