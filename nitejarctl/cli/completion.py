"""`nitejarctl completion SHELL`: print the shell completion script, and the
scripts themselves.

nitejarctl ships its own scripts for bash, zsh and fish (registered with
Click under those names, so that `_NITEJARCTL_COMPLETE=bash_complete` and
`nitejarctl completion bash` use them): candidates come from the database,
and each must reach the command line as data. The scripts never let the
shell split, glob or evaluate a candidate; bash gets each one already quoted
for the word being completed (cli.shell_words), zsh and fish quote them
themselves when they insert them.
"""

from __future__ import annotations

import os

import click
from click.shell_completion import BashComplete, FishComplete, ZshComplete, add_completion_class

from nitejarctl.cli.options import NitejarCommand

SHELLS = ("bash", "zsh", "fish")
COMPLETE_VAR = "_NITEJARCTL_COMPLETE"

_SOURCE_BASH = """\
%(complete_func)s() {
    # nitejarctl reads the line itself and answers with each candidate
    # already quoted for the word being completed: nothing it prints is
    # split, globbed or expanded here.
    local line type
    while IFS= read -r line; do
        type=${line%%%%,*}
        case $type in
            dir) COMPREPLY=(); compopt -o dirnames; return 0 ;;
            file) COMPREPLY=(); compopt -o default; return 0 ;;
            plain) COMPREPLY+=("${line#*,}") ;;
        esac
    done < <(COMP_LINE="${COMP_LINE:0:COMP_POINT}" COMP_WORD="$2" \
%(complete_var)s=bash_complete "$1" 2>/dev/null)
    return 0
}

complete -o nosort -F %(complete_func)s %(prog_name)s
"""

# Records of three NUL-terminated fields (type, value, description): a value
# may hold any character but NUL. compadd and _describe quote what they insert.
_SOURCE_ZSH = """\
#compdef %(prog_name)s

%(complete_func)s() {
    local -a completions completions_with_descriptions response
    local type key descr
    (( ! $+commands[%(prog_name)s] )) && return 1

    response=("${(@0)$(COMP_WORDS="${words[*]}" COMP_CWORD=$((CURRENT-1)) \
%(complete_var)s=zsh_complete %(prog_name)s 2>/dev/null)}")

    for type key descr in "${response[@]}"; do
        if [[ "$type" == "plain" ]]; then
            if [[ "$descr" == "_" ]]; then
                completions+=("$key")
            else
                completions_with_descriptions+=("$key":"$descr")
            fi
        elif [[ "$type" == "dir" ]]; then
            _path_files -/
        elif [[ "$type" == "file" ]]; then
            _path_files -f
        fi
    done

    if (( ${#completions_with_descriptions} )); then
        _describe -V unsorted completions_with_descriptions -U
    fi

    if (( ${#completions} )); then
        compadd -U -V unsorted -a completions
    fi
}

if [[ $zsh_eval_context[-1] == loadautofunc ]]; then
    # autoload from fpath, call function directly
    %(complete_func)s "$@"
else
    # eval/source/. command, register function for later
    compdef %(complete_func)s %(prog_name)s
fi
"""

# One candidate a line (fish splits the answer on newlines and a tab starts
# the description): fish escapes what it inserts.
_SOURCE_FISH = """\
function %(complete_func)s
    set -l response (env %(complete_var)s=fish_complete COMP_WORDS=(commandline -cp) \
COMP_CWORD=(commandline -t) %(prog_name)s 2>/dev/null)

    for completion in $response
        set -l metadata (string split -m 1 "," -- $completion)

        if test "$metadata[1]" = "dir"
            __fish_complete_directories $metadata[2]
        else if test "$metadata[1]" = "file"
            __fish_complete_path $metadata[2]
        else if test "$metadata[1]" = "plain"
            printf '%%s\\n' $metadata[2]
        end
    end
end

complete --no-files --keep-order --command %(prog_name)s --arguments "(%(complete_func)s)"
"""


class Bash(BashComplete):
    """Bash: the line up to the cursor (COMP_LINE) and readline's word
    (COMP_WORD, the part of the current word a candidate replaces) in;
    candidates out quoted for that word."""

    source_template = _SOURCE_BASH

    def source(self) -> str:
        return self.source_template % self.source_vars()  # no bash version probe

    def get_completion_args(self):
        from nitejarctl.cli.shell_words import split_line

        words = split_line(os.environ.get("COMP_LINE", ""))
        self._word = words[-1]
        self._replaced = os.environ.get("COMP_WORD", "")
        return [w.value for w in words[1:-1]], self._word.value

    def complete(self) -> str:
        from nitejarctl.cli.shell_words import quote, split_line

        args, incomplete = self.get_completion_args()
        typed = os.environ.get("COMP_LINE", "")[self._word.start:]
        kept = typed[:len(typed) - len(self._replaced)] if typed.endswith(self._replaced) else ""
        prefix = split_line(kept)[-1] if kept else None
        lines = []
        for item in self.get_completions(args, incomplete):
            if item.type != "plain":
                lines.append(f"{item.type},")
                continue
            value = _whole_word(item.value, incomplete)
            if prefix is not None and not value.startswith(prefix.value):
                continue  # it cannot continue what readline keeps of the word
            rest = value[len(prefix.value):] if prefix is not None else value
            lines.append("plain," + quote(rest, prefix.quote if prefix is not None else None))
        return "\n".join(lines)


def _whole_word(value: str, incomplete: str) -> str:
    """Click completes the value of `--option=value` alone: the word is both."""
    if incomplete.startswith("-") and "=" in incomplete and not value.startswith(incomplete):
        return incomplete.partition("=")[0] + "=" + value
    return value


class Zsh(ZshComplete):
    source_template = _SOURCE_ZSH

    def get_completion_args(self):
        from nitejarctl.cli.shell_words import split_line

        values = [w.value for w in split_line(os.environ.get("COMP_WORDS", ""))]
        cword = int(os.environ.get("COMP_CWORD", "0"))
        return values[1:cword], values[cword] if cword < len(values) else ""

    def format_completion(self, item) -> str:
        help_ = item.help or "_"
        # _describe splits value and description at the first unescaped colon;
        # compadd (no description) takes the value as it is.
        value = item.value.replace(":", r"\:") if help_ != "_" else item.value
        return f"{item.type}\0{value}\0{help_}\0"

    def complete(self) -> str:
        args, incomplete = self.get_completion_args()
        return "".join(self.format_completion(i) for i in self.get_completions(args, incomplete))


class Fish(FishComplete):
    source_template = _SOURCE_FISH

    def get_completion_args(self):
        from nitejarctl.cli.shell_words import split_line

        values = [w.value for w in split_line(os.environ.get("COMP_WORDS", ""))]
        incomplete = split_line(os.environ.get("COMP_CWORD", ""))[0].value
        args = values[1:]
        if args and args[-1] == incomplete:  # the word being completed, empty after a blank
            args.pop()
        return args, incomplete

    def complete(self) -> str:
        args, incomplete = self.get_completion_args()
        # A newline or a tab in a candidate would make it several, or a
        # description: such a candidate cannot be offered to fish.
        items = [i for i in self.get_completions(args, incomplete)
                 if "\n" not in i.value and "\t" not in i.value and "\r" not in i.value]
        return "\n".join(self.format_completion(i) for i in items)


for _cls, _name in ((Bash, "bash"), (Zsh, "zsh"), (Fish, "fish")):
    add_completion_class(_cls, _name)


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
    -d, NITEJAR_DATABASE_URL or DATABASE_URL when it is reachable. Whatever
    they hold, candidates arrive on the command line quoted, as literal text.

    \b
    Examples:
      eval "$(nitejarctl completion bash)"            # in ~/.bashrc
      nitejarctl completion zsh > "${fpath[1]}/_nitejarctl"
      nitejarctl completion fish > ~/.config/fish/completions/nitejarctl.fish
    """
    text = script(shell)
    click.echo(text, nl=not text.endswith("\n"))
