"""`nitejarctl completion SHELL`: print the shell completion script."""

from __future__ import annotations

import click

from nitejarctl.cli.options import NitejarCommand

SHELLS = ("bash", "zsh", "fish")
COMPLETE_VAR = "_NITEJARCTL_COMPLETE"


def script(shell: str) -> str:
    """The completion script for `shell` (the same text as completions/nitejarctl.<shell>)."""
    from click.shell_completion import get_completion_class

    from nitejarctl.cli import cli

    cls = get_completion_class(shell)
    return cls(cli, {}, "nitejarctl", COMPLETE_VAR).source()


@click.command(cls=NitejarCommand)
@click.argument("shell", type=click.Choice(SHELLS))
def completion(shell):
    """Print the shell completion script for bash, zsh or fish.

    Ids, agent names and session keys complete from the database named by
    -d, NITEJAR_DATABASE_URL or DATABASE_URL when it is reachable.

    \b
    Examples:
      eval "$(nitejarctl completion bash)"            # in ~/.bashrc
      nitejarctl completion zsh > "${fpath[1]}/_nitejarctl"
      nitejarctl completion fish > ~/.config/fish/completions/nitejarctl.fish
    """
    text = script(shell)
    click.echo(text, nl=not text.endswith("\n"))
