"""qadapt/benchmarks.py: what every benchmark file records of its machine (issue 41: a ratio measured on one CPU was
quoted for another)."""

from __future__ import annotations

from qadapt.benchmarks import cpu_facts, machine

CPUINFO = """processor\t: 0
vendor_id\t: AuthenticAMD
model name\t: AMD EPYC 9R14 96-Core Processor
flags\t\t: fpu sse2 avx avx2 fma avx512f avx512dq avx512_bf16 avx512_vnni
processor\t: 1
model name\t: AMD EPYC 9R14 96-Core Processor
"""


def test_cpu_facts_name_the_model_and_the_gemm_instruction_sets(tmp_path):
    info = tmp_path / "cpuinfo"
    info.write_text(CPUINFO)
    assert cpu_facts(info) == {"cpu": "AMD EPYC 9R14 96-Core Processor", "isa": ["AVX2", "AVX-512", "AVX-512-BF16"]}
    info.write_text(
        CPUINFO.replace(" avx512f avx512dq avx512_bf16", "").replace("flags\t\t: fpu", "flags\t: fpu amx_tile")
    )
    assert cpu_facts(info)["isa"] == ["AVX2", "AMX"]


def test_machine_says_when_the_kernels_are_capped(monkeypatch):
    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)
    monkeypatch.delenv("DNNL_MAX_CPU_ISA", raising=False)
    monkeypatch.delenv("MKL_ENABLE_INSTRUCTIONS", raising=False)
    assert "capped" not in machine()
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX2")
    assert "kernels capped: ONEDNN_MAX_CPU_ISA=AVX2" in machine()
