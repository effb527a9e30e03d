"""qadapt: reproduce quantum and quantum-inspired adapters on real models and real data."""

__version__ = "0.1.0"
