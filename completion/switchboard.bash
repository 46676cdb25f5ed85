# bash completion for switchboard(1)                      -*- shell-script -*-
#
# Installed as share/bash-completion/completions/switchboard, where
# bash-completion loads it on the first <TAB> after `switchboard`; or
# source it from ~/.bashrc.
#
# The subcommands and options come from the command's own --help, read once
# per shell and command, so the completion offers exactly what the installed
# switchboard accepts. An option's values: the NAME choices its help line
# lists as "a | b | c", framing names for SPEC, files for FILE, directories
# for DIR.

declare -gA _switchboard_cache

# _switchboard_help BIN CMD: BIN's help text for CMD ("" = the top level).
_switchboard_help()
{
    local key="$1 $2"
    if [[ -z ${_switchboard_cache[$key]+set} ]]; then
        if [[ -n $2 ]]; then
            _switchboard_cache[$key]=$("$1" "$2" --help 2>/dev/null)
        else
            _switchboard_cache[$key]=$("$1" --help 2>/dev/null)
        fi
    fi
    printf '%s\n' "${_switchboard_cache[$key]}"
}

# One line per option: OPTION <tab> METAVAR or "-" <tab> choices. A help
# line is "  -o, --output FILE    text": the option part ends at two spaces.
_switchboard_options()
{
    _switchboard_help "$1" "$2" | awk '
        /^[ \t]+-/ {
            line = $0
            sub(/^[ \t]+/, "", line)
            n = split(line, part, /   */)
            desc = n > 1 ? part[2] : ""
            vals = ""
            if (match(desc, /[a-z0-9_-]+( \| [a-z0-9_-]+)+/))
                vals = substr(desc, RSTART, RLENGTH)
            gsub(/ \| /, " ", vals)
            # "-o, --output FILE": the last spelling names the value for all.
            k = split(part[1], alt, /, /)
            m = split(alt[k], w, " ")
            meta = m > 1 ? w[2] : "-"
            for (i = 1; i <= k; i++) {
                split(alt[i], w, " ")
                printf "%s\t%s\t%s\n", w[1], meta, (meta == "-" ? "" : vals)
            }
        }'
}

_switchboard()
{
    local cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD-1]}
    local bin=${COMP_WORDS[0]} cmd="" i opt meta vals table
    COMPREPLY=()
    [[ $bin == */* && -x $bin ]] || bin=$(type -P switchboard) || return 0

    for ((i = 1; i < COMP_CWORD; i++)); do
        case ${COMP_WORDS[i]} in
        -*) ;;
        *) cmd=${COMP_WORDS[i]}; break ;;
        esac
    done
    if [[ -z $cmd ]]; then
        if [[ $cur == -* ]]; then
            COMPREPLY=($(compgen -W "--help --version" -- "$cur"))
        else
            COMPREPLY=($(compgen -W "$(_switchboard_help "$bin" "" |
                awk '/^commands:/ { on = 1; next } on && /^  [a-z]/ { print $1 } /^$/ { on = 0 }')" -- "$cur"))
        fi
        return 0
    fi

    table=$(_switchboard_options "$bin" "$cmd")
    while IFS=$'\t' read -r opt meta vals; do
        [[ $opt == "$prev" && $meta != - ]] || continue
        if [[ -n $vals ]]; then
            COMPREPLY=($(compgen -W "$vals" -- "$cur"))
        elif [[ $meta == SPEC ]]; then
            COMPREPLY=($(compgen -W "raw line delim: fixed: ascii: len16 len32 len64 varint typed: eof" -- "$cur"))
            compopt -o nospace 2>/dev/null
        elif [[ $meta == DIR ]]; then
            compopt -o filenames 2>/dev/null
            COMPREPLY=($(compgen -d -- "$cur"))
        elif [[ $meta == *FILE* ]]; then
            compopt -o filenames 2>/dev/null
            COMPREPLY=($(compgen -f -- "$cur"))
        fi
        return 0
    done <<<"$table"

    if [[ $cur == -* ]]; then
        COMPREPLY=($(compgen -W "$(cut -f1 <<<"$table")" -- "$cur"))
    fi
    return 0
}
complete -F _switchboard switchboard
