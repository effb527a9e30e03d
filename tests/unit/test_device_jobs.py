"""Jobs of the Qiskit devices (qadapt/devices/jobs.py): bounded jobs, retries after transient errors, and a journal
that lets an evaluation which failed midway continue with only the unmeasured jobs, to the same counts."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from qadapt.adapters.cua import run_blocks
from qadapt.config import compose
from qadapt.devices import get
from qadapt.devices.jobs import split_jobs
from qadapt.errors import QadaptError
from qadapt.quantum import BlockUnitaryCircuit, random_block_unitaries


@pytest.mark.parametrize("blocks,tokens,cap", [(6, 16, 40), (3, 100, 30), (5, 7, 1), (144, 8, 1000)])
def test_jobs_cover_every_circuit_once_within_the_cap(blocks, tokens, cap):
    jobs = split_jobs(blocks, tokens, cap)
    seen = np.zeros((blocks, tokens), dtype=int)
    for job in jobs:
        assert 0 < job.circuits <= cap
        seen[list(job.blocks), job.start : job.stop] += 1
    assert (seen == 1).all()


class _BrokenJob:
    def __init__(self, job):
        self.job = job

    def job_id(self):
        return self.job.job_id()

    def result(self):
        raise RuntimeError("backend went away (simulated)")


class _FlakySampler:
    """Aer's sampler, with chosen calls failing: a transient error at submission, a permanent one at collection."""

    def __init__(self, inner, fail_submit=(), fail_result=()):
        self.inner, self.fail_submit, self.fail_result = inner, set(fail_submit), set(fail_result)
        self.calls, self.pubs = 0, []

    def run(self, pubs, shots):
        self.calls += 1
        if self.calls in self.fail_submit:
            raise ConnectionError("connection reset (simulated)")
        self.pubs.append(len(pubs))
        job = self.inner.run(pubs, shots=shots)
        return _BrokenJob(job) if self.calls in self.fail_result else job


def _device(journal=None):
    over = [
        "device=ibm_fake",
        "device.engine=aer",
        "device.noise=false",
        "device.shots=256",
        "device.max_circuits_per_job=40",
        "device.max_jobs_in_flight=2",
        "device.retry_wait_s=0.5",
    ]
    device = get(compose([*over, f"device.journal_dir={journal}" if journal else "device.journal_dir=null"]).device)
    waits = []
    device.jobs.sleep = waits.append
    return device, waits


def _inputs():
    gen = torch.Generator().manual_seed(0)
    circuit = BlockUnitaryCircuit(random_block_unitaries(6, 4, gen, scale=0.5), 2)
    x = torch.randn(16, 24, generator=gen, dtype=torch.float64)  # 16 tokens x 6 blocks = 96 circuits: 3 jobs of 32
    return circuit, x


def test_a_failed_evaluation_resumes_from_the_journal_to_the_same_counts(tmp_path):
    circuit, x = _inputs()
    clean, _ = _device()
    reference = run_blocks(clean, circuit, x)
    assert clean.jobs.submitted == 3 and len(clean.job_ids) == 3

    flaky, waits = _device(tmp_path / "journal")
    # call 1 (job 0) drops the connection: job 0 is sent again by call 2 after 0.5 s; call 3 sends job 1; the job 2 that
    # call 4 sends fails for good when collected, after jobs 0 and 1 were
    flaky.sampler = _FlakySampler(flaky.sampler, fail_submit={1}, fail_result={4})
    with pytest.raises(QadaptError, match=r"device job 2 failed: RuntimeError.*run the same command again"):
        run_blocks(flaky, circuit, x)
    assert waits == [0.5] and flaky.jobs.retried == 1
    kept = sorted((tmp_path / "journal").glob("*.npy"))
    assert len(kept) == 2  # jobs 0 and 1 finished before job 2 failed

    again, _ = _device(tmp_path / "journal")
    again.sampler = _FlakySampler(again.sampler)
    resumed = run_blocks(again, circuit, x)
    assert again.jobs.from_journal == 2 and again.jobs.submitted == 1 and again.sampler.pubs == [2]  # only job 2 ran
    torch.testing.assert_close(resumed, reference, rtol=0, atol=0)  # Aer is seeded: the same counts as one clean run
    assert len(list((tmp_path / "journal").glob("*.npy"))) == 3


def test_retries_are_bounded_and_other_circuits_are_not_mixed_up(tmp_path):
    circuit, x = _inputs()
    device, waits = _device(tmp_path / "j")
    device.sampler = _FlakySampler(device.sampler, fail_submit={1, 2, 3, 4})
    with pytest.raises(QadaptError, match=r"ConnectionError.*after 3 retries"):
        run_blocks(device, circuit, x)
    assert waits == [0.5, 1.0, 2.0]  # exponential back-off
    # a journal entry belongs to its circuits and inputs: other angles are measured, not read back
    first, _ = _device(tmp_path / "k")
    run_blocks(first, circuit, x)
    other, _ = _device(tmp_path / "k")
    run_blocks(other, circuit, x.flip(0))
    assert other.jobs.from_journal == 0 and other.jobs.submitted == 3


class _BilledJob:
    """A finished job reporting the QPU seconds the service charged for it (``usage()``, as IBM Runtime's jobs do)."""

    def __init__(self, job, seconds):
        self.job, self.seconds = job, seconds

    def job_id(self):
        return self.job.job_id()

    def result(self):
        return self.job.result()

    def usage(self):
        return self.seconds


class _BilledSampler:
    def __init__(self, inner, seconds):
        self.inner, self.seconds, self.sent = inner, seconds, 0

    def run(self, pubs, shots):
        self.sent += 1
        return _BilledJob(self.inner.run(pubs, shots=shots), self.seconds)


def test_measured_usage_is_summed_and_a_cap_stops_the_evaluation_resumably(tmp_path):
    """Each finished job's own usage is added (device_qpu_seconds_used); once it reaches device.max_qpu_seconds no
    job is sent and the evaluation stops with the finished jobs journaled; the same command with a higher cap
    continues from there and pays only for the rest (issue 44)."""
    circuit, x = _inputs()
    plain, _ = _device()
    run_blocks(plain, circuit, x)
    assert plain.jobs.qpu_seconds_used is None  # Aer reports no usage: nothing measured, nothing invented

    # 3 jobs of 10 s, one at a time, a cap of 15 s: jobs 0 and 1 run (the usage is below the cap when each is
    # sent), job 2 is not sent
    capped, _ = _device(tmp_path / "journal2")
    capped.jobs.max_qpu_seconds, capped.jobs.max_jobs_in_flight = 15.0, 1
    capped.sampler = _BilledSampler(capped.sampler, 10.0)
    with pytest.raises(QadaptError, match=r"20.0 s of QPU time .*1 jobs not sent.*higher device.max_qpu_seconds"):
        run_blocks(capped, circuit, x)
    assert capped.sampler.sent == 2 and len(list((tmp_path / "journal2").glob("*.npy"))) == 2
    resumed, _ = _device(tmp_path / "journal2")
    resumed.jobs.max_qpu_seconds = 100.0
    resumed.sampler = _BilledSampler(resumed.sampler, 10.0)
    run_blocks(resumed, circuit, x)
    assert resumed.jobs.from_journal == 2 and resumed.sampler.sent == 1 and resumed.jobs.qpu_seconds_used == 10.0
