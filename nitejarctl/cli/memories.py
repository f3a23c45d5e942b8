"""`nitejarctl memories`: list, show, add, edit, delete, pin, decay and prune
agents' long-term memories."""

from __future__ import annotations

import sys

import click

from nitejarctl.cli import completers
from nitejarctl.cli.context import pass_settings
from nitejarctl.cli.options import (
    BoundedIntRange,
    FiniteFloatRange,
    confirm,
    dry_run_option,
    effective_limit,
    emit_listing,
    fetch_limit,
    group,
    ignore_missing_option,
    limit_option,
    progress,
    spool,
    yes_option,
)
from nitejarctl.cli.stats import memories_stats
from nitejarctl.errors import UsageProblem

STRENGTH = FiniteFloatRange(0.0, 1.0)
TABLE_CONTENT = 80  # characters of content a listing table shows (show prints it all)


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

    kinds = {"strength": "float", "previous_strength": "float", "rate": "float",
             "permanent": "bool", "access_count": "int", "last_accessed_at": "time",
             "created_at": "time", "updated_at": "time"}
    from nitejarctl.repositories.memories import LIST_FIELDS

    return [Column(n, kinds.get(n, "text")) for n in (names or LIST_FIELDS)]


def _for_display(settings, rows):
    """Tables show the start of each content on one line; other formats all of it."""
    if settings.fmt != "table":
        yield from rows
        return
    for row in rows:
        content = row.get("content")
        if isinstance(content, str):
            one_line = " ".join(content.split())
            if len(one_line) > TABLE_CONTENT:
                one_line = one_line[:TABLE_CONTENT - 1] + "…"
            row = {**row, "content": one_line}
        yield row


def _plural(n: int, word: str = "memory", words: str = "memories") -> str:
    return f"{n} {word if n == 1 else words}"


def _content_arg(content: str) -> str:
    """`-` reads the content from stdin (for long or multi-line text)."""
    if content == "-":
        try:
            content = sys.stdin.read()
        except UnicodeDecodeError as exc:
            raise UsageProblem(f"cannot read the memory content from stdin: not UTF-8 ({exc.reason})") from None
        if not _is_utf8(content):  # read with surrogateescape (a C locale)
            raise UsageProblem("cannot read the memory content from stdin: not UTF-8")
    if "\x00" in content:  # PostgreSQL cannot store it; no text has it
        raise UsageProblem("memory content must not contain NUL characters")
    return content


def _is_utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _agent_id(db, ref):
    if ref is None:
        return None
    from nitejarctl.repositories import agents

    return agents.resolve_id(db, ref)


def _refuse_unless_confirmable(yes: bool, dry_run: bool) -> None:
    """Refuse up front, before any work, when the question could not be asked."""
    if yes or dry_run:
        return
    try:
        interactive = sys.stdin.isatty() and sys.stderr.isatty()
    except (AttributeError, ValueError):
        interactive = False
    if not interactive:
        raise UsageProblem("refusing to delete without --yes when not on a terminal")


def _unique(ids) -> list[str]:
    return list(dict.fromkeys(ids))


def report(settings, rows, columns, verb: str, *, n: int | None = None, dry_run=False,
           noun=("memory", "memories"), id_field: str = "id") -> int:
    """Changed rows on stdout (a table shows the first 100), then one summary
    line on stderr ("decayed 3 memories"). `rows` are dicts, or a spool of
    them; `n` is counted from `rows` when not given."""
    import itertools

    from nitejarctl.spool import Spool

    limit = effective_limit(settings, None)
    if isinstance(rows, Spool):
        shown = rows.write_to(sys.stdout) if rows.writer else settings.emit(
            itertools.islice(rows.rows(), limit), columns, id_field=id_field, fields=rows.columns)
        n = rows.count if n is None else n
    else:
        rows = iter(rows)
        shown = settings.emit(rows if limit is None else itertools.islice(rows, limit), columns,
                              id_field=id_field)
        if n is None:
            n = shown + sum(1 for _ in rows)
    if shown < n:
        settings.info(f"… {n - shown} more not shown (-o tsv or -o json shows all)")
    settings.info(f"{verb} {n} {noun[0] if n == 1 else noun[1]}" + (" (dry run)" if dry_run else ""))
    return n


def confirm_or_abort(settings, question: str, yes: bool) -> None:
    from nitejarctl.errors import OperationalProblem

    if not confirm(settings, question, yes):
        raise OperationalProblem("aborted: nothing deleted")


def spooled(settings, spool, change, what: str) -> int:
    """Run a batched change that fills `spool`; when it fails after some
    batches committed, say how many rows changed before the error."""
    try:
        return change()
    except Exception:
        if spool.count:
            settings.warn(f"{what} {spool.count} before the error (each batch commits on its own)")
        raise


# ----------------------------------------------------------------------- reads


@memories.command(name="list")
@click.option("--agent", metavar="ID|NAME", shell_complete=completers.agents,
              help="Only this agent's memories.")
@click.option("--min-strength", type=STRENGTH, help="Only memories at least this strong.")
@click.option("--permanent/--no-permanent", default=None,
              help="Only pinned (or only unpinned) memories [default: both].")
@click.option("--search", metavar="TEXT",
              help="Content contains TEXT (literally, ignoring case; % and _ are not wildcards).")
@limit_option
@pass_settings
def memories_list(settings, agent, min_strength, permanent, search, limit):
    """List memories, strongest first within each agent.

    Embeddings are never listed; tables show the first characters of each
    content (use `show` or -o json for all of it).

    \b
    Examples:
      nitejarctl memories list --agent ops
      nitejarctl memories list --no-permanent --min-strength 0.5 -o json
      nitejarctl memories list --search "100%" -o ids
    """
    from nitejarctl.db import stream
    from nitejarctl.repositories import memories as repo

    db = settings.database()
    filters = dict(agent_id=_agent_id(db, agent), min_strength=min_strength,
                   permanent=permanent, search=search)
    limit = effective_limit(settings, limit)
    rows = stream(db, repo.list_query(db, limit=fetch_limit(limit), **filters))
    emit_listing(settings, _for_display(settings, rows), _columns(), limit=limit,
                 count=lambda: repo.count(db, **filters), noun="memories")


@memories.command(name="show")
@click.argument("memory_id", metavar="ID", shell_complete=completers.memory_ids)
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
    from nitejarctl.repositories import memories as repo

    db = settings.database()
    row = repo.add(db, _agent_id(db, agent), _content_arg(content), permanent=permanent,
                   strength=strength, now=now())
    settings.info(f"added memory {row['id']}")
    settings.emit(_for_display(settings, [row]), _columns())


@memories.command(name="edit")
@click.argument("memory_id", metavar="ID", shell_complete=completers.memory_ids)
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
    settings.emit(_for_display(settings, [row]), _columns())


@memories.command(name="delete")
@click.argument("ids", metavar="ID...", nargs=-1, required=True, shell_complete=completers.memory_ids)
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
    from nitejarctl.repositories import memories as repo

    db = settings.database()
    ids = _unique(ids)
    found = repo.find(db, ids)
    missing = [i for i in ids if i not in found]
    if missing and not ignore_missing:
        raise repo.missing_error(missing)
    for memory_id in missing:
        settings.warn(f"no memory with id {memory_id!r}")
    present = [i for i in ids if i in found]
    rows = [found[i] for i in present]
    if present and not dry_run:
        confirm_or_abort(settings, f"Delete {_plural(len(present))}?", yes)
        n = repo.delete(db, present)
    else:
        n = len(present)
    report(settings, _for_display(settings, rows), _columns(),
           "would delete" if dry_run else "deleted", n=n, dry_run=dry_run)


def _set_permanent(settings, ids, permanent: bool) -> None:
    from nitejarctl.db import now
    from nitejarctl.repositories import memories as repo

    ids = _unique(ids)
    rows = repo.set_permanent(settings.database(), ids, permanent, now=now())
    report(settings, _for_display(settings, [rows[i] for i in ids if i in rows]), _columns(),
           "pinned" if permanent else "unpinned", n=len(ids))


@memories.command(name="pin")
@click.argument("ids", metavar="ID...", nargs=-1, required=True, shell_complete=completers.memory_ids)
@pass_settings
def memories_pin(settings, ids):
    """Pin memories: permanent, strength restored to 1.0, never decayed or pruned.

    \b
    Examples:
      nitejarctl memories pin 3f2c9a4e-…
    """
    _set_permanent(settings, ids, True)


@memories.command(name="unpin")
@click.argument("ids", metavar="ID...", nargs=-1, required=True, shell_complete=completers.memory_ids)
@pass_settings
def memories_unpin(settings, ids):
    """Unpin memories: they decay again, counting from now.

    \b
    Examples:
      nitejarctl memories unpin 3f2c9a4e-…
    """
    _set_permanent(settings, ids, False)


# ---------------------------------------------------------------- maintenance


@memories.command(name="decay")
@click.option("--agent", metavar="ID|NAME", shell_complete=completers.agents,
              help="Only this agent's memories.")
@click.option("--rate", type=FiniteFloatRange(min=0.0), metavar="R",
              help="Strength lost per week, for every agent [default: each agent's "
                   "memorySettings.decayRate, else 0.1].")
@dry_run_option
@pass_settings
def memories_decay(settings, agent, rate, dry_run):
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
    from nitejarctl.repositories import memories as repo

    db = settings.database()
    plan = repo.decay_plan(db, agent_id=_agent_id(db, agent), rate=rate)
    at = now()
    columns = _columns(repo.DECAY_COLUMNS)
    if dry_run:
        report(settings, repo.decay_preview(db, plan, at), columns, "would decay",
               dry_run=True)
        return
    with spool(settings, repo.DECAY_COLUMNS, columns, db) as changed:
        with progress(settings, "decaying") as bar:
            n = spooled(settings, changed, lambda: repo.decay(db, plan, at, changed, progress=bar.update),
                        "decayed")
        report(settings, changed, columns, "decayed", n=n)


@memories.command(name="prune")
@click.option("--agent", metavar="ID|NAME", shell_complete=completers.agents,
              help="Only this agent's memories.")
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
def memories_prune(settings, agent, below, keep, dry_run, yes):
    """Delete weak memories, and the weakest beyond each agent's limit.

    Permanent (pinned) memories are never deleted; they count toward the
    limit. Among equally strong memories the most recently used are kept.

    \b
    Examples:
      nitejarctl memories prune --dry-run
      nitejarctl memories prune --below 0.2 --keep 100 --yes
      nitejarctl memories prune --agent ops -y -o json
    """
    from nitejarctl.repositories import memories as repo

    _refuse_unless_confirmable(yes, dry_run)
    db = settings.database()
    rules = repo.prune_rules(db, agent_id=_agent_id(db, agent), below=below, keep=keep)
    columns = _columns(repo.PRUNE_COLUMNS)
    if dry_run:
        report(settings, _for_display(settings, repo.prune_preview(db, rules)), columns,
               "would prune", dry_run=True)
        return
    plan = repo.PrunePlan(db, rules)
    try:
        if plan.count:
            confirm_or_abort(settings, f"Delete {_plural(plan.count)}?", yes)
        with spool(settings, repo.PRUNE_COLUMNS, columns, db) as pruned:
            with progress(settings, "pruning", plan.count) as bar:
                n = spooled(settings, pruned, lambda: plan.execute(pruned, progress=bar.update), "pruned")
            rows = _for_display(settings, pruned.dicts()) if settings.fmt == "table" else pruned
            report(settings, rows, columns, "pruned", n=n)
    finally:
        plan.close()
