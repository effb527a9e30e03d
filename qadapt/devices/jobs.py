"""Sampler jobs for the Qiskit devices: bounded size and number in flight, retries, and a journal for resuming.

A device evaluation can need millions of circuits (CUA on Llama 3.1 8B: 1,024 per token per site). They go out
as jobs of at most ``max_circuits_per_job`` circuits (a circuit = one parameter binding of one block's template),
at most ``max_jobs_in_flight`` submitted and unfinished at once (IBM Runtime's Batch mode runs them together),
each retried up to ``retries`` times after a transient failure (network, API, a failed or timed-out job), with
exponential back-off. With ``journal_dir`` set, every finished job's counts are written there under a key of
its backend, compiled circuits, angles, shots and seed, and a job already in the journal is read instead of run:
an evaluation that stops midway (a permanent error, an interruption) continues where it stopped when the same
command runs again, and pays only for what was not measured yet.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..atomic import replacing
from ..errors import QadaptError
from ..log import Progress, log


@dataclass(frozen=True)
class JobSpec:
    """One job: blocks ``blocks`` (indices into the templates) for the tokens ``start:stop``."""

    blocks: tuple[int, ...]
    start: int
    stop: int

    @property
    def circuits(self) -> int:
        return len(self.blocks) * (self.stop - self.start)


def split_jobs(n_blocks: int, n_tokens: int, max_circuits: int) -> list[JobSpec]:
    """Jobs covering every (block, token) circuit once, each with at most ``max_circuits`` circuits.

    Whole blocks are packed together while they fit; a block with more tokens than ``max_circuits`` is cut by tokens.
    """
    max_circuits = max(1, int(max_circuits))
    per_block = max(1, min(n_tokens, max_circuits))
    jobs: list[JobSpec] = []
    for start in range(0, n_tokens, per_block):
        stop = min(n_tokens, start + per_block)
        group = max(1, max_circuits // (stop - start))
        for b in range(0, n_blocks, group):
            jobs.append(JobSpec(tuple(range(b, min(n_blocks, b + group))), start, stop))
    return jobs


def transient_errors() -> tuple[type[BaseException], ...]:
    """Exceptions worth a retry: the network, IBM's API, a job that failed or timed out on the service side."""
    errors: list[type[BaseException]] = [ConnectionError, TimeoutError]
    try:
        from qiskit_ibm_runtime import exceptions as rt

        errors += [rt.IBMBackendApiError, rt.RuntimeJobFailureError, rt.RuntimeJobTimeoutError, rt.JobTimeoutError]
    except ImportError:  # pragma: no cover - the ibm extra is installed with qadapt
        pass
    return tuple(errors)


class JobRunner:
    """Runs :class:`JobSpec` jobs through ``submit`` (pubs -> a job with ``job_id()`` and ``result()``) and
    ``collect`` (a result -> counts ``(n_blocks_in_job, n_tokens_in_job, b)``), as the module docstring says.

    Args:
        max_jobs_in_flight: jobs submitted and not yet collected, at most.
        retries: further attempts per job after a transient error.
        retry_wait_s: seconds before the first retry (doubled for each later one).
        journal_dir: where finished jobs' counts are kept (None: nowhere).
        sleep: how to wait before a retry (tests pass a recorder).
        max_qpu_seconds: no job is submitted once the finished jobs' measured QPU usage (their own metrics) has reached
            this many seconds (None: no cap); the evaluation stops with what it journaled, resumable.
    """

    def __init__(
        self,
        max_jobs_in_flight: int = 3,
        retries: int = 3,
        retry_wait_s: float = 5.0,
        journal_dir: str | Path | None = None,
        sleep: Callable[[float], None] = time.sleep,
        max_qpu_seconds: float | None = None,
    ):
        self.max_jobs_in_flight = max(1, int(max_jobs_in_flight))
        self.retries, self.retry_wait_s, self.sleep = int(retries), float(retry_wait_s), sleep
        self.journal = Path(journal_dir) if journal_dir else None
        self.job_ids: list[str] = []
        self.submitted = self.from_journal = self.retried = 0
        self.max_qpu_seconds = None if max_qpu_seconds is None else float(max_qpu_seconds)
        self.qpu_seconds_used: float | None = None  # measured by the service; None until a job reports usage

    def _key(self, key_prefix: str, spec: JobSpec, angles: np.ndarray) -> str:
        digest = hashlib.sha256(key_prefix.encode())
        digest.update(np.asarray(spec.blocks, dtype=np.int64).tobytes())
        digest.update(np.ascontiguousarray(angles[spec.start : spec.stop][:, list(spec.blocks)]).tobytes())
        return digest.hexdigest()[:32]

    def _load(self, key: str) -> np.ndarray | None:
        if self.journal is None or not (self.journal / f"{key}.npy").exists():
            return None
        return np.load(self.journal / f"{key}.npy")

    def _save(self, key: str, counts: np.ndarray) -> None:
        if self.journal is None:
            return
        self.journal.mkdir(parents=True, exist_ok=True)
        with replacing(self.journal / f"{key}.npy", suffix=".npy") as tmp:  # a job is journaled whole or not at all
            np.save(tmp, counts)

    def run(
        self,
        specs: Sequence[JobSpec],
        pubs_of: Callable[[JobSpec], list],
        submit: Callable[[list], object],
        collect: Callable[[object, JobSpec], np.ndarray],
        angles: np.ndarray,
        key_prefix: str,
    ) -> list[np.ndarray]:
        """Counts of every job in ``specs`` order.

        ``pubs_of(spec)`` builds a job's primitive unified blocs, ``submit(pubs)`` sends them, ``collect(result, spec)``
        turns a finished job into counts; ``angles`` ``(tokens, blocks, b - 1)`` and ``key_prefix`` (backend,
        compiled circuits, shots, seed, noise) make each job's journal key.

        Raises:
            QadaptError: a job failed permanently, or transiently more than ``retries`` times; every job finished
                before it is in the journal (when one is set), so the same evaluation run again continues there.
        """
        transient = transient_errors()
        results: list[np.ndarray | None] = [None] * len(specs)
        keys = [self._key(key_prefix, s, angles) for s in specs]
        todo = []
        for i, key in enumerate(keys):
            cached = self._load(key)
            if cached is not None:
                results[i] = cached
                self.from_journal += 1
            else:
                todo.append(i)
        if self.from_journal:
            log(
                f"device journal {self.journal}: {self.from_journal} of {len(specs)} jobs already measured, "
                f"{len(todo)} to run"
            )
        attempts = {i: 0 for i in todo}
        waiting = list(reversed(todo))  # popped from the end: submission in order
        in_flight: list[tuple[int, object]] = []
        with Progress("sampler jobs", total=len(specs), unit="jobs", completed=len(specs) - len(todo)) as bar:
            while waiting or in_flight:
                while waiting and len(in_flight) < self.max_jobs_in_flight:
                    self._check_budget(len(waiting))
                    i = waiting.pop()
                    job = self._attempt(lambda i=i: submit(pubs_of(specs[i])), i, attempts, transient, waiting)
                    if job is not None:
                        self.job_ids.append(str(job.job_id()))
                        self.submitted += 1
                        in_flight.append((i, job))
                if not in_flight:
                    continue
                i, job = in_flight.pop(0)  # the oldest first: the service runs them in order
                counts = self._attempt(
                    lambda i=i, job=job: collect(job.result(), specs[i]), i, attempts, transient, waiting
                )
                if counts is not None:
                    results[i] = counts
                    self._save(keys[i], counts)
                    self._count_usage(job)
                    bar.advance(1)
        return results  # type: ignore[return-value]

    def _count_usage(self, job) -> None:
        """Add a finished job's QPU usage as the service measured it (``job.usage()``, else its metrics'
        ``usage.quantum_seconds`` / ``qpu_charge_time_seconds``); a sampler that reports none (Aer) adds nothing."""
        seconds = None
        try:
            seconds = float(job.usage())
        except Exception:  # noqa: BLE001 - a job without usage(), or a service that cannot say
            try:
                usage = job.metrics().get("usage", {})
                seconds = float(usage.get("quantum_seconds", usage.get("qpu_charge_time_seconds")))
            except Exception:  # noqa: BLE001 - no metrics either: nothing measured
                return
        self.qpu_seconds_used = (self.qpu_seconds_used or 0.0) + seconds

    def _check_budget(self, left: int) -> None:
        """Stop before the next submission once the measured usage has reached ``max_qpu_seconds``."""
        if self.max_qpu_seconds is None or self.qpu_seconds_used is None:
            return
        if self.qpu_seconds_used >= self.max_qpu_seconds:
            kept = (
                f"the finished jobs are kept in {self.journal}: run the same command with a higher "
                "device.max_qpu_seconds to continue from there"
                if self.journal
                else "set device.journal_dir to keep finished jobs for a rerun"
            )
            raise QadaptError(
                f"device.max_qpu_seconds={self.max_qpu_seconds:g} reached: the jobs so far used "
                f"{self.qpu_seconds_used:,.1f} s of QPU time (measured by the service), {left} jobs not sent; {kept}"
            )

    def _attempt(self, action, i: int, attempts: dict[int, int], transient, waiting: list[int]):
        """``action()``, or None after a transient error with the job put back in the queue (within the retries)."""
        try:
            return action()
        except transient as err:
            attempts[i] += 1
            if attempts[i] > self.retries:
                what = f"{type(err).__name__}: {err} (after {self.retries} retries)"
                raise QadaptError(self._failure(i, what)) from None
            wait = self.retry_wait_s * 2 ** (attempts[i] - 1)
            log(f"job {i}: {type(err).__name__}: {err}; retry {attempts[i]}/{self.retries} in {wait:.0f} s")
            self.retried += 1
            self.sleep(wait)
            waiting.append(i)
            return None
        except QadaptError:
            raise
        except Exception as err:
            raise QadaptError(self._failure(i, f"{type(err).__name__}: {err}")) from None

    def _failure(self, i: int, what: str) -> str:
        kept = (
            f"the jobs finished so far are kept in {self.journal}: run the same command again to continue"
            if self.journal
            else "set device.journal_dir to keep finished jobs for a rerun"
        )
        return f"device job {i} failed: {what}; {kept}"
