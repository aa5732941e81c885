"""One deadline per command: `--timeout` and Ctrl-C.

A command makes one `Deadline` and passes it down: spec loading, the Z3 template, the
engines, prove's stages. Work polls it (`expired()`; `ms()` is the timeout each Z3 check is
given) and returns what it found so far, with `reason` as the unknown verdict's reason.

`watch(deadline)` is the backstop for work that does not poll (tomllib, one large Z3
substitution, a long pure-Python loop): shortly after the deadline (and at once on Ctrl-C)
it raises `Stopped` in the main thread and interrupts Z3, whose C code a Python signal
handler cannot reach (a helper thread, woken by the signal through the wakeup fd, calls
Z3's `interrupt`). The engines catch `Stopped` and return their partial result like a
timeout.
"""
from __future__ import annotations

import signal
import socket
import sys
import threading
import time
from contextlib import contextmanager

from .errors import Stopped

TIMEOUT = "timeout"
INTERRUPTED = "interrupted (Ctrl-C)"


class Deadline:
    """When the current command must stop. `seconds=None`: only Ctrl-C stops it."""

    def __init__(self, seconds: float | None = None, start: float | None = None):
        """`start`: when the clock started (time.monotonic(); default now): the command line
        starts it when klpmodel starts, so that --timeout covers the whole run."""
        self.seconds = seconds
        self.start = time.monotonic() if start is None else start
        self.end = None if seconds is None else self.start + seconds
        self.stopped: str | None = None        # set by Ctrl-C
        self.noticed = False                   # some code saw it expire (and is returning what it has)

    @classmethod
    def of(cls, x: Deadline | float | None) -> Deadline:
        """A deadline from what callers pass as `timeout`: a Deadline, seconds, or None."""
        return x if isinstance(x, Deadline) else cls(x)

    def left(self) -> float | None:
        """Seconds left (None: no limit)."""
        if self.stopped is not None:
            return 0.0
        if self.end is None:
            return None
        return max(0.0, self.end - time.monotonic())

    def expired(self) -> bool:
        """The deadline has passed (or Ctrl-C). The caller returns what it has; from then on
        the backstop of watch() leaves it alone to report it."""
        if self.stopped is not None or (self.end is not None and time.monotonic() >= self.end):
            self.noticed = True
            return True
        return False

    @property
    def reason(self) -> str:
        return self.stopped or TIMEOUT

    def check(self) -> None:
        """Raise Stopped once the deadline has passed (for loops that have nothing to return)."""
        if self.expired():
            raise Stopped(self.reason)

    def ms(self) -> int | None:
        """The time left in milliseconds, at least 1 (for a Z3 solver's timeout), or None."""
        left = self.left()
        return None if left is None else max(1, int(left * 1000))

    def elapsed(self) -> float:
        return time.monotonic() - self.start


def _grace(seconds: float) -> float:
    """How long after the deadline the backstop fires: the polling code gets the first
    chance; the command still ends within 10% of --timeout."""
    return min(1.0, max(0.02, 0.02 * seconds))


def _interrupt_z3() -> None:
    z3 = sys.modules.get("z3")
    if z3 is not None:
        try:
            z3.main_ctx().interrupt()
        except Exception:                       # never let the watcher die
            pass


def _in_z3_or_finalizer(frame) -> bool:
    """Raising here would be lost or garbled: inside a finalizer ("Exception ignored in
    __del__"), or inside z3's Python code or ctypes (an ArgumentError instead)."""
    n = 0
    while frame is not None and n < 200:
        name = frame.f_globals.get("__name__", "")
        if frame.f_code.co_name == "__del__" or name == "z3" or name.startswith(("z3.", "ctypes")):
            return True
        frame, n = frame.f_back, n + 1
    return False


@contextmanager
def watch(deadline: Deadline):
    """Enforce `deadline` (and Ctrl-C) on the code inside the block; see the module docstring.
    Only in the main thread (elsewhere signals cannot be handled): then it does nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield deadline
        return
    armed = True

    def stop(frame, reason: str):
        if _in_z3_or_finalizer(frame):
            signal.setitimer(signal.ITIMER_REAL, 0.005)      # a moment later, back in klpmodel's code
            return
        deadline.noticed = True                              # raised once: whoever catches it stops
        raise Stopped(reason)

    def on_alarm(signum, frame):
        if armed and not deadline.noticed:
            stop(frame, deadline.reason)

    def on_int(signum, frame):
        if not armed:
            raise KeyboardInterrupt
        again = deadline.stopped is not None
        deadline.stopped = INTERRUPTED
        if again:                                            # a second Ctrl-C: now
            deadline.noticed = True
            raise Stopped(INTERRUPTED)
        if not deadline.noticed:
            stop(frame, INTERRUPTED)

    rsock, wsock = socket.socketpair()
    rsock.setblocking(True)
    wsock.setblocking(False)
    quit_flag = threading.Event()

    def watcher():
        while not quit_flag.is_set():
            try:
                data = rsock.recv(64)
            except OSError:
                return
            if quit_flag.is_set() or not data:
                return
            if any(b in (signal.SIGINT, signal.SIGALRM) for b in data):
                _interrupt_z3()

    old_alarm = signal.signal(signal.SIGALRM, on_alarm)
    ignored = signal.getsignal(signal.SIGINT) is signal.SIG_IGN      # e.g. started in the background: leave it
    old_int = signal.getsignal(signal.SIGINT) if ignored else signal.signal(signal.SIGINT, on_int)
    old_fd = signal.set_wakeup_fd(wsock.fileno(), warn_on_full_buffer=False)
    thread = threading.Thread(target=watcher, name="klpmodel-deadline", daemon=True)
    thread.start()
    if deadline.end is not None:
        signal.setitimer(signal.ITIMER_REAL, min(1e8, max(0.001, deadline.end - time.monotonic()) + _grace(deadline.end - deadline.start)))
    try:
        yield deadline
    finally:
        armed = False
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.set_wakeup_fd(old_fd)
        signal.signal(signal.SIGALRM, old_alarm)
        if not ignored:
            signal.signal(signal.SIGINT, old_int)
        quit_flag.set()
        try:
            wsock.send(b"\0")
        except OSError:
            pass
        thread.join(1.0)
        rsock.close()
        wsock.close()
