"""The thread boundary: coroutines in, results out, a clean stop; a queue for the Tk thread."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import inspect
import os
import select
import threading
from collections.abc import Iterator

import pytest

from app.bridge import Latest, LoopThread, TrayCalls, UiQueue


@pytest.fixture
def loop_thread() -> Iterator[LoopThread]:
    thread = LoopThread(name="test-loop")
    thread.start()
    yield thread
    thread.stop(timeout=5)


async def whoami() -> str:
    await asyncio.sleep(0)
    return threading.current_thread().name


def test_submit_runs_on_the_loop_thread(loop_thread: LoopThread) -> None:
    assert loop_thread.submit(whoami()).result(5) == "test-loop"


def test_errors_reach_the_caller(loop_thread: LoopThread) -> None:
    async def fail() -> None:
        raise ValueError("boom")

    with pytest.raises(ValueError, match="boom"):
        loop_thread.submit(fail()).result(5)


def test_cancelling_the_future_cancels_the_task(loop_thread: LoopThread) -> None:
    started, cancelled = threading.Event(), threading.Event()

    async def wait_forever() -> None:
        started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise

    future = loop_thread.submit(wait_forever())
    assert started.wait(5)
    future.cancel()
    assert cancelled.wait(5)


def test_stop_runs_the_shutdown_then_ends_the_thread() -> None:
    thread = LoopThread()
    thread.start()
    order: list[str] = []

    async def shutdown() -> None:
        await asyncio.sleep(0.01)
        order.append(f"shutdown on {threading.current_thread().name}")

    assert thread.stop(shutdown(), timeout=5)
    assert order == ["shutdown on telex-loop"]
    assert not thread.running


def test_stop_cancels_leftover_tasks_so_their_cleanup_runs() -> None:
    thread = LoopThread()
    thread.start()
    started, cleaned_up = threading.Event(), threading.Event()

    async def background() -> None:
        started.set()
        try:
            await asyncio.sleep(3600)
        finally:
            cleaned_up.set()

    thread.submit(background())
    assert started.wait(5)
    assert thread.stop(timeout=5)
    assert cleaned_up.is_set()


def test_a_hanging_shutdown_is_given_up_after_the_timeout() -> None:
    thread = LoopThread()
    thread.start()

    async def hang() -> None:
        await asyncio.sleep(3600)

    assert not thread.stop(hang(), timeout=0.2)
    assert not thread.running  # the loop still stops: the hanging task is cancelled


def test_a_failing_shutdown_still_stops_the_loop(caplog: pytest.LogCaptureFixture) -> None:
    thread = LoopThread()
    thread.start()

    async def fail() -> None:
        raise RuntimeError("close failed")

    thread.stop(fail(), timeout=5)
    assert not thread.running
    assert "Shutdown failed" in caplog.text


def test_submit_after_stop_is_refused_without_a_never_awaited_warning() -> None:
    thread = LoopThread()
    thread.start()
    thread.stop(timeout=5)
    coro = whoami()
    with pytest.raises(RuntimeError, match="not running"):
        thread.submit(coro)
    assert inspect.getcoroutinestate(coro) == inspect.CORO_CLOSED  # so Python will not warn


def test_stop_before_start_is_harmless() -> None:
    async def shutdown() -> None:
        raise AssertionError("must not run")

    assert LoopThread().stop(shutdown(), timeout=1)


def test_start_twice_is_an_error(loop_thread: LoopThread) -> None:
    with pytest.raises(RuntimeError):
        loop_thread.start()


def test_ui_queue_keeps_order_across_threads() -> None:
    queue: UiQueue[tuple[int, int]] = UiQueue()

    def producer(n: int) -> None:
        for i in range(200):
            queue.post((n, i))

    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        list(pool.map(producer, range(4)))
    seen: list[tuple[int, int]] = []
    while queue.drain(seen.append, limit=50):
        pass
    assert len(seen) == 800
    for n in range(4):
        assert [i for m, i in seen if m == n] == list(range(200))


def test_ui_queue_drain_respects_the_limit() -> None:
    queue: UiQueue[int] = UiQueue()
    for i in range(5):
        queue.post(i)
    got: list[int] = []
    assert queue.drain(got.append, limit=3) == 3
    assert queue.drain(got.append, limit=3) == 2
    assert queue.drain(got.append) == 0
    assert got == [0, 1, 2, 3, 4]


def test_loop_events_can_post_to_the_ui_queue(loop_thread: LoopThread) -> None:
    """The real path of a service event: emitted on the loop, drained on this thread."""
    queue: UiQueue[str] = UiQueue()

    async def emit() -> None:
        queue.post(threading.current_thread().name)

    loop_thread.submit(emit()).result(5)
    got: list[str] = []
    queue.drain(got.append)
    assert got == ["test-loop"]


def test_run_in_thread_runs_off_the_calling_thread_and_reports_back() -> None:
    from app.bridge import run_in_thread

    assert run_in_thread(lambda: threading.current_thread().name, "job").result(5) == "job"
    assert run_in_thread(lambda: threading.current_thread().daemon, "job").result(5)

    def fail() -> None:
        raise OSError("no such program")

    with pytest.raises(OSError, match="no such program"):
        run_in_thread(fail, "job").result(5)


# -- waking the Tk thread ----------------------------------------------------------------------

posix_only = pytest.mark.skipif(os.name != "posix", reason="Windows polls the queue instead")


def readable(fd: int) -> bool:
    return bool(select.select([fd], [], [], 0)[0])


@pytest.fixture
def ui_queue() -> Iterator[UiQueue[int]]:
    queue: UiQueue[int] = UiQueue()
    yield queue
    queue.close()


def idle_pipe(queue: UiQueue[int]) -> int:
    """The queue's wake pipe, made and emptied: the queue as an idle app has it."""
    fd = queue.wake_fd
    assert fd is not None
    queue.drain(lambda _item: None)
    return fd


@posix_only
def test_an_idle_queue_is_not_readable_and_a_post_wakes_it(ui_queue: UiQueue[int]) -> None:
    fd = idle_pipe(ui_queue)
    assert not readable(fd), "nothing waits: nothing may wake the Tk thread"
    ui_queue.post(1)
    assert readable(fd)
    assert ui_queue.drain(lambda _item: None) == 1
    assert not readable(fd)


@posix_only
def test_items_posted_before_the_pipe_existed_still_wake_it(ui_queue: UiQueue[int]) -> None:
    ui_queue.post(1)  # e.g. an event from the loop thread while the app is still composing
    fd = ui_queue.wake_fd
    assert fd is not None
    assert readable(fd)


@posix_only
def test_a_burst_writes_one_byte_and_what_the_limit_leaves_wakes_again(
    ui_queue: UiQueue[int],
) -> None:
    fd = idle_pipe(ui_queue)
    for item in range(250):
        ui_queue.post(item)
    assert len(os.read(fd, 4096)) == 1, "one wake-up for the whole burst"
    seen: list[int] = []
    assert ui_queue.drain(seen.append) == 100
    assert readable(fd), "150 items left: the Tk thread must come back"
    while ui_queue.drain(seen.append):
        pass
    assert seen == list(range(250))
    assert not readable(fd)


@posix_only
def test_posts_from_many_threads_are_never_left_without_a_wake_up(
    ui_queue: UiQueue[int],
) -> None:
    fd = idle_pipe(ui_queue)
    seen: list[int] = []

    def post_many(n: int) -> None:
        for i in range(200):
            ui_queue.post(n * 1000 + i)

    posters = [threading.Thread(target=post_many, args=(n,)) for n in range(4)]
    for poster in posters:
        poster.start()
    while len(seen) < 800:
        ready = select.select([fd], [], [], 5)[0]  # what the Tk thread's file handler waits on
        assert ready, f"{800 - len(seen)} item(s) waiting without a wake-up"
        ui_queue.drain(seen.append)
    for poster in posters:
        poster.join()
    assert sorted(seen) == sorted(n * 1000 + i for n in range(4) for i in range(200))


@posix_only
def test_a_full_pipe_does_not_block_a_post(ui_queue: UiQueue[int]) -> None:
    idle_pipe(ui_queue)  # no wake-up pending: the next post writes
    ring = ui_queue.ring_fd
    assert ring is not None
    with contextlib.suppress(BlockingIOError):
        while True:
            os.write(ring, b"\0" * 4096)  # what a storm of signals could do
    ui_queue.post(1)  # must neither raise nor block
    assert ui_queue.drain(lambda _item: None) == 1


def test_tray_calls_run_in_order_on_the_tray_thread_once_it_can_be_woken(
    caplog: pytest.LogCaptureFixture,
) -> None:
    calls: TrayCalls[list[str]] = TrayCalls()
    done: list[str] = []
    woken = threading.Event()
    calls.put(lambda target: target.append("queued before the tray ran"))
    assert not calls.awake

    def tray_thread() -> None:
        while woken.wait(5):
            woken.clear()
            calls.drain(done)
            if "last" in done:
                return

    thread = threading.Thread(target=tray_thread)
    thread.start()
    calls.wake_with(woken.set)  # the backend's loop runs: wakes once for what waited

    def fail(_target: list[str]) -> None:
        raise RuntimeError("a broken tray update")

    calls.put(fail)  # a failing call is logged, the next ones still run
    calls.put(lambda target: target.append("last"))
    thread.join(5)
    assert done == ["queued before the tray ran", "last"]
    assert "Tray update failed" in caplog.text
    calls.close()
    calls.put(lambda target: target.append("after close"))
    calls.drain(done)
    assert done[-1] == "last"
    assert not calls.awake


def test_latest_keeps_only_the_newest_value() -> None:
    latest = Latest(0)
    writers = [threading.Thread(target=latest.set, args=(n,)) for n in range(1, 50)]
    for writer in writers:
        writer.start()
    for writer in writers:
        writer.join()
    latest.set(99)
    assert latest.get() == 99
