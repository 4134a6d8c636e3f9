"""The continuous-batching scheduler on its own (no Ray): a real engine (djepa-tiny), real asyncio.

Admission at step boundaries up to max_in_flight, the bounded wait (QueueFull -> 429), deadlines at
every step (504), cancelled callers' work dropped, and images equal to the engine's static path.
Time is a test clock the test moves itself (no timed tests).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import io
import threading
import time
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import numpy as np
import pytest
from PIL import Image

from service.config import EngineConfig
from service.engine import TorchImageEngine
from service.errors import DeadlineExceeded, QueueFull, to_answer
from service.scheduler import Preview, StepScheduler
from service.types import GeneratedImage, ImageItem

T = TypeVar("T")


@pytest.fixture(scope="module")
def engine() -> TorchImageEngine:
    return TorchImageEngine.load(EngineConfig(preset="djepa-tiny"))


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def run(main: Callable[[], Coroutine[Any, Any, T]]) -> T:
    return asyncio.run(main())


def pixels(png: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(png)), dtype=np.int16)


def item(class_id: int = 3, seed: int = 0, steps: int = 4, cfg: float = 2.0, temp: float = 1.0) -> ImageItem:
    return ImageItem(class_id, seed, steps, cfg, temp)


def test_an_image_alone_equals_the_static_path(engine: TorchImageEngine, one_thread: None) -> None:
    it = item(3, 7)

    async def main() -> GeneratedImage:
        return await StepScheduler(engine).submit(it)

    got = run(main)
    (expected, _), = engine.generate([it])
    assert got.output == expected  # same PNG bytes: one request through the steps = the sequential sampler
    assert got.stats.size == 1 and got.stats.first


def test_mixed_settings_share_steps_and_match_their_alone_images(engine: TorchImageEngine, one_thread: None) -> None:
    items = [item(1, 1, 4, 2.0), item(2, 2, 6, 1.0, 0.8), item(5, 3, 2, 3.0), item(9, 4, 5, 1.5, 1.2)]
    drops: list[tuple[str, bool]] = []

    async def main() -> tuple[list[GeneratedImage], int]:
        sched = StepScheduler(engine, max_in_flight=8, on_drop=lambda r, s: drops.append((r, s)))
        got = await asyncio.gather(*(sched.submit(i) for i in items))
        return list(got), sched.steps

    got, steps = run(main)
    assert steps == 6  # all joined at the first boundary; the longest has 6 steps
    for it, g in zip(items, got, strict=True):
        (alone, _), = engine.generate([it])
        assert (g.output.class_id, g.output.seed) == (it.class_id, it.seed)
        assert np.abs(pixels(g.output.png) - pixels(alone.png)).max() <= 1  # float rounding of batch sizes only
    assert [g.stats.size for g in got] == [4, 3, 4, 3]  # the mean number of images sharing its steps
    assert drops == []


def test_admission_is_bounded_by_max_in_flight(engine: TorchImageEngine, one_thread: None) -> None:
    async def main() -> tuple[list[GeneratedImage], int]:
        sched = StepScheduler(engine, max_in_flight=2, max_waiting=8)
        got = await asyncio.gather(*(sched.submit(item(c, c, steps=3)) for c in range(5)))
        return list(got), sched.steps

    got, steps = run(main)
    assert steps == 9  # waves of 2, 2, 1 images, 3 steps each
    assert [g.stats.size for g in got] == [2, 2, 2, 2, 1]
    assert all(g.stats.queue_wait_s >= 0 for g in got)


class CountingEngine:
    """The real engine, counting its steps (the test clock below reads the count)."""

    def __init__(self, engine: TorchImageEngine) -> None:
        self.engine = engine
        self.advances = 0

    def advance(self, states: Any) -> Any:
        self.advances += 1
        return self.engine.advance(states)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.engine, name)


def test_while_every_slot_is_taken_one_worker_call_runs_to_the_first_finish(
        engine: TorchImageEngine, one_thread: None) -> None:
    items = [item(1, 1, steps=3), item(2, 2, steps=6), item(3, 3, steps=2)]

    async def main() -> tuple[list[GeneratedImage], StepScheduler]:
        sched = StepScheduler(CountingEngine(engine), max_in_flight=2)
        got = await asyncio.gather(*(sched.submit(i) for i in items))
        return list(got), sched

    got, sched = run(main)
    # full: images 1 and 2 run 3 steps in one call (image 1 finishes); full again with image 3: 2 steps in one
    # call (image 3 finishes); image 2 alone is not full: its last step in a call of its own
    assert (sched.steps, sched.calls) == (6, 3)
    assert [g.stats.size for g in got] == [2, 2, 2]  # image 2: round((5 * 2 + 1) / 6)
    for it, g in zip(items, got, strict=True):
        (alone, _), = engine.generate([it])
        assert np.abs(pixels(g.output.png) - pixels(alone.png)).max() <= 1


def test_with_free_slots_a_run_goes_on_until_an_image_waits(engine: TorchImageEngine, one_thread: None) -> None:
    """Alone, an image runs its steps in one worker call (no round trip through the event loop per step); an
    image that arrives during the run ends it after the current step and joins at that boundary."""
    late: list[concurrent.futures.Future[GeneratedImage]] = []

    async def main() -> tuple[list[GeneratedImage], StepScheduler]:
        loop = asyncio.get_running_loop()
        counting = CountingEngine(engine)
        sched = StepScheduler(counting, max_in_flight=4)
        alone = await sched.submit(item(5, 5, steps=6))
        assert (sched.steps, sched.calls) == (6, 1)

        def advance(states: Any) -> Any:  # the worker thread: after the first image's step 2, a second arrives
            out = counting.engine.advance(states)
            counting.advances += 1
            if counting.advances == 8:
                late.append(asyncio.run_coroutine_threadsafe(sched.submit(item(4, 4, steps=2)), loop))
                taken = time.monotonic() + 30  # bounded: the event loop takes the submit at once
                while not sched.waiting and time.monotonic() < taken:
                    threading.Event().wait(0.001)
            return out

        counting.advance = advance  # type: ignore[method-assign]
        first = await sched.submit(item(1, 1, steps=6))
        return [alone, first, await asyncio.wrap_future(late[0])], sched

    (alone, first, second), sched = run(main)
    # the first image: steps 1-2 in one call (the second image waits), 3-4 together (the second finishes),
    # then 5-6 in one call
    assert (sched.steps, sched.calls) == (12, 4)
    assert second.stats.size == 2 and first.stats.size == 1  # round(8 / 6): shared steps 3 and 4 only
    assert alone.stats.size == 1


def test_a_deadline_stops_a_run_of_steps(engine: TorchImageEngine, one_thread: None) -> None:
    counting = CountingEngine(engine)
    drops: list[tuple[str, bool]] = []

    async def main() -> StepScheduler:
        sched = StepScheduler(counting, max_in_flight=1, clock=lambda: 1000.0 + 10 * counting.advances,
                              on_drop=lambda r, s: drops.append((r, s)))
        with pytest.raises(DeadlineExceeded, match="during its generation"):
            await sched.submit(item(1, 1, steps=8), deadline=1035.0)
        return sched

    sched = run(main)
    assert (sched.steps, sched.calls) == (4, 1)  # the clock passed the deadline after step 4: the run stopped there
    assert drops == [("deadline", True)]


def test_a_new_image_joins_at_the_next_step_boundary(engine: TorchImageEngine, one_thread: None) -> None:
    seen: list[tuple[str, int]] = []

    async def main() -> list[GeneratedImage]:
        sched = StepScheduler(engine, max_in_flight=4)
        late: list[asyncio.Task[GeneratedImage]] = []

        def on_preview(p: Preview) -> None:
            seen.append(("first", p.step))
            if p.step == 2:  # the second image arrives while the first is at step 2 of 6
                late.append(asyncio.ensure_future(sched.submit(item(4, 4, steps=2))))

        first = await sched.submit(item(1, 1, steps=6), preview_every=1, on_preview=on_preview)
        return [first, await late[0]]

    first, second = run(main)
    assert seen == [("first", k) for k in range(1, 6)]  # a preview after each step but the last
    assert second.stats.size == 2 and first.stats.size == 1  # round(8 / 6): shared steps 3 and 4 only


def test_the_wait_queue_is_bounded(engine: TorchImageEngine, one_thread: None) -> None:
    async def main() -> None:
        sched = StepScheduler(engine, max_in_flight=1, max_waiting=1, retry_after_s=3)
        held = [asyncio.ensure_future(sched.submit(item(c, c))) for c in (1, 2)]
        await asyncio.sleep(0)  # both are held (one in flight, one waiting)
        with pytest.raises(QueueFull) as info:
            await sched.submit(item(3, 3))
        answer = to_answer(info.value, "rid")
        assert answer.http_status == 429 and answer.headers["Retry-After"] == "3"
        await asyncio.gather(*held)
        assert sched.held == 0
        await sched.submit(item(3, 3))  # room again

    run(main)


def test_deadlines_are_checked_at_every_step(engine: TorchImageEngine, one_thread: None) -> None:
    clock = Clock()
    drops: list[tuple[str, bool]] = []

    async def main() -> None:
        sched = StepScheduler(engine, clock=clock, on_drop=lambda r, s: drops.append((r, s)))
        with pytest.raises(DeadlineExceeded):  # already passed: refused before any work
            await sched.submit(item(), deadline=clock.now - 1)

        def later(p: Preview) -> None:
            if p.step == 2:
                clock.now += 100  # past the deadline of the first image, not the second's

        short = asyncio.ensure_future(sched.submit(item(1, 1, steps=8), deadline=clock.now + 10, preview_every=1,
                                                   on_preview=later))
        other = asyncio.ensure_future(sched.submit(item(2, 2, steps=8), deadline=clock.now + 1000))
        with pytest.raises(DeadlineExceeded, match="during its generation") as info:
            await short
        assert to_answer(info.value, "rid").http_status == 504
        assert (await other).output.seed == 2
        assert sched.steps == 8  # the first stopped after its step 2; the second ran all 8

    run(main)
    assert drops == [("deadline", False), ("deadline", True)]


def test_a_cancelled_callers_work_is_dropped(engine: TorchImageEngine, one_thread: None) -> None:
    drops: list[tuple[str, bool]] = []

    async def main() -> None:
        sched = StepScheduler(engine, on_drop=lambda r, s: drops.append((r, s)))
        tasks: list[asyncio.Task[GeneratedImage]] = []

        def leave(p: Preview) -> None:
            if p.step == 1:
                tasks[0].cancel()  # the client went away after one step

        tasks.append(asyncio.ensure_future(sched.submit(item(1, 1, steps=8), preview_every=1, on_preview=leave)))
        tasks.append(asyncio.ensure_future(sched.submit(item(2, 2, steps=3))))
        with pytest.raises(asyncio.CancelledError):
            await tasks[0]
        await tasks[1]
        assert sched.steps == 3  # the cancelled image took no step after its first
        assert sched.held == 0

    run(main)
    assert drops == [("cancelled", True)]


def test_an_invalid_item_fails_alone(engine: TorchImageEngine, one_thread: None) -> None:
    async def main() -> None:
        sched = StepScheduler(engine)
        bad = asyncio.ensure_future(sched.submit(item(99, 1)))
        good = asyncio.ensure_future(sched.submit(item(2, 2)))
        with pytest.raises(ValueError, match="class id"):
            await bad
        assert (await good).output.class_id == 2

    run(main)


def test_limits_are_checked() -> None:
    with pytest.raises(ValueError):
        StepScheduler(None, max_in_flight=0)  # type: ignore[arg-type]


def test_a_stream_yields_previews_then_the_image(engine: TorchImageEngine, one_thread: None) -> None:
    async def main() -> list[Preview | GeneratedImage]:
        sched = StepScheduler(engine)
        return [event async for event in sched.stream(item(2, 5, steps=6), preview_every=2)]

    events = run(main)
    previews, final = events[:-1], events[-1]
    assert [p.step for p in previews if isinstance(p, Preview)] == [2, 4]
    assert all(isinstance(p, Preview) and p.num_steps == 6 and pixels(p.png).shape == (16, 16) for p in previews)
    assert isinstance(final, GeneratedImage)
    (alone, _), = engine.generate([item(2, 5, steps=6)])
    assert final.output == alone


def test_leaving_a_stream_cancels_its_work(engine: TorchImageEngine, one_thread: None) -> None:
    drops: list[tuple[str, bool]] = []

    async def main() -> int:
        sched = StepScheduler(engine, on_drop=lambda r, s: drops.append((r, s)))
        stream = sched.stream(item(2, 5, steps=8), preview_every=1)
        async for event in stream:
            assert isinstance(event, Preview) and event.step == 1
            break
        await stream.aclose()  # type: ignore[attr-defined]
        await sched.submit(item(3, 3, steps=2))  # the loop moves on: the left stream is reaped
        return sched.steps

    assert run(main) <= 4  # 1 step, maybe 1 more before the cancel is seen, then 2 for the other
    assert drops == [("cancelled", True)]
