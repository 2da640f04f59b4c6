"""The machine a figure was measured on: CPU model and vector flags, cores, onnxruntime providers."""

from __future__ import annotations

import os
import platform
from pathlib import Path
from typing import Any

from models.calibration import KEY_FLAGS


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cpu_flags() -> list[str]:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
                return sorted(flags & KEY_FLAGS)
    except OSError:
        pass
    return []


def hardware() -> dict[str, Any]:
    import onnxruntime as ort

    from models.encoder import physical_cores

    return {
        "cpu": cpu_model(),
        "physical_cores": physical_cores(),
        "logical_cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "flags": cpu_flags(),
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
