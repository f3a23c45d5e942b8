"""`sessions stats` and `memories stats`: where things stand, at a glance."""

from __future__ import annotations

import click

from nitejarctl.cli.context import pass_settings
from nitejarctl.cli.options import NitejarCommand, agent_option


@click.command(name="stats", cls=NitejarCommand)
@pass_settings
def sessions_stats(settings):
    """Counts of sprite sessions by status and agent, and how long ago the
    active ones were last active (a histogram).

    \b
    Examples:
      nitejarctl sessions stats
      nitejarctl sessions stats -o json | jq .by_status
    """
    from nitejarctl.db import now
    from nitejarctl.output import Column, bar
    from nitejarctl.repositories.stats import session_stats

    report = session_stats(settings.database(), now=now())
    largest = max([a["count"] for a in report["active_age"]] + [0])
    ages = [dict(a, bar=bar(a["count"], largest)) for a in report["active_age"]]
    statuses = [{"status": s, "count": n} for s, n in report["by_status"].items()]
    _emit(settings, report, [
        ("by status", statuses, ["status", Column("count", "int")]),
        ("active sessions by time since last activity", ages,
         ["age", Column("count", "int"), "bar"]),
        ("top agents", report["by_agent"],
         ["agent_id", "agent_name", Column("active", "int"), Column("closed", "int"),
          Column("error", "int"), Column("total", "int")]),
    ])


@click.command(name="stats", cls=NitejarCommand)
@agent_option("Only this agent.")
@pass_settings
def memories_stats(settings, agent_id):
    """Per agent: how many memories, how many pinned, and how their strengths
    spread (a histogram from 0.0 to 1.0).

    \b
    Examples:
      nitejarctl memories stats
      nitejarctl memories stats --agent support-bot -o json
    """
    from nitejarctl.output import Column, spark
    from nitejarctl.repositories.stats import memory_stats

    report = memory_stats(settings.database(), agent_id=agent_id)
    rows = [dict(a, strengths=spark(a["histogram"])) for a in report["by_agent"]]
    _emit(settings, report, [
        ("memories by agent (strengths: 0.0 … 1.0)", rows,
         ["agent_id", "agent_name", Column("count", "int"), Column("permanent", "int"),
          Column("mean_strength", "float"), "strengths"]),
    ])


def _emit(settings, report, sections) -> None:
    from nitejarctl.output import emit_figures

    emit_figures(report, sections, settings.fmt, color=settings.color)
