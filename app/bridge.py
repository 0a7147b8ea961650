"""THE thread boundary: every hand-over of work from one thread to another is named here.

Three threads live in the desktop app (docs/ARCHITECTURE.md, "Threads"): Tk on the main
thread, one asyncio loop thread that owns the network, the service and the notifier, and the
tray icon's own thread. The sanctioned crossings, and nothing else:

- to the loop thread: :meth:`LoopThread.submit` (a coroutine), :func:`call_on_loop` (an OS
  library calling back on a thread of its own, e.g. a notification click);
- to the Tk thread: :class:`UiQueue` (service events, tray commands, signals, finished jobs),
  which wakes Tk through a pipe (Windows: Tk polls it);
- to the tray thread: :class:`TrayCalls`, woken the way the tray's backend allows — GLib's
  ``idle_add``, an X client message (``app.ui.xorg``), ``PostMessageW`` (``app.ui.tray``) —,
  or run in place on macOS, where the tray shares Tk's thread;
- a value only the newest of which counts, written by one thread and read by another:
  :class:`Latest` (the tray's next view; the tray's balloon, which the loop side may use);
- blocking work that belongs to no thread (waiting for the main app to quit):
  :func:`run_in_thread`.

``tests/ui/test_layering.py`` fails on any other crossing.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import os
import queue
import sys
import threading
from collections.abc import Callable, Coroutine
from typing import Any, Generic, TypeVar

logger = logging.getLogger(__name__)

T = TypeVar("T")
Item = TypeVar("Item")


class LoopThread:
    """An asyncio loop running in a daemon thread for the life of the app."""

    def __init__(self, name: str = "telex-loop") -> None:
        self._name = name
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        """Start the thread and return once its loop is running."""
        if self._thread is not None:
            raise RuntimeError("the loop thread has already been started")
        loop = asyncio.new_event_loop()
        started = threading.Event()
        self._loop = loop
        self._thread = threading.Thread(
            target=self._run, args=(loop, started), name=self._name, daemon=True
        )
        self._thread.start()
        started.wait()

    def submit(self, coro: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        """Schedule ``coro`` on the loop; the future may be waited on or cancelled anywhere."""
        if self._loop is None or not self.running:
            coro.close()  # never awaited: close it so Python does not warn about it
            raise RuntimeError("the loop thread is not running")
        return asyncio.run_coroutine_threadsafe(coro, self._loop)

    def stop(
        self,
        shutdown: Coroutine[Any, Any, object] | None = None,
        timeout: float = 10.0,
        grace: float = 2.0,
    ) -> bool:
        """Run ``shutdown`` on the loop (at most ``timeout`` seconds), then stop the loop, which
        cancels what is left, and wait ``grace`` seconds for the thread to end.

        Returns False when the shutdown timed out or the thread is still running (being a
        daemon, it then dies with the process).
        """
        loop, thread = self._loop, self._thread
        if loop is None or thread is None or not thread.is_alive():
            if shutdown is not None:
                shutdown.close()
            return True
        finished = True
        if shutdown is not None:
            future = self.submit(shutdown)
            try:
                future.result(timeout)
            except concurrent.futures.TimeoutError:
                logger.warning("Shutdown did not finish within %.1f s; stopping anyway", timeout)
                future.cancel()
                finished = False
            except Exception:
                logger.exception("Shutdown failed; stopping the loop anyway")
        with contextlib.suppress(RuntimeError):  # the loop closed on its own meanwhile
            loop.call_soon_threadsafe(loop.stop)
        thread.join(grace)
        return finished and not thread.is_alive()

    @staticmethod
    def _run(loop: asyncio.AbstractEventLoop, started: threading.Event) -> None:
        asyncio.set_event_loop(loop)
        loop.call_soon(started.set)
        try:
            loop.run_forever()
        finally:
            _cancel_leftovers(loop)
            loop.close()


def _cancel_leftovers(loop: asyncio.AbstractEventLoop) -> None:
    """Tasks still alive when the loop stops are cancelled and awaited, so none is destroyed
    pending (which would log a warning and skip their ``finally`` blocks)."""
    tasks = asyncio.all_tasks(loop)
    for task in tasks:
        task.cancel()
    if tasks:
        loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
    loop.run_until_complete(loop.shutdown_asyncgens())
    loop.run_until_complete(loop.shutdown_default_executor())


def run_in_thread(work: Callable[[], T], name: str) -> concurrent.futures.Future[T]:
    """Run blocking ``work`` in a daemon thread of its own: unlike the loop's executor, a slow
    job never holds up the exit."""
    future: concurrent.futures.Future[T] = concurrent.futures.Future()

    def run() -> None:
        if not future.set_running_or_notify_cancel():
            return
        try:
            result = work()
        except BaseException as exc:
            future.set_exception(exc)
        else:
            future.set_result(result)

    threading.Thread(target=run, name=name, daemon=True).start()
    return future


def call_on_loop(
    loop: asyncio.AbstractEventLoop, handler: Callable[[Item], None]
) -> Callable[[Item], None]:
    """``handler`` for callers on any thread (an OS library calling back on its own, such as a
    notification click on win10toast-click's window thread or the macOS main thread): each call
    is queued to run on ``loop``, in call order; dropped, with a line in the log, once the loop
    has closed (the app is exiting)."""

    def call(item: Item) -> None:
        try:
            loop.call_soon_threadsafe(handler, item)
        except RuntimeError:
            logger.info("A call for the loop thread came while the app was shutting down")

    return call


class Latest(Generic[T]):
    """A value one thread writes and another reads, where only the newest counts (a burst of
    writes costs the reader one look)."""

    def __init__(self, value: T) -> None:
        self._lock = threading.Lock()
        self._value = value

    def set(self, value: T) -> None:
        with self._lock:
            self._value = value

    def get(self) -> T:
        with self._lock:
            return self._value


class TrayCalls(Generic[Item]):
    r"""Work for the tray thread, run there in order with the tray's icon (``Item``). Any thread
    may :meth:`put`; the tray thread :meth:`drain`\ s when its backend's waker (given by
    :meth:`wake_with` once the backend's loop runs) tells it to."""

    def __init__(self) -> None:
        self._calls: queue.SimpleQueue[Callable[[Item], None]] = queue.SimpleQueue()
        self._wake: Callable[[], None] | None = None
        self._closed = False

    @property
    def awake(self) -> bool:
        """Whether the tray thread can be woken (its backend runs)."""
        return self._wake is not None and not self._closed

    def wake_with(self, wake: Callable[[], None] | None) -> None:
        """The tray thread's waker once its loop runs (None when it stops); wakes it once for
        what was queued before."""
        self._wake = wake
        if wake is not None:
            wake()

    def put(self, work: Callable[[Item], None]) -> None:
        if self._closed:
            return
        self._calls.put(work)
        wake = self._wake
        if wake is not None:
            wake()

    def close(self) -> None:
        """Take no more work (the tray is stopping)."""
        self._closed = True

    def drain(self, target: Item) -> None:
        """Tray thread: run what was queued, in order; a failing call is logged, not fatal."""
        while True:
            try:
                work = self._calls.get_nowait()
            except queue.Empty:
                return
            try:
                work(target)
            except Exception:
                logger.exception("Tray update failed")


class UiQueue(Generic[Item]):
    """Work for the Tk thread. Any thread, and a signal handler, may :meth:`post`; only the Tk
    thread may :meth:`drain`.

    On POSIX a post into an empty queue writes one byte to a pipe whose read end
    (:attr:`wake_fd`) the Tk thread watches, so an idle app is never woken for nothing.
    """

    def __init__(self) -> None:
        self._items: queue.SimpleQueue[Item] = queue.SimpleQueue()
        self._wake_fd: int | None = None
        self._ring_fd: int | None = None
        self._rung = False  # a byte is on its way: later posts need not write one

    @property
    def wake_fd(self) -> int | None:
        """The pipe's read end, readable while items wait; None where there is none (Windows:
        Tk cannot watch a pipe there, so the Tk thread polls). Made on first use."""
        if sys.platform != "win32" and self._wake_fd is None:
            read, write = os.pipe()
            os.set_blocking(read, False)
            os.set_blocking(write, False)
            self._wake_fd, self._ring_fd = read, write
            self._rung = True  # items posted before the pipe existed must not wait
            self._ring()
        return self._wake_fd

    @property
    def ring_fd(self) -> int | None:
        """The pipe's write end, for :func:`signal.set_wakeup_fd`: a signal then wakes the Tk
        thread too (its handler runs only once Python does)."""
        return self._ring_fd if self.wake_fd is not None else None

    def post(self, item: Item) -> None:
        self._items.put(item)
        if not self._rung:
            self._rung = True
            self._ring()

    def drain(self, handle: Callable[[Item], None], limit: int = 100) -> int:
        """Hand up to ``limit`` waiting items to ``handle``; the limit keeps a burst from
        freezing the UI (what is left wakes the Tk thread again). Returns how many were
        handled."""
        self._clear()
        handled = 0
        while handled < limit:
            try:
                item = self._items.get_nowait()
            except queue.Empty:
                break
            handle(item)
            handled += 1
        if handled == limit:
            self._rung = True
            self._ring()
        return handled

    def close(self) -> None:
        """Close the pipe (after the last drain)."""
        fds, self._wake_fd, self._ring_fd = (self._wake_fd, self._ring_fd), None, None
        for fd in fds:
            if fd is not None:
                with contextlib.suppress(OSError):
                    os.close(fd)

    def _ring(self) -> None:
        fd = self._ring_fd
        if fd is None:
            return
        # BlockingIOError: the pipe is full, so readable: the Tk thread wakes anyway. Other
        # OSErrors: closed meanwhile, the app is exiting.
        with contextlib.suppress(OSError):
            os.write(fd, b"\0")

    def _clear(self) -> None:
        """Empty the pipe, then take later posts as new (the order keeps a post from being
        missed: one that saw the old flag put its item before the drain below)."""
        fd = self._wake_fd
        if fd is not None:
            with contextlib.suppress(OSError):  # BlockingIOError: already empty
                while os.read(fd, 4096):
                    pass
        self._rung = False
