"""Continuous batching: a replica-level loop that advances every in-flight image one AR step at a time.

No Ray here (deployments.py feeds it from handle calls; tests drive it directly). The loop:
1. admits waiting images at a step boundary, up to `max_in_flight` (first come, first served);
2. drops the work of callers that left (their `submit` was cancelled) and answers the images whose
   deadline passed with DeadlineExceeded, at every step, in flight or waiting;
3. runs ONE step for all in-flight images together (`StepEngine.advance`: one backbone forward, one
   head call, in a worker thread so the replica keeps accepting requests). The worker runs the steps up
   to the first that finishes an image, makes a preview due, finds a caller gone, passes a deadline or
   ends with an image waiting for a free slot (at most `MAX_RUN` steps) before it comes back: a new
   image still joins at the next step boundary, and the event loop's round trip (a thread hand-off and
   a wake-up, slower in a busy Ray replica than the step itself at small batches) is paid per run;
4. answers finished images at once and hands due previews to their callers.
At most `max_in_flight + max_waiting` images are held; `submit` past that raises QueueFull (429).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import deque
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from service.errors import DeadlineExceeded, QueueFull
from service.types import BatchStats, GeneratedImage, ImageItem, ImageOutput, ImagePreview

# steps one worker call may run: bounds how late the deadline of an image that starts waiting during a run while
# every slot is taken is seen (with a free slot, a waiting image ends the run after the current step)
MAX_RUN = 16


class StepEngine(Protocol):
    """What the scheduler needs of an engine (service/engine.py's TorchImageEngine has it)."""

    def start(self, item: ImageItem) -> Any:
        """The state of a new image (ValueError for an item the model cannot do)."""
        ...

    def advance(self, states: Sequence[Any]) -> list[Any]:
        """One AR step for every state together; the next states, in order."""
        ...

    def is_done(self, state: Any) -> bool: ...

    def step_of(self, state: Any) -> int: ...

    def outputs(self, items: Sequence[ImageItem], states: Sequence[Any]) -> list[ImageOutput]:
        """The finished images (decoded, PNG)."""
        ...

    def preview(self, state: Any) -> bytes:
        """A cheap PNG of the image so far."""
        ...


Preview = ImagePreview  # the image so far (service/types.py)


@dataclass
class _Job:
    item: ImageItem
    future: asyncio.Future[GeneratedImage]
    deadline: float | None  # unix time
    arrived: float  # perf_counter
    preview_every: int  # 0: none
    on_preview: Callable[[Preview], None] | None
    state: Any = None
    admitted: float | None = None  # perf_counter at admission
    sizes: list[int] = field(default_factory=list)  # in-flight images at each of its steps


@dataclass
class _StepResult:
    """What one step produced for one job (computed in the worker thread)."""

    state: Any = None
    error: BaseException | None = None
    output: ImageOutput | None = None
    preview: bytes | None = None


class StepScheduler:
    """Iteration-level scheduling of image generation over a `StepEngine` (see the module doc).

    `on_drop(reason, started)` is called for each image dropped unfinished: reason "deadline" or
    "cancelled"; `started`: whether any step was spent on it."""

    def __init__(self, engine: StepEngine, max_in_flight: int = 32, max_waiting: int = 64, retry_after_s: int = 1,
                 on_drop: Callable[[str, bool], None] | None = None, clock: Callable[[], float] = time.time) -> None:
        if max_in_flight < 1 or max_waiting < 0:
            raise ValueError(f"max_in_flight must be >= 1 and max_waiting >= 0, got {max_in_flight}, {max_waiting}")
        self.engine = engine
        self.max_in_flight, self.max_waiting, self.retry_after_s = max_in_flight, max_waiting, retry_after_s
        self.on_drop = on_drop
        self.clock = clock
        self.waiting: deque[_Job] = deque()
        self.active: list[_Job] = []
        self.steps = 0  # steps run (one backbone forward each)
        self.rows = 0  # image-steps run (the sum of every step's images)
        self.busy_s = 0.0  # wall seconds of the steps (worker thread)
        self.phases = 0  # the sum of every step's distinct AR step indices (1 per step: all images in lockstep)
        self.calls = 0  # worker calls (each runs one step, or several while every slot is taken)
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def held(self) -> int:
        """Images held for callers still waiting (a cancelled one leaves at the next step boundary, but
        frees its place at once)."""
        return sum(not job.future.done() for job in (*self.waiting, *self.active))

    def configure(self, max_in_flight: int, max_waiting: int, retry_after_s: int | None = None) -> None:
        """New limits (live): images already held stay; admission follows the new limits."""
        if max_in_flight < 1 or max_waiting < 0:
            raise ValueError(f"max_in_flight must be >= 1 and max_waiting >= 0, got {max_in_flight}, {max_waiting}")
        self.max_in_flight, self.max_waiting = max_in_flight, max_waiting
        if retry_after_s is not None:
            self.retry_after_s = retry_after_s

    async def submit(self, item: ImageItem, deadline: float | None = None, preview_every: int = 0,
                     on_preview: Callable[[Preview], None] | None = None) -> GeneratedImage:
        """The image of `item` once its last step is done. Raises QueueFull when the replica holds its
        maximum, DeadlineExceeded once `deadline` (unix time) passes; cancelling the caller drops the work
        at the next step boundary. `on_preview` gets a Preview every `preview_every` steps (not the last)."""
        if deadline is not None and self.clock() >= deadline:
            self._dropped("deadline", False)
            raise DeadlineExceeded("the request's deadline passed before its generation started")
        if self.held >= self.max_in_flight + self.max_waiting:
            raise QueueFull(f"the image generator holds its maximum of {self.max_in_flight} images in flight "
                            f"and {self.max_waiting} waiting", self.retry_after_s)
        loop = asyncio.get_running_loop()
        job = _Job(item, loop.create_future(), deadline, time.perf_counter(), max(0, preview_every), on_preview)
        self.waiting.append(job)
        self._ensure_loop()
        return await job.future  # a cancelled caller cancels the future: the loop drops the job

    async def stream(self, item: ImageItem, deadline: float | None = None,
                     preview_every: int = 1) -> AsyncIterator[ImagePreview | GeneratedImage]:
        """`submit` as a stream: a preview every `preview_every` steps, then the image. Errors are raised
        as `submit`'s; leaving the iteration early cancels the work."""
        previews: asyncio.Queue[ImagePreview] = asyncio.Queue()
        work = asyncio.ensure_future(self.submit(item, deadline, max(1, preview_every), previews.put_nowait))
        try:
            while not work.done() or not previews.empty():
                if not previews.empty():
                    yield previews.get_nowait()
                    continue
                next_preview = asyncio.ensure_future(previews.get())
                await asyncio.wait({next_preview, work}, return_when=asyncio.FIRST_COMPLETED)
                if next_preview.done():
                    yield next_preview.result()
                else:
                    next_preview.cancel()
            yield work.result()
        finally:
            work.cancel()  # no effect once the work is done

    # ------------------------------------------------------------------ the loop

    def _ensure_loop(self) -> None:
        if self._wake is None:
            self._wake = asyncio.Event()
        self._wake.set()
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._loop())

    def _dropped(self, reason: str, started: bool) -> None:
        if self.on_drop is not None:
            self.on_drop(reason, started)

    def _expire_and_reap(self) -> None:
        """Drop cancelled jobs; fail the jobs whose deadline passed (in flight and waiting)."""
        now = self.clock()
        for queue_is_active, jobs in ((True, list(self.active)), (False, list(self.waiting))):
            for job in jobs:
                reason = None
                if job.future.done():  # cancelled by its caller
                    reason = "cancelled"
                elif job.deadline is not None and now >= job.deadline:
                    reason = "deadline"
                    job.future.set_exception(DeadlineExceeded(
                        "the request's deadline passed during its generation" if queue_is_active
                        else "the request's deadline passed before its generation started"))
                if reason is not None:
                    (self.active if queue_is_active else self.waiting).remove(job)
                    self._dropped(reason, job.state is not None)

    def _admit(self) -> None:
        while self.waiting and len(self.active) < self.max_in_flight:
            job = self.waiting.popleft()
            job.admitted = time.perf_counter()
            self.active.append(job)

    async def _loop(self) -> None:
        assert self._wake is not None
        while True:
            self._expire_and_reap()
            self._admit()
            if not self.active:
                self._wake.clear()
                if not self.waiting:
                    await self._wake.wait()
                continue
            jobs = list(self.active)
            phases = len({len(job.sizes) for job in jobs})  # steps each job has run
            started = time.perf_counter()
            try:
                results, steps = await asyncio.to_thread(self._step, jobs, MAX_RUN, self._first_deadline())
            except Exception as e:  # the step failed as a whole: every image in it fails with the cause
                for job in jobs:
                    if not job.future.done():
                        job.future.set_exception(e)
                    self.active.remove(job)
                continue
            self.calls += 1
            self.steps += steps
            self.rows += len(jobs) * steps
            self.phases += phases * steps
            self.busy_s += time.perf_counter() - started
            for job, result in zip(jobs, results, strict=True):
                self._deliver(job, result, len(jobs), steps)

    def _first_deadline(self) -> float | None:
        deadlines = [job.deadline for job in (*self.active, *self.waiting) if job.deadline is not None]
        return min(deadlines) if deadlines else None

    def _deliver(self, job: _Job, result: _StepResult, size: int, steps: int) -> None:
        if result.error is not None:
            if not job.future.done():
                job.future.set_exception(result.error)
            self.active.remove(job)
            return
        job.state = result.state
        job.sizes.extend([size] * steps)
        if job.future.done():  # cancelled while its step ran: dropped at the next reap
            return
        if result.output is not None:
            assert job.admitted is not None
            now = time.perf_counter()
            # no forward pass belongs to one image here: each image is its own record (first=True), its size the
            # mean number of images that shared its steps, its generation time from admission to its answer
            stats = BatchStats(uuid.uuid4().hex[:12], round(sum(job.sizes) / len(job.sizes)), now - job.admitted,
                               job.admitted - job.arrived, True)
            job.future.set_result(GeneratedImage(result.output, stats))
            self.active.remove(job)
        elif result.preview is not None and job.on_preview is not None:
            job.on_preview(Preview(self.engine.step_of(job.state), job.item.num_steps, result.preview))

    def _step(self, jobs: Sequence[_Job], run: int, deadline: float | None) -> tuple[list[_StepResult], int]:
        """Steps for `jobs` (worker thread): start the new ones, advance all `run` times at most (stopping after
        a step that finishes an image, makes a preview due, finds a caller gone, passes `deadline` or leaves an
        image waiting for a free slot), decode the finished. Returns the results and the number of steps run."""
        results = [_StepResult() for _ in jobs]
        states: list[Any] = []
        live: list[int] = []
        for k, job in enumerate(jobs):
            if job.state is None:
                try:
                    job_state = self.engine.start(job.item)
                except ValueError as e:
                    results[k].error = e
                    continue
            else:
                job_state = job.state
            states.append(job_state)
            live.append(k)
        steps = 0
        while True:
            states = self.engine.advance(states) if states else states
            steps += 1
            if steps >= run or not states or self._stop(jobs, live, states, deadline):
                break
        for k, state in zip(live, states, strict=True):
            results[k].state = state
        done = [k for k in live if self.engine.is_done(results[k].state)]
        if done:
            outputs = self.engine.outputs([jobs[k].item for k in done], [results[k].state for k in done])
            for k, out in zip(done, outputs, strict=True):
                results[k].output = out
        for k in live:
            job, state = jobs[k], results[k].state
            if results[k].output is None and self._preview_due(job, state):
                results[k].preview = self.engine.preview(state)
        return results, steps

    def _preview_due(self, job: _Job, state: Any) -> bool:
        return bool(job.preview_every and job.on_preview is not None
                    and self.engine.step_of(state) % job.preview_every == 0)

    def _stop(self, jobs: Sequence[_Job], live: Sequence[int], states: Sequence[Any],
              deadline: float | None) -> bool:
        """Whether the event loop has something to do after this step (read from the worker thread: a
        future's done() is a flag read; `submit` only appends to `waiting`, `active` changes on the loop only)."""
        if deadline is not None and self.clock() >= deadline:
            return True
        if self.waiting and len(self.active) < self.max_in_flight:  # an image can join at this boundary
            return True
        return any(self.engine.is_done(state) or self._preview_due(jobs[k], state) or jobs[k].future.done()
                   for k, state in zip(live, states, strict=True))
