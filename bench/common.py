"""What every figure shares: result lines, statistics, the machine, the benchmark dialogue."""

from __future__ import annotations

import os
import platform
import statistics
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field

from parley.server.engine.model import (
    Broadcast,
    Dialogue,
    ExecutionModel,
    Participant,
    Persona,
    Sequential,
    Speaker,
    SpeakerKind,
)


def participant_names(count: int) -> tuple[str, ...]:
    """Benchmark participants' names: every figure's events have the same sizes."""
    return tuple(f"participant-{index:03d}" for index in range(count))


PARTICIPANTS = participant_names(4)
# What every echo participant answers: a scripted model, like the peer frameworks'
# benchmarks use. Plain echo replies quote what they were given, so they would grow
# geometrically with every turn.
REPLY = (
    "I agree with the direction, but we should check the numbers first: the latency "
    "budget is tight and the second option costs twice as much to run."
)
PROMPT = "What should we do about the slow build?"
USER = Speaker(SpeakerKind.USER, "Bench")


@dataclass(frozen=True, slots=True)
class Line:
    """One printed result: Parley's number, the reference measured in the same run,
    their ratio, and whether the target holds."""

    label: str
    parley: float
    reference: float
    unit: str
    reference_label: str
    target: str = ""
    met: bool | None = None

    @property
    def ratio(self) -> float:
        return self.parley / self.reference if self.reference else float("inf")


@dataclass(slots=True)
class Figure:
    number: int
    title: str
    lines: list[Line] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add(self, line: Line) -> None:
        self.lines.append(line)

    def note(self, text: str) -> None:
        self.notes.append(text)


@dataclass(frozen=True, slots=True)
class Options:
    """How big and how repeated the measurements are."""

    quick: bool = False

    def scale(self, full: int, quick: int) -> int:
        return quick if self.quick else full


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def percentile(values: Sequence[float], fraction: float) -> float:
    """The nearest-rank percentile (p99 of 1,000 values is the 990th smallest)."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(fraction * len(ordered) + 0.5)))
    return ordered[rank - 1]


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.partition(":")[2].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine() -> str:
    return (
        f"{os.cpu_count()} CPUs ({cpu_model()}), {platform.system()} {platform.release()}, "
        f"Python {sys.version.split()[0]}"
    )


def echo_participants(
    names: Sequence[str] = PARTICIPANTS, **options: str
) -> tuple[Participant, ...]:
    return tuple(
        Participant(Persona(name, role="engineer"), "echo", {"reply": REPLY, **options})
        for name in names
    )


def model_named(name: str) -> ExecutionModel:
    return Sequential() if name == "sequential" else Broadcast()


def bench_dialogue(dialogue_id: str, model: ExecutionModel, **options: str) -> Dialogue:
    return Dialogue(
        id=dialogue_id, participants=echo_participants(**options), execution_model=model
    )


def load() -> str:
    """The 1-minute load average: other work on the machine skews every figure."""
    return f"{os.getloadavg()[0]:.2f}"


def rss_kib(pid: int) -> int:
    """A process's resident set size in KiB, from /proc."""
    with open(f"/proc/{pid}/status", encoding="utf-8") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for process {pid}")
