"""`nitejarctl help [COMMAND…]`: the help of a command, as its --help shows it."""

from __future__ import annotations

import click

from nitejarctl.cli.options import NitejarCommand


def _names(ctx, param, incomplete):
    """Completion: the commands of the group the names typed so far lead to."""
    from click.shell_completion import CompletionItem

    root = ctx.find_root()
    command = root.command
    for name in ctx.params.get("names") or ():
        command = command.get_command(root, name) if isinstance(command, click.Group) else None
    if not isinstance(command, click.Group):
        return []
    return [CompletionItem(name) for name in command.list_commands(root) if name.startswith(incomplete)]


@click.command("help", cls=NitejarCommand)
@click.argument("names", nargs=-1, metavar="[COMMAND]...", shell_complete=_names)
@click.pass_context
def help_command(ctx, names):
    """Show the help of a command (of nitejarctl itself without one).

    \b
    Examples:
      nitejarctl help
      nitejarctl help sessions
      nitejarctl help sessions close
    """
    parent = ctx.find_root()
    command = parent.command
    for name in names:
        if not isinstance(command, click.Group):
            raise click.UsageError(f"{parent.command_path!r} has no subcommands (no {name!r})", ctx=ctx)
        resolved, command, _ = command.resolve_command(parent, [name])
        # A context without parsing: the help of a command that needs arguments.
        parent = click.Context(command, info_name=resolved, parent=parent)
    click.echo(parent.get_help(), color=ctx.color)
