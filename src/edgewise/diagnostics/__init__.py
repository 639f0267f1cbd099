"""The diagnostics stage: why a circuit is what it is. Constant writers, minimal faithful circuits with the reason
each edge could go, redundancy, and what a circuit actually outputs; `diagnose` gathers them into one report."""

from .behaviour import BehaviourCheck, behaviour_check, top_class
from .constant_writers import constant_writers, writer_variation
from .diagnose import ABLATIONS, Diagnosis, DiagnosticsSettings, diagnose, format_diagnosis
from .minimal_circuit import MinimalCircuit, minimal_circuit
from .misses import MissReport, explain_misses
from .redundancy import RedundantGroup, redundant_groups

__all__ = [
    "ABLATIONS",
    "BehaviourCheck",
    "Diagnosis",
    "DiagnosticsSettings",
    "MinimalCircuit",
    "MissReport",
    "RedundantGroup",
    "behaviour_check",
    "constant_writers",
    "diagnose",
    "explain_misses",
    "format_diagnosis",
    "minimal_circuit",
    "redundant_groups",
    "top_class",
    "writer_variation",
]
