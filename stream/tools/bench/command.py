"""``segstream bench``: the encoder against sentence-transformers, the worker end to end, and user
state, each against a baseline measured in the same run. Not part of the test suite."""

from __future__ import annotations

import json
from typing import Any

from stream.tools.bench.end_to_end import end_to_end_section, print_end_to_end_section
from stream.tools.bench.encoder import encoder_section, print_encoder_section
from stream.tools.bench.soak import print_soak_section, soak_section
from stream.tools.hardware import hardware, hardware_line
from stream.tools.bench.state import print_state_section, state_section


def command(
    n_texts: int = 256,
    repeats: int = 3,
    threads: int | None = None,
    gpu_batch: int = 256,
    gpu_texts: int = 16_384,
    end_to_end: bool = False,
    reviews: int = 2225,
    ratings: int = 100_000,
    state: bool = False,
    state_events: int = 10_000,
    encoder: bool = True,
    as_json: bool = False,
    soak_minutes: float | None = None,
    soak_rate: float = 1000.0,
    soak_users: int = 20_000,
) -> int:
    if min(n_texts, repeats, state_events, gpu_batch, gpu_texts) < 1:
        raise SystemExit("--texts, --repeats, --state-events, --gpu-batch and --gpu-texts must be at least 1")
    hw = hardware()
    report: dict[str, Any] = {"hardware": hw}
    if encoder:
        report["encoder"] = encoder_section(n_texts, repeats, threads, gpu_batch, gpu_texts)
    if end_to_end:
        report["end_to_end"] = end_to_end_section(reviews, ratings, repeats)
    if state:
        report["state"] = state_section(state_events, repeats)
    if soak_minutes is not None:
        if soak_minutes <= 0 or soak_rate <= 0 or soak_users < 1:
            raise SystemExit("--soak and --rate must be positive and --users at least 1")
        report["soak"] = soak_section(soak_minutes, soak_rate, soak_users)
    if as_json:
        print(json.dumps(report, indent=2))
        return 0
    print(hardware_line(hw))
    if encoder:
        print_encoder_section(report["encoder"])
    if end_to_end:
        print_end_to_end_section(report["end_to_end"])
    if state:
        print_state_section(report["state"])
    if soak_minutes is not None:
        print_soak_section(report["soak"])
    return 0
