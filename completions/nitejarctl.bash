_nitejarctl_completion() {
    # nitejarctl reads the line itself and answers with each candidate
    # already quoted for the word being completed: nothing it prints is
    # split, globbed or expanded here.
    local line type
    while IFS= read -r line; do
        type=${line%%,*}
        case $type in
            dir) COMPREPLY=(); compopt -o dirnames; return 0 ;;
            file) COMPREPLY=(); compopt -o default; return 0 ;;
            plain) COMPREPLY+=("${line#*,}") ;;
        esac
    done < <(COMP_LINE="${COMP_LINE:0:COMP_POINT}" COMP_WORD="$2" _NITEJARCTL_COMPLETE=bash_complete "$1" 2>/dev/null)
    return 0
}

complete -o nosort -F _nitejarctl_completion nitejarctl
