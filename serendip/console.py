"""What a ``serendip`` command shows in the terminal: its own lines and one progress bar per phase.

Everything else the process prints goes to a log file in the run's folder: Ray's start-up lines, Ray
Data's progress, Tune's status tables, transformers' weight reports, warnings, and every line of the
Ray workers that Ray streams to the driver. ``--verbose`` shows those lines in the terminal as well.

How: file descriptors 1 and 2 (so C++ libraries and Ray's log stream are caught too, not only Python's
``print``) are pointed at a pipe. A thread copies each line to the log and hands it to the readers of
the running phase, which turn the layers' progress lines (``training.progress``, ``tuning.progress``)
into a bar. The command's own lines go to a copy of the original terminal.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TextIO

from tqdm import tqdm

Reader = Callable[[str], bool]
"""Takes one line the process printed; True when it used the line (a used line is not passed through)."""

BAR_FORMAT = "{desc}: {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} {unit} [{elapsed}{postfix}]"
"""tqdm's layout without its rate: a bar is set to what a phase reports, so tqdm's own rate would mislead."""
_END = b"\0serendip-console-end\n"
"""Written into the pipe when the console closes: the copier has read everything before it."""


class Bar:
    """One phase's progress: a live bar on a terminal; elsewhere (a pipe, a file) one line when it ends."""

    def __init__(self, desc: str, total: int | None, unit: str, terminal: TextIO, live: bool,
                 say: Callable[[str], None]) -> None:
        self.desc, self.unit, self.live, self._say = desc, unit, live, say
        self.n, self.total, self.postfix, self.closed = 0, total, "", False
        self._tqdm = tqdm(desc=desc, total=total, unit=unit, file=terminal, disable=not live, leave=True,
                          dynamic_ncols=True, bar_format=BAR_FORMAT)

    def show(self, n: int, total: int | None = None, postfix: str = "") -> None:
        """Set the bar to ``n`` of ``total`` (unchanged when None), with ``postfix`` after it."""
        self.n, self.total, self.postfix = n, total or self.total, postfix
        if self.live:
            self._tqdm.total, self._tqdm.n = self.total, n
            self._tqdm.set_postfix_str(postfix, refresh=False)
            self._tqdm.refresh()

    def close(self) -> None:
        """Leave the bar's last state on screen, or say it in one line."""
        if self.closed:
            return
        self.closed = True
        if self.live:
            self._tqdm.close()
            return
        self._say(f"{self.desc}: {self.n}/{self.total if self.total is not None else '?'} {self.unit}"
                  + (f", {self.postfix}" if self.postfix else ""))


class Console:
    """The terminal of one command; use as a context manager around the command.

    ``passthrough``: prefixes of the lines the layers print for a person (a command's result), shown in
    the terminal as well as logged.
    """

    def __init__(self, log: Path, verbose: bool = False, passthrough: tuple[str, ...] = ()) -> None:
        self.log_path, self.verbose, self.passthrough = Path(log), verbose, passthrough
        self.terminal: TextIO = sys.stdout
        self.tty = False
        self._readers: list[Reader] = []
        self._bars: list[Bar] = []
        self._lock = threading.Lock()
        self._saved: tuple[int, int] | None = None
        self._drained = threading.Event()
        self._held: list[str] = []

    def __enter__(self) -> Console:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = open(self.log_path, "a", buffering=1, encoding="utf-8", errors="replace")  # noqa: SIM115
        sys.stdout.flush()
        sys.stderr.flush()
        self._saved = (os.dup(1), os.dup(2))
        self.terminal = os.fdopen(os.dup(1), "w", buffering=1, encoding="utf-8", errors="replace")
        self.tty = self.terminal.isatty()
        read, write = os.pipe()
        os.dup2(write, 1)
        os.dup2(write, 2)
        os.close(write)
        threading.Thread(target=self._copy, args=(read,), name="serendip-console", daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        for bar in list(self._bars):
            bar.close()
        sys.stdout.flush()
        sys.stderr.flush()
        os.write(1, _END)
        os.dup2(self._saved[0], 1)
        os.dup2(self._saved[1], 2)
        for fd in self._saved:
            os.close(fd)
        # Processes started meanwhile may still hold the pipe: the copier keeps logging them until they close it.
        self._drained.wait(timeout=5)
        with self._lock:
            self._readers.clear()
        self._release()
        self.terminal.flush()

    def say(self, text: str) -> None:
        """One line of the command's own, in the terminal and the log."""
        self._write(text)
        self._to_log(text + "\n")

    def bar(self, desc: str, total: int | None, unit: str, say: Callable[[str], None] | None = None) -> Bar:
        """A progress bar for one phase; ``say`` (default: ``self.say``) gets its one line off a terminal."""
        bar = Bar(desc, total, unit, self.terminal, self.tty, say or self.say)
        self._bars.append(bar)
        return bar

    @contextmanager
    def following(self, *readers: Reader, settle_s: float = 5.0) -> Iterator[None]:
        """Hand every line printed during the block to ``readers`` too.

        After the block, wait up to ``settle_s`` for the readers that have a ``finished`` flag to raise it
        (Ray streams a worker's last lines a moment after the work returned), then ``close()`` them.
        """
        with self._lock:
            self._readers.extend(readers)
        try:
            yield
        finally:
            deadline = time.monotonic() + settle_s
            while time.monotonic() < deadline and not all(getattr(r, "finished", True) for r in readers):
                time.sleep(0.1)
            with self._lock:
                for reader in readers:
                    self._readers.remove(reader)
            for reader in readers:
                if hasattr(reader, "close"):
                    reader.close()
            self._release()

    def _write(self, text: str) -> None:
        if self.tty:
            tqdm.write(text, file=self.terminal)
        else:
            self.terminal.write(text + "\n")
            self.terminal.flush()

    def _to_log(self, text: str) -> None:
        with self._lock:
            self._log.write(text)

    def _copy(self, fd: int) -> None:
        """The copier thread: every line of the pipe to the log, to the readers, and maybe to the terminal."""
        with os.fdopen(fd, "rb") as pipe:
            for raw in pipe:
                end = raw.endswith(_END)
                line = raw.removesuffix(_END).decode("utf-8", errors="replace")
                if line:
                    self._to_log(line if line.endswith("\n") else line + "\n")
                    try:
                        self._route(line.rstrip("\n"))
                    except Exception as err:  # a reader's bug must not stop the copying (writers would block)
                        self._to_log(f"[console] a reader failed on that line: {err!r}\n")
                if end:
                    self._drained.set()
        self._drained.set()
        self._log.close()

    def _route(self, line: str) -> None:
        if self.verbose:
            self._write(line)
        with self._lock:
            readers = list(self._readers)
        used = any([reader(line) for reader in readers])
        if not self.verbose and not used and self.passthrough and line.startswith(self.passthrough):
            with self._lock:
                self._held.append(line)
        if not _busy(readers):  # a result printed while a bar runs waits for the bar's last line
            self._release()

    def _release(self) -> None:
        """Show the held lines."""
        with self._lock:
            held, self._held = self._held, []
        for line in held:
            self._write(line)


def _busy(readers: list[Reader]) -> bool:
    """Whether a reader's bar has started and not finished."""
    return any(getattr(r, "bar", None) is not None and not getattr(r, "finished", True) for r in readers)


class TrainingBar:
    """A reader: training's step and epoch lines as one bar (steps, loss, samples/s, val NDCG@10)."""

    def __init__(self, console: Console, desc: str, say: Callable[[str], None] | None = None) -> None:
        self.console, self.desc, self.say = console, desc, say
        self.bar: Bar | None = None
        self.finished = False
        """Whether the run's last line (its final epoch line) has been read."""

    def __call__(self, line: str) -> bool:
        from training.progress import read_line

        progress = read_line(line)
        if progress is None:
            return False
        self.bar = self.bar or self.console.bar(self.desc, progress.total, "steps", self.say)
        postfix = f"loss {progress.loss:.3f}, {progress.samples_per_s:.0f} samples/s"
        if progress.val_ndcg10 is not None:
            postfix += f", val NDCG@10 {progress.val_ndcg10:.4f}"
        self.bar.show(progress.step, progress.total, postfix)
        self.finished = progress.final
        if self.finished:
            self.bar.close()
        return True

    def close(self) -> None:
        """End the bar."""
        if self.bar is not None:
            self.bar.close()


class SweepBar:
    """A reader: a sweep's trial lines as one bar (trials ended, failures, the range of the objective so far)."""

    def __init__(self, console: Console, desc: str, say: Callable[[str], None] | None = None) -> None:
        self.console, self.desc, self.say = console, desc, say
        self.bar: Bar | None = None
        self.failed, self.values, self.metric = 0, [], ""
        self.finished = False
        """Whether every trial of the sweep has ended."""

    def __call__(self, line: str) -> bool:
        from tuning.progress import read_line

        progress = read_line(line)
        if progress is None:
            return False
        self.bar = self.bar or self.console.bar(self.desc, progress.total, "trials", self.say)
        self.failed += progress.failed
        if progress.value is not None:
            self.values.append(progress.value)
            self.metric = progress.metric
        parts = [f"{self.metric} {min(self.values):.4g} to {max(self.values):.4g}"] if self.values else []
        parts += [f"{self.failed} failed"] if self.failed else []
        self.bar.show(progress.done, progress.total, ", ".join(parts))
        self.finished = progress.total is not None and progress.done >= progress.total
        if self.finished:
            self.bar.close()
        return True

    def close(self) -> None:
        """End the bar."""
        if self.bar is not None:
            self.bar.close()
