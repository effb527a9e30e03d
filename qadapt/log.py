"""Progress messages on stderr (stdout stays for results), never interpreted as rich markup.

Long loops (evaluation windows, training steps, distillation, questions, sweep points) report through
:class:`Progress`: a rich bar with rate and ETA on a terminal; when stderr is not a terminal (a log file, CI), a
plain line every ``every`` seconds and at the end, with the same facts, so a long run in a log is never silent.
"""

from __future__ import annotations

import time

from rich.console import Console

console = Console(stderr=True, highlight=False)
LINE_EVERY = 30.0  # seconds between progress lines when stderr is not a terminal


def log(message: str) -> None:
    console.print(f"qadapt: {message}", markup=False)


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


class Progress:
    """``with Progress("train", total=steps, unit="steps") as bar: bar.advance(1, loss="3.21")``.

    On a terminal: a transient rich bar (description, bar, done/total, rate, elapsed, remaining, the fields). Else: a
    line ``qadapt: train 40/60 steps (66 %), 0.51 steps/s, elapsed 0:01:18, ETA 0:00:39, loss 3.21`` at most every
    ``every`` seconds and one when the loop completes. ``enabled=False`` (processes other than the main one of a
    launch): nothing. ``completed``: work already done (a resumed run), counted in done/total but not in the rate.
    """

    def __init__(
        self,
        description: str,
        total: float,
        unit: str = "steps",
        completed: float = 0,
        enabled: bool = True,
        every: float = LINE_EVERY,
        clock=time.monotonic,
        **fields,
    ):
        self.description, self.total, self.unit, self.enabled = description, total, unit, enabled
        self.done, self.start_done, self.every, self.clock, self.fields = completed, completed, every, clock, fields
        self.terminal = console.is_terminal
        self._bar = None

    def __enter__(self) -> Progress:
        self.started = self.last = self.clock()
        if self.enabled and self.terminal:
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                ProgressColumn,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )
            from rich.progress import Progress as Bar
            from rich.text import Text

            unit = self.unit

            class Rate(ProgressColumn):
                def render(self, task) -> Text:
                    return Text(f"{task.speed:.3g} {unit}/s" if task.speed else "")

            names = " ".join(f"{k} {{task.fields[{k}]}}" for k in self.fields)
            self._bar = Bar(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn(self.unit),
                Rate(),
                TimeElapsedColumn(),
                TimeRemainingColumn(),
                TextColumn(names),
                console=console,
                transient=True,
            )
            self._bar.__enter__()
            self._task = self._bar.add_task(self.description, total=self.total, completed=self.done, **self.fields)
        return self

    def advance(self, amount: float = 1, **fields) -> None:
        """``amount`` more units done; ``fields`` update the shown values (e.g. ``loss``)."""
        self.done += amount
        self.fields.update(fields)
        if not self.enabled:
            return
        if self._bar is not None:
            self._bar.update(self._task, advance=amount, **fields)
            return
        now = self.clock()
        if now - self.last >= self.every or self.done >= self.total:
            self.last = now
            log(self.line(now))

    def line(self, now: float) -> str:
        """The plain progress line at time ``now`` (the clock's units: seconds)."""
        elapsed = now - self.started
        rate = (self.done - self.start_done) / elapsed if elapsed > 0 else float("nan")
        left = (self.total - self.done) / rate if rate and rate == rate and rate > 0 else float("nan")
        pct = 100 * self.done / self.total if self.total else 100.0
        text = (
            f"{self.description} {self.done:,.0f}/{self.total:,.0f} {self.unit} ({pct:.0f} %), "
            f"{rate:.3g} {self.unit}/s, elapsed {_duration(elapsed)}, ETA {_duration(left) if left == left else '?'}"
        )
        return text + "".join(f", {k} {v}" for k, v in self.fields.items())

    def __exit__(self, *exc) -> None:
        if self._bar is not None:
            self._bar.__exit__(*exc)


def progress(iterable, description: str, total: int | None = None, unit: str = "steps"):
    """``iterable`` with a :class:`Progress` around it (``total``: its length when it has none)."""
    total = len(iterable) if total is None else total
    with Progress(description, total=total, unit=unit) as bar:
        for item in iterable:
            yield item
            bar.advance(1)
