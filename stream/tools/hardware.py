"""The machine a figure was measured on: CPU model and vector flags, cores, onnxruntime providers."""

from __future__ import annotations

import os
import platform
from typing import Any

from models.calibration import cpu_identity


def cpu_model() -> str:
    return cpu_identity()["model"]


def hardware() -> dict[str, Any]:
    import onnxruntime as ort

    from models.encoder import physical_cores

    identity = cpu_identity()  # the model name and the flags auto's calibration is keyed by
    return {
        "cpu": identity["model"],
        "physical_cores": physical_cores(),
        "logical_cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "flags": identity["flags"],
        "python": platform.python_version(),
        "onnxruntime": ort.__version__,
        "providers": ort.get_available_providers(),
    }


def hardware_line(hw: dict[str, Any]) -> str:
    return (
        f"hardware: {hw['cpu']}, {hw['physical_cores']} physical cores ({hw['logical_cpus']} CPUs), "
        f"{' '.join(hw['flags']) or 'no avx2'}; Python {hw['python']}; onnxruntime {hw['onnxruntime']} "
        f"({', '.join(hw['providers'])})"
    )
