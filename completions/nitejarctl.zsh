#compdef nitejarctl

_nitejarctl_completion() {
    local -a completions completions_with_descriptions response
    local type key descr
    (( ! $+commands[nitejarctl] )) && return 1

    response=("${(@0)$(COMP_WORDS="${words[*]}" COMP_CWORD=$((CURRENT-1)) _NITEJARCTL_COMPLETE=zsh_complete nitejarctl 2>/dev/null)}")

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
    _nitejarctl_completion "$@"
else
    # eval/source/. command, register function for later
    compdef _nitejarctl_completion nitejarctl
fi
