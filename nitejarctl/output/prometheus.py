"""Prometheus' text exposition format (0.0.4), for node_exporter's textfile
collector or a push to a Pushgateway: `# HELP` and `# TYPE` for each metric,
then one line per sample, label values escaped as the format requires."""

from __future__ import annotations

import math
from dataclasses import dataclass, field


@dataclass
class Metric:
    """One metric family: its samples are (labels, value) pairs."""

    name: str
    help: str
    samples: list = field(default_factory=list)
    kind: str = "gauge"

    def add(self, value, **labels) -> Metric:
        self.samples.append((labels, value))
        return self


def _help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def _label(value) -> str:
    return str(value).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _value(value) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int):
        return str(value)
    number = float(value)
    if math.isnan(number):
        return "NaN"
    if math.isinf(number):
        return "+Inf" if number > 0 else "-Inf"
    return repr(number)


def render(metrics) -> str:
    """The text of `metrics` (Metric families; those without samples are left out)."""
    lines = []
    for metric in metrics:
        if not metric.samples:
            continue
        lines.append(f"# HELP {metric.name} {_help(metric.help)}")
        lines.append(f"# TYPE {metric.name} {metric.kind}")
        for labels, value in metric.samples:
            inner = ",".join(f'{key}="{_label(v)}"' for key, v in labels.items())
            lines.append(f"{metric.name}{{{inner}}} {_value(value)}" if inner else f"{metric.name} {_value(value)}")
    return "\n".join(lines) + "\n"
