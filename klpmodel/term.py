"""Terminal output: colour and a progress display through rich, only where a person is
watching. Piped or redirected output is the plain text byte for byte (reports stay
deterministic); NO_COLOR is honoured, FORCE_COLOR forces colour."""
from __future__ import annotations

import os
import re
import sys
import threading
import time
from contextlib import contextmanager

# (pattern at the start of a line, rich style): the report's own structure, nothing parsed deeper
STYLES = (
    (r"verdict: holds|verdict: proved|PROVED |result: fixed|ok\b|.*: ok \(", "bold green"),
    (r"verdict: violat|VIOLATED |violated: |result: still violated|[\w-]+: violated, ", "bold red"),
    (r"verdict: unknown|verdict: not proved|NOT PROVED |UNKNOWN |result: the trace is no longer possible", "bold yellow"),
    (r"  => |  where it shows: |  caused by: ", "red"),
    (r"  seed: |  seed rule: |  the seed rule it breaks: |  the seed's expected usage", "cyan"),
    (r"  \d+\. |step \d+: ", "bold"),
    (r" +changed: ", "yellow"),
    (r"complete: ", "green"),
)


def _console(stream):
    from rich.console import Console

    return Console(file=stream, highlight=False, soft_wrap=True, emoji=False)


def colour_wanted(stream=sys.stdout) -> bool:
    if os.environ.get("NO_COLOR"):
        return False
    if os.environ.get("FORCE_COLOR"):
        return True
    return stream.isatty() and os.environ.get("TERM") != "dumb"


def write(text: str, stream=sys.stdout) -> None:
    """The text as is; on a terminal, with the report's lines coloured by their role."""
    if not colour_wanted(stream):
        stream.write(text)
        return
    from rich.text import Text

    console = _console(stream)
    console.no_color = False
    for line in text.splitlines():
        style = next((s for pat, s in STYLES if re.match(pat, line)), "")
        console.print(Text(line, style=style), markup=False)


@contextmanager
def progress(label: str, delay: float | None = None):
    """A spinner with the elapsed time on stderr, shown only if the work takes longer than
    `delay` seconds (default 1, KLPMODEL_PROGRESS_DELAY) and stderr is a terminal; it
    disappears when the work is done."""
    if delay is None:
        delay = float(os.environ.get("KLPMODEL_PROGRESS_DELAY", "1"))
    detail = {"text": ""}

    def update(text: str) -> None:
        detail["text"] = text

    if not sys.stderr.isatty() or os.environ.get("TERM") == "dumb":
        yield update
        return
    start = time.monotonic()
    state: dict = {}
    lock = threading.Lock()

    def tick():
        while not stop.wait(0.2):
            with lock:
                if "status" not in state and time.monotonic() - start >= delay:
                    # imported here: a run done within the delay never pays for it (~80 ms)
                    from rich.status import Status

                    state["status"] = Status(label, console=_console(sys.stderr))
                    state["status"].start()
                if "status" in state:
                    extra = f", {detail['text']}" if detail["text"] else ""
                    state["status"].update(f"{label} ({time.monotonic() - start:.0f} s{extra})")

    stop = threading.Event()
    thread = threading.Thread(target=tick, daemon=True)
    thread.start()
    try:
        yield update
    finally:
        stop.set()
        thread.join()
        if "status" in state:
            state["status"].stop()
