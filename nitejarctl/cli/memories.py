"""`nitejarctl memories`: list, show, add, edit, delete, pin, decay and prune
agents' long-term memories."""

from __future__ import annotations

import sys

import click

from nitejarctl.cli import completers
from nitejarctl.cli.changes import Words, run_bulk, show_changed
from nitejarctl.cli.context import pass_settings
from nitejarctl.cli.ids import prefixed
from nitejarctl.cli.options import (
    BoundedIntRange,
    FiniteFloatRange,
    agent_option,
    confirm,
    dry_run_option,
    group,
    ignore_missing_option,
    listing,
    listing_options,
    require_confirmation,
    yes_option,
)
from nitejarctl.cli.stats import memories_stats
from nitejarctl.errors import UsageProblem, missing_ids

STRENGTH = FiniteFloatRange(0.0, 1.0)
TABLE_CONTENT = 80  # characters of content a listing table shows (show prints it all)
KINDS = {"strength": "float", "previous_strength": "float", "rate": "float", "permanent": "bool",
         "access_count": "int", "last_accessed_at": "time", "created_at": "time", "updated_at": "time"}


@group()
def memories():
    """Agents' long-term memories: list, edit, pin, decay and prune.

    \b
    Examples:
      nitejarctl memories list --agent ops --search deploy
      nitejarctl memories decay --dry-run
      nitejarctl memories prune --keep 100 --yes
    """


memories.add_command(memories_stats)


# --------------------------------------------------------------------- helpers


def _columns(names=None):
    from nitejarctl.output import Column
    from nitejarctl.repositories.memories import LIST_FIELDS

    return [Column(n, KINDS.get(n, "text")) for n in (names or LIST_FIELDS)]


def _one_line(rows):
    """Tables show the start of each content on one line (show prints it all)."""
    for row in rows:
        content = row.get("content")
        if isinstance(content, str):
            one_line = " ".join(content.split())
            if len(one_line) > TABLE_CONTENT:
                one_line = one_line[:TABLE_CONTENT - 1] + "…"
            row = {**row, "content": one_line}
        yield row


def _display(settings):
    return _one_line if settings.fmt == "table" else None


def _content_arg(content: str) -> str:
    """`-` reads the content from stdin (for long or multi-line text)."""
    if content == "-":
        try:
            content = sys.stdin.read()
            content.encode("utf-8")  # read with surrogateescape (a C locale)
        except UnicodeDecodeError as exc:
            raise UsageProblem(f"cannot read the memory content from stdin: not UTF-8 ({exc.reason})") from None
        except UnicodeEncodeError:
            raise UsageProblem("cannot read the memory content from stdin: not UTF-8") from None
    if "\x00" in content:  # PostgreSQL cannot store it; no text has it
        raise UsageProblem("memory content must not contain NUL characters")
    return content


def _words(verb: str, past: str, label: str = "") -> Words:
    return Words(verb, past, "memory", "memories", label=label)


# ----------------------------------------------------------------------- reads


@memories.command(name="list", counts=True)
@agent_option("Only this agent's memories.")
@click.option("--min-strength", type=STRENGTH, help="Only memories at least this strong.")
@click.option("--permanent/--no-permanent", default=None,
              help="Only pinned (or only unpinned) memories [default: both].")
@click.option("--search", metavar="TEXT",
              help="Content contains TEXT (literally, ignoring case; % and _ are not wildcards).")
@listing_options
@pass_settings
def memories_list(settings, agent_id, min_strength, permanent, search, limit):
    """List memories, strongest first within each agent.

    Embeddings are never listed; tables show the first characters of each
    content (use `show` or -o json for all of it).

    \b
    Examples:
      nitejarctl memories list --agent ops
      nitejarctl memories list --no-permanent --min-strength 0.5 -o json
      nitejarctl memories list --search "100%" -o ids
    """
    from nitejarctl.repositories import memories as repo

    query = repo.list_query(settings.database(), agent_id=agent_id, min_strength=min_strength,
                            permanent=permanent, search=search)
    listing(settings, query, _columns(), limit=limit, rows=_display(settings), noun="memories",
            table=("content", "agent", "strength", "permanent", "last_accessed_at", "access_count",
                   "created_at", "updated_at", "id"))


@memories.command(name="show")
@click.argument("memory_id", metavar="ID", shell_complete=completers.memory_ids,
              callback=prefixed("AgentMemory", "memories"))
@pass_settings
def memories_show(settings, memory_id):
    """Show one memory in full (its embedding as a size in bytes).

    \b
    Examples:
      nitejarctl memories show 3f2c9a4e-…
      nitejarctl memories show 3f2c9a4e-… -o json | jq -r .content
    """
    from nitejarctl.repositories import memories as repo

    row = repo.get(settings.database(), memory_id)
    settings.emit_one(row, kinds={"strength": "float", "permanent": "bool", "embedding_bytes": "int"})


# ---------------------------------------------------------------------- writes


@memories.command(name="add")
@click.argument("agent", metavar="AGENT", shell_complete=completers.agents)
@click.argument("content")
@click.option("--permanent", is_flag=True, help="Pin it: it never decays nor is pruned.")
@click.option("--strength", type=STRENGTH, default=1.0, show_default=True, help="Initial strength.")
@pass_settings
def memories_add(settings, agent, content, permanent, strength):
    """Add a memory to an agent (by id or name). CONTENT `-` reads stdin.

    \b
    Examples:
      nitejarctl memories add ops "Deploys happen on Tuesdays"
      nitejarctl memories add ops "The on-call rota is in #ops" --permanent
      nitejarctl memories add ops - < notes.txt
    """
    from nitejarctl.db import now
    from nitejarctl.repositories import agents
    from nitejarctl.repositories import memories as repo

    db = settings.database()
    row = repo.add(db, agents.resolve_id(db, agent), _content_arg(content), permanent=permanent,
                   strength=strength, now=now())
    settings.info(f"added memory {row['id']}")
    settings.emit(_one_line([row]) if settings.fmt == "table" else [row], _columns())


@memories.command(name="edit")
@click.argument("memory_id", metavar="ID", shell_complete=completers.memory_ids,
              callback=prefixed("AgentMemory", "memories"))
@click.argument("content")
@pass_settings
def memories_edit(settings, memory_id, content):
    """Replace a memory's content. CONTENT `-` reads stdin.

    The edit keeps the decay clock: decay owed up to now is applied with it.
    The stored embedding is cleared (it described the old text).

    \b
    Examples:
      nitejarctl memories edit 3f2c9a4e-… "Deploys happen on Wednesdays"
    """
    from nitejarctl.db import now
    from nitejarctl.repositories import memories as repo

    row = repo.edit(settings.database(), memory_id, _content_arg(content), now=now())
    settings.info(f"edited memory {memory_id}")
    settings.emit(_one_line([row]) if settings.fmt == "table" else [row], _columns())


@memories.command(name="delete", counts=True)
@click.argument("ids", metavar="ID...", nargs=-1, required=True, shell_complete=completers.memory_ids,
              callback=prefixed("AgentMemory", "memories"))
@dry_run_option
@yes_option
@ignore_missing_option
@pass_settings
def memories_delete(settings, ids, dry_run, yes, ignore_missing):
    """Delete memories by id.

    \b
    Examples:
      nitejarctl memories delete 3f2c9a4e-… --yes
      nitejarctl memories list --agent old-bot -o ids | xargs -r nitejarctl memories delete -y
    """
    from nitejarctl.output.words import plural
    from nitejarctl.repositories import memories as repo

    db = settings.database()
    ids = list(dict.fromkeys(ids))
    found = repo.find(db, ids)
    missing = [i for i in ids if i not in found]
    if missing and not ignore_missing:
        raise missing_ids("memory", "memories", missing)
    for memory_id in missing:
        settings.warn(f"no memory with id {memory_id!r}")
    rows = [found[i] for i in ids if i in found]
    if rows and not dry_run:
        confirm(settings, f"Delete {plural(len(rows), 'memory')}?", yes)
        repo.delete(db, [row["id"] for row in rows])
    show_changed(settings, rows, _columns(), _words("delete", "deleted"), dry_run=dry_run,
                 display=_display(settings))


def _set_permanent(settings, ids, permanent: bool) -> None:
    from nitejarctl.db import now
    from nitejarctl.repositories import memories as repo

    ids = list(dict.fromkeys(ids))
    rows = repo.set_permanent(settings.database(), ids, permanent, now=now())
    show_changed(settings, [rows[i] for i in ids if i in rows], _columns(),
                 _words("pin", "pinned") if permanent else _words("unpin", "unpinned"),
                 display=_display(settings))


@memories.command(name="pin", counts=True)
@click.argument("ids", metavar="ID...", nargs=-1, required=True, shell_complete=completers.memory_ids,
              callback=prefixed("AgentMemory", "memories"))
@pass_settings
def memories_pin(settings, ids):
    """Pin memories: permanent, strength restored to 1.0, never decayed or pruned.

    \b
    Examples:
      nitejarctl memories pin 3f2c9a4e-…
    """
    _set_permanent(settings, ids, True)


@memories.command(name="unpin", counts=True)
@click.argument("ids", metavar="ID...", nargs=-1, required=True, shell_complete=completers.memory_ids,
              callback=prefixed("AgentMemory", "memories"))
@pass_settings
def memories_unpin(settings, ids):
    """Unpin memories: they decay again, counting from now.

    \b
    Examples:
      nitejarctl memories unpin 3f2c9a4e-…
    """
    _set_permanent(settings, ids, False)


# ---------------------------------------------------------------- maintenance


@memories.command(name="decay", counts=True)
@agent_option("Only this agent's memories.")
@click.option("--rate", type=FiniteFloatRange(min=0.0), metavar="R",
              help="Strength lost per week, for every agent [default: each agent's "
                   "memorySettings.decayRate, else 0.1].")
@dry_run_option
@pass_settings
def memories_decay(settings, agent_id, rate, dry_run):
    """Decay non-permanent memories by the time since their last access.

    strength = max(0, strength - weeks x rate), where the weeks count from the
    later of the last access, the creation and the previous decay, so running
    it hourly or weekly gives the same strengths. Changes of 0.001 or less
    are left for a later run.

    \b
    Examples:
      nitejarctl memories decay
      nitejarctl memories decay --agent ops --rate 0.2 --dry-run
    """
    from nitejarctl.db import now
    from nitejarctl.maintenance import decay

    db = settings.database()
    plan = decay.plan(db, agent_id=agent_id, rate=rate)
    at = now()
    run_bulk(settings, lambda bulk: decay.decay(db, plan, at, bulk), fields=decay.COLUMNS,
             columns=_columns(decay.COLUMNS), words=_words("decay", "decayed", "decaying"), dry_run=dry_run)


@memories.command(name="prune", counts=True)
@agent_option("Only this agent's memories.")
@click.option("--below", type=STRENGTH, metavar="S",
              help="Delete non-permanent memories weaker than S [default: each agent's "
                   "memorySettings.minStrength, else 0.1].")
@click.option("--keep", type=BoundedIntRange(min=0), metavar="N",
              help="Keep at most N memories per agent, pinned ones included, deleting the "
                   "weakest unpinned first [default: each agent's "
                   "memorySettings.maxStoredMemories, else 200].")
@dry_run_option
@yes_option
@pass_settings
def memories_prune(settings, agent_id, below, keep, dry_run, yes):
    """Delete weak memories, and the weakest beyond each agent's limit.

    Permanent (pinned) memories are never deleted; they count toward the
    limit. Among equally strong memories the most recently used are kept.

    \b
    Examples:
      nitejarctl memories prune --dry-run
      nitejarctl memories prune --below 0.2 --keep 100 --yes
      nitejarctl memories prune --agent ops -y -o json
    """
    from nitejarctl.maintenance import prune
    from nitejarctl.output.words import plural

    require_confirmation(settings, yes, dry_run)
    db = settings.database()
    rules = prune.rules(db, agent_id=agent_id, below=below, keep=keep)
    columns = _columns(prune.COLUMNS)
    words = _words("prune", "pruned", "pruning")
    if dry_run:
        show_changed(settings, prune.preview(db, rules), columns, words, dry_run=True,
                     display=_display(settings))
        return
    with prune.PrunePlan(db, rules) as plan:
        if not yes:
            count = plan.remaining()
            if count:
                confirm(settings, f"Delete {plural(count, 'memory')} {_criteria(rules)} (unpinned)?", yes)
        run_bulk(settings, plan.execute, fields=prune.COLUMNS, columns=columns, words=words,
                 total=plan.total, remaining=None if plan.total is not None else plan.remaining,
                 display=_display(settings))


def _criteria(rules) -> str:
    """What prune deletes, in words: "weaker than 0.1 or beyond 200 per agent"."""
    belows = sorted({g.value.below for g in rules.groups})
    keeps = sorted({g.value.keep for g in rules.groups})
    below = f"{belows[0]:g}" if len(belows) == 1 else "each agent's minStrength (" + ", ".join(
        f"{b:g}" for b in belows) + ")"
    keep = f"{keeps[0]:,}" if len(keeps) == 1 else "each agent's maxStoredMemories (" + ", ".join(
        f"{k:,}" for k in keeps) + ")"
    return f"weaker than {below} or beyond {keep} per agent"
