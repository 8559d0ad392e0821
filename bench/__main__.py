"""`python -m bench [figure ...] [--quick] [--markdown]`: measure and print the figures.

Every figure prints Parley's number, the reference measured in the same run, their
ratio, and the target. Without arguments all five figures run (under ten minutes on two
cores; `--quick` takes about one).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

from bench import concurrency, engine, memory, throughput, ttft
from bench.common import Figure, Line, Options, load, machine

FIGURES: dict[str, Callable[[Options], Figure]] = {
    "engine": engine.run,
    "throughput": throughput.run,
    "ttft": ttft.run,
    "concurrency": concurrency.run,
    "memory": memory.run,
}


def number(value: float) -> str:
    if value >= 100:
        return f"{value:,.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.3f}"


def verdict(line: Line) -> str:
    if line.met is None:
        return ""
    return "met" if line.met else "MISSED"


def render_text(figure: Figure) -> str:
    rows = [("", "Parley", "reference", "ratio", "target", "")]
    rows.extend(
        (
            line.label,
            f"{number(line.parley)} {line.unit}",
            f"{number(line.reference)} ({line.reference_label})",
            f"{line.ratio:.2f}x",
            line.target,
            verdict(line),
        )
        for line in figure.lines
    )
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]
    text = [f"({figure.number}) {figure.title}"]
    text.extend(
        "  " + "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True))
        for row in rows
    )
    text.extend(f"  - {note}" for note in figure.notes)
    return "\n".join(line.rstrip() for line in text)


def render_markdown(figure: Figure) -> str:
    text = [
        f"### ({figure.number}) {figure.title}",
        "",
        "| | Parley | reference | ratio | target | |",
        "|---|---:|---|---:|---|---|",
    ]
    text.extend(
        f"| {' '.join(line.label.split())} | {number(line.parley)} {line.unit} | "
        f"{number(line.reference)} ({line.reference_label}) | {line.ratio:.2f}x | "
        f"{line.target} | {verdict(line)} |"
        for line in figure.lines
    )
    text.append("")
    text.extend(f"- {note}" for note in figure.notes)
    return "\n".join(text) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("figures", nargs="*", metavar="figure", help=", ".join(FIGURES))
    parser.add_argument("--quick", action="store_true", help="fewer and smaller repetitions")
    parser.add_argument("--markdown", action="store_true", help="print tables as Markdown")
    args = parser.parse_args(argv)
    unknown = sorted(set(args.figures) - set(FIGURES))
    if unknown:
        parser.error(f"unknown figure(s) {', '.join(unknown)}; choose from {', '.join(FIGURES)}")
    options = Options(quick=args.quick)
    render = render_markdown if args.markdown else render_text
    started = time.monotonic()
    print(f"Parley benchmarks{' (quick)' if args.quick else ''} on {machine()}", flush=True)
    print(f"load average {load()} at the start\n", flush=True)
    missed = 0
    for name in args.figures or FIGURES:
        figure = FIGURES[name](options)
        missed += sum(1 for line in figure.lines if line.met is False)
        print(render(figure), flush=True)
        print(flush=True)
    print(
        f"{'all targets met' if not missed else f'{missed} target(s) missed'}; "
        f"{time.monotonic() - started:.0f} s; load average {load()} at the end"
    )


if __name__ == "__main__":
    main()
