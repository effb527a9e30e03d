"""The ``device`` options (``configs/device/*.yaml``), one pydantic model each, beside the devices that use them:
``base.py`` reads the simulators' shared keys (:class:`SimulatorOptions`), ``ibm_fake.py`` and ``mitigation.py`` the
keys both IBM devices share (:class:`IBMKeys`); a device's own class is found by its name through
``qadapt.config.option_class`` (``compose`` checks every block against it).

A module of its own, without torch, PennyLane or Qiskit, because every command's config check
(``qadapt.config.compose``) reads it; the devices import their options from here (:mod:`qadapt.schema` has the base
class and the shared types).
"""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

from pydantic import Field

from ..schema import Accepts, NonNegInt, Number, Option, PosInt, Seed, Text, added_later, name_field


class SimulatorOptions(Option):
    """The keys every simulator device takes (``exact`` and the PennyLane devices); absent (a device config written
    before them), each reads as its default: exact probabilities, seed 0, every token, the scored positions."""

    group: ClassVar[str] = "device"  # no name field of its own: messages name its keys device.<key>

    shots: PosInt | None = Field(None, description="measurements per circuit; null = exact probabilities")
    seed: Seed = Field(0, description="seed of the shot sampling")
    max_tokens: PosInt | None = Field(
        None,
        description="device evaluations stop after the first N tokens of the test split (tokens); null = the whole "
        "task",
    )
    positions: Literal["scored", "all"] = Field(
        "scored",
        description="scored: the adapter sites run on this device only at positions whose prediction is scored "
        "(others exact); all: at every position",
    )


class ExactOptions(SimulatorOptions):
    """Exact execution in torch (``device=exact``; ``qadapt/devices/exact.py``): the block unitaries as one batched,
    differentiable matmul (the only device that trains); ``shots`` samples the exact probabilities instead."""

    name: Literal["exact"] = name_field("exact", "device")


class PennyLaneOptions(SimulatorOptions):
    """A PennyLane simulator (``qadapt/devices/pennylane.py``): each (token, block) is a q-qubit circuit StatePrep ->
    QubitUnitary -> probs, all broadcast in one QNode call. ``device=default_qubit`` (PennyLane's Python simulator),
    ``lightning_qubit`` (C++ state vectors on the CPU), ``lightning_gpu`` (needs the ``gpu`` extra, cuQuantum, and a
    CUDA GPU): the same keys, one class."""

    name: Literal["default_qubit", "lightning_qubit", "lightning_gpu"] = name_field(
        "default_qubit, lightning_qubit or lightning_gpu", "device"
    )
    backend: Text = Field(description="PennyLane device name (default.qubit, lightning.qubit, lightning.gpu)")


SampledShots = Annotated[int, Field(ge=1)]


SAMPLED_SHOTS_TEXT = "an integer >= 1 (this device samples: set device.shots, e.g. 8192)"


# error mitigation of the IBM devices (qadapt/devices/mitigation.py)
Mitigation = Literal["none", "readout"]


MITIGATION_TEXT = (
    "none; readout: measurement-error mitigation (mthree calibration on the same backend, inverse assignment "
    "matrices, nearest probability distribution)"
)


DDSequence = Literal["XX", "XpXm", "XY4"] | None


DD_TEXT = "IBM Runtime Sampler dynamical decoupling sequence; null = off"


Twirling = Literal["none", "gates", "measure", "both"]


TWIRLING_TEXT = "IBM Runtime Sampler Pauli twirling of gates, measurements or both; none = off"


class IBMKeys(Option):
    """The keys both IBM devices take: sampling, compilation, job bounding and retries, the journal, mitigation."""

    group: ClassVar[str] = "device"  # no name field of its own: messages name its keys device.<key>

    shots: Annotated[SampledShots, Accepts(SAMPLED_SHOTS_TEXT)] = Field(description="measurements per circuit")
    seed: Seed = Field(description="seed of the sampling (torch generator and Aer); recorded only on hardware")
    optimization_level: Annotated[int, Field(ge=0, le=3)] = Field(description="Qiskit transpiler preset level")
    max_tokens: PosInt | None = Field(
        description="device evaluations stop after the first N tokens of the test split (tokens; QPU time costs); "
        "null = the whole task"
    )
    positions: Literal["scored", "all"] = Field(
        description="scored: only positions whose prediction is scored run on this device (others exact); all: every "
        "position"
    )
    max_circuits_per_job: PosInt = Field(
        description="(token, block) circuits per job at most (IBM Runtime caps the executions of one job)"
    )
    max_jobs_in_flight: PosInt = Field(description="jobs submitted and unfinished at once at most (jobs)")
    retries: NonNegInt = Field(description="retries of a job after a transient error (network, API, a failed job)")
    retry_wait_s: Annotated[Number, Field(ge=0)] = Field(
        description="first back-off before a retry, doubled each time (seconds)"
    )
    journal_dir: Text | None = Field(
        description="directory keeping finished jobs' counts for reuse when the same evaluation runs again (path; "
        "ibm_fake: engine=aer only); null = not kept"
    )
    max_qpu_seconds: Annotated[Number, Field(gt=0)] | None = added_later(
        None,
        "cap on an evaluation's estimated QPU time (seconds; the estimate qadapt plan prints: circuits per token x "
        "QPU seconds per circuit x the tokens sent to the device): an evaluation above it is refused before its "
        "first job; device=ibm: 600 (an Open Plan month), null = no cap",
    )
    mitigation: Mitigation = added_later("none", MITIGATION_TEXT)
    dynamical_decoupling: DDSequence = added_later(
        None, DD_TEXT + " (ibm_fake refuses it: the simulators do not apply it)"
    )
    twirling: Twirling = added_later("none", TWIRLING_TEXT + " (ibm_fake refuses it: the simulators do not apply it)")


class IBMFakeOptions(IBMKeys):
    """A fake IBM backend with its noise model (``device=ibm_fake``; ``qadapt/devices/ibm_fake.py``): the compiled
    block circuits sampled with the backend's Aer noise model (fused in torch, or Aer's own sampler)."""

    name: Literal["ibm_fake"] = name_field("ibm_fake", "device")
    backend: Text = Field(description="qiskit-ibm-runtime fake_provider backend name (FakeFez: 156-qubit Heron r2)")
    noise: bool = Field(
        description="apply the backend's noise model; false = ideal sampling of the same compiled circuits"
    )
    engine: Literal["fused", "aer"] = Field(
        description="fused: the noise model applied exactly in torch, batched over all circuits; aer: qiskit-aer "
        "SamplerV2 shot-by-shot trajectories (the reference)"
    )


class IBMOptions(IBMKeys):
    """IBM Quantum hardware (``device=ibm``; ``qadapt/devices/ibm.py``) via qiskit-ibm-runtime's client-side Sampler
    (SamplerV2 on runtimes before 0.50) in Batch mode; the account comes from QISKIT_IBM_TOKEN / QISKIT_IBM_INSTANCE
    or a saved one, never from a config."""

    name: Literal["ibm"] = name_field("ibm", "device")
    channel: Text = Field(description="qiskit-ibm-runtime channel (ibm_quantum_platform, ibm_cloud)")
    backend: Text | None = Field(
        description="QPU name (the paper used ibm_basquecountry); null = the least busy operational QPU"
    )
