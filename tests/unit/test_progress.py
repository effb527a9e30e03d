"""Progress of long loops (qadapt/log.py): without a terminal, a line every LINE_EVERY seconds and at the end with
what was done, the rate and the ETA, so a run whose output is a log file is never silent for minutes."""

from __future__ import annotations

import io

from rich.console import Console

import qadapt.log as qlog


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_lines_every_thirty_seconds_and_at_the_end_when_not_a_terminal(monkeypatch):
    out = io.StringIO()
    monkeypatch.setattr(qlog, "console", Console(file=out, force_terminal=False, width=200))
    clock = Clock()
    with qlog.Progress("train", total=100, unit="steps", clock=clock, loss="-") as bar:
        for step in range(100):
            clock.now += 1.0  # one step per second
            bar.advance(1, loss=f"{4 - step / 100:.2f}")
    lines = out.getvalue().splitlines()
    # at 30, 60, 90 s and the last step
    assert len(lines) == 4, lines
    assert lines[0] == "qadapt: train 30/100 steps (30 %), 1 steps/s, elapsed 0:00:30, ETA 0:01:10, loss 3.71"
    assert lines[-1].startswith("qadapt: train 100/100 steps (100 %)") and "ETA 0:00:00" in lines[-1]


def test_a_resumed_loop_counts_its_rate_from_where_it_started(monkeypatch):
    out = io.StringIO()
    monkeypatch.setattr(qlog, "console", Console(file=out, force_terminal=False, width=200))
    clock = Clock()
    with qlog.Progress("train", total=60, completed=30, clock=clock) as bar:
        clock.now = 60.0
        bar.advance(15)
    assert "train 45/60 steps (75 %), 0.25 steps/s, elapsed 0:01:00, ETA 0:01:00" in out.getvalue()


def test_disabled_and_terminal_modes_print_no_lines(monkeypatch):
    out = io.StringIO()
    monkeypatch.setattr(qlog, "console", Console(file=out, force_terminal=False, width=200))
    with qlog.Progress("eval", total=3, enabled=False) as bar:
        bar.advance(3)
    assert out.getvalue() == ""
    term = io.StringIO()
    monkeypatch.setattr(qlog, "console", Console(file=term, force_terminal=True, width=200))
    with qlog.Progress("eval", total=3, unit="tokens") as bar:
        bar.advance(3)
    assert "qadapt:" not in term.getvalue()  # the rich bar, transient, not the plain lines
    assert list(qlog.progress([1, 2, 3], "steps")) == [1, 2, 3]


def test_a_cli_sweep_reports_its_points_with_rate_and_eta(monkeypatch):
    """``qadapt <command> -m`` runs its points under a sweep bar: without a terminal, its line (points done, rate,
    ETA) follows the last point; a single run has none."""
    from qadapt import cli

    out = io.StringIO()
    monkeypatch.setattr(qlog, "console", Console(file=out, force_terminal=False, width=200))
    seen = []
    cli._run(["seed=0,1,2"], True, lambda cfg, point: seen.append(int(cfg.seed)))
    assert seen == [0, 1, 2]
    lines = out.getvalue().splitlines()
    assert [line for line in lines if "sweep point" in line][-1] == "qadapt: sweep point 3/3: seed=2"
    assert lines[-1].startswith("qadapt: sweep 3/3 points (100 %),") and "ETA 0:00:00" in lines[-1]
    out.truncate(0), out.seek(0)
    cli._run(["seed=0"], False, lambda cfg, point: None)
    assert "sweep" not in out.getvalue()
