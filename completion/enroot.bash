# bash completion for enroot (enroot-ts): commands, every option of each command, container names from
# `enroot list`, squashfs images (.sqsh .sqfs .squashfs .sfs), running containers' PIDs for exec.
# Generated from the command modules by scripts/gen-completion.mjs: edit the modules, not this file.
# shellcheck shell=bash

_enroot_commands='batch bundle create digest exec export import info list load remove start version'

# _enroot_uri_schemes CMD: the URI schemes CMD accepts.
_enroot_uri_schemes() {
    case $1 in
        digest) echo 'docker://' ;;
        import) echo 'docker:// dockerd:// podman://' ;;
        load) echo 'docker://' ;;
    esac
}

# _enroot_options CMD: the options CMD accepts.
_enroot_options() {
    case $1 in
        batch) echo '--help -h' ;;
        bundle) echo '--all -a --checksum -c --desc -d --output -o --target -t --force -f --help -h' ;;
        create) echo '--name -n --force -f --help -h' ;;
        digest) echo '--arch -a --help -h' ;;
        exec) echo '--env -e --help -h' ;;
        export) echo '--output -o --force -f --help -h' ;;
        import) echo '--arch -a --output -o --help -h' ;;
        info) echo '--help -h' ;;
        list) echo '--fancy -f --help -h' ;;
        load) echo '--arch -a --name -n --force -f --help -h' ;;
        remove) echo '--force -f --help -h' ;;
        start) echo '--conf -c --env -e --rc --root -r --rw -w --mount -m --pid --net --ipc --uts --help -h' ;;
        version) echo '--help -h' ;;
    esac
}

# _enroot_value_kind CMD OPTION: what OPTION's value is (file, env, none); fails if it takes no value.
_enroot_value_kind() {
    case "$1 $2" in
        'bundle --desc'|'bundle -d') echo none ;;
        'bundle --output'|'bundle -o') echo file ;;
        'bundle --target'|'bundle -t') echo file ;;
        'create --name'|'create -n') echo none ;;
        'digest --arch'|'digest -a') echo none ;;
        'exec --env'|'exec -e') echo env ;;
        'export --output'|'export -o') echo file ;;
        'import --arch'|'import -a') echo none ;;
        'import --output'|'import -o') echo file ;;
        'load --arch'|'load -a') echo none ;;
        'load --name'|'load -n') echo none ;;
        'start --conf'|'start -c') echo file ;;
        'start --env'|'start -e') echo env ;;
        'start --rc') echo file ;;
        'start --mount'|'start -m') echo file ;;
        *) return 1 ;;
    esac
}

# _enroot_positional_kind CMD N: what the Nth (from 0) positional argument of CMD is; empty: none.
_enroot_positional_kind() {
    case $1 in
        batch) case $2 in 0) echo 'file' ;; 1) echo 'file' ;; *) echo 'file' ;; esac ;;
        bundle) case $2 in 0) echo 'images' ;; esac ;;
        create) case $2 in 0) echo 'images' ;; esac ;;
        digest) case $2 in 0) echo 'uris:digest' ;; esac ;;
        exec) case $2 in 0) echo 'pids' ;; 1) echo 'file' ;; *) echo 'file' ;; esac ;;
        export) case $2 in 0) echo 'names' ;; esac ;;
        import) case $2 in 0) echo 'uris:import' ;; esac ;;
        load) case $2 in 0) echo 'uris:load' ;; esac ;;
        remove) case $2 in *) echo 'names' ;; esac ;;
        start) case $2 in 0) echo 'names images' ;; 1) echo 'file' ;; *) echo 'file' ;; esac ;;
    esac
}

# _enroot_reply KIND... CUR: append the candidates of each KIND that start with CUR to COMPREPLY.
_enroot_reply() {
    local cur=${!#} kind f
    local -a found
    for kind in "${@:1:$#-1}"; do
        case $kind in
            names)
                # The same enroot binary and configuration as the command being typed.
                mapfile -t found < <("$_enroot_bin" list 2> /dev/null)
                for f in "${found[@]}"; do [[ $f == "$cur"* ]] && COMPREPLY+=("$f"); done ;;
            pids)
                # `list --fancy`: the PID column; a container's further processes are on indented lines.
                mapfile -t found < <("$_enroot_bin" list --fancy 2> /dev/null | awk 'NR > 1 && /^ / { print $1; next } NR > 1 && $2 ~ /^[0-9]+$/ { print $2 }')
                for f in "${found[@]}"; do [[ $f == "$cur"* ]] && COMPREPLY+=("$f"); done ;;
            images)
                # Directories too, so that <TAB> can walk to an image.
                compopt -o filenames 2> /dev/null
                mapfile -t found < <(compgen -f -- "$cur")
                for f in "${found[@]}"; do
                    [[ -d $f || $f == *.sqsh || $f == *.sqfs || $f == *.squashfs || $f == *.sfs ]] && COMPREPLY+=("$f")
                done ;;
            uris:*)
                compopt -o nospace 2> /dev/null
                mapfile -t found < <(compgen -W "$(_enroot_uri_schemes "${kind#uris:}")" -- "$cur")
                COMPREPLY+=("${found[@]}") ;;
            env)
                mapfile -t found < <(compgen -e -- "$cur")
                COMPREPLY+=("${found[@]}") ;;
            file)
                compopt -o filenames 2> /dev/null
                mapfile -t found < <(compgen -f -- "$cur")
                COMPREPLY+=("${found[@]}") ;;
        esac
    done
}

_enroot() {
    COMPREPLY=()
    local -a words=()
    local cword=0 j w
    # Bash splits --opt=value at '=' (COMP_WORDBREAKS); join the pieces back so that the words below are
    # the ones the parser sees.
    for (( j = 0; j < ${#COMP_WORDS[@]}; j++ )); do
        w=${COMP_WORDS[j]}
        if (( j > 1 )) && [[ $w == = || ${words[-1]} == *= ]]; then
            words[-1]+=$w
        else
            words+=("$w")
        fi
        (( j == COMP_CWORD )) && cword=$(( ${#words[@]} - 1 ))
    done
    local cur=${words[cword]} cmd=${words[1]-} kind npos=0 positional= i
    local _enroot_bin=${words[0]/#~/$HOME}

    if (( cword == 1 )); then
        if [[ $cur == -* ]]; then
            mapfile -t COMPREPLY < <(compgen -W '--help -h' -- "$cur")
        else
            mapfile -t COMPREPLY < <(compgen -W "$_enroot_commands" -- "$cur")
        fi
        return 0
    fi
    [[ " $_enroot_commands " == *" $cmd "* ]] || return 0

    # Walk the words before the cursor as launcher/src/util/args.ts does: options end at `--` or at the
    # first word that is not an option; an option that takes a value consumes the next word.
    for (( i = 2; i < cword; i++ )); do
        w=${words[i]}
        if [[ -n $positional ]]; then
            (( npos++ ))
            continue
        fi
        case $w in
            --) positional=1 ;;
            --*=*) ;;
            -?*)
                if kind=$(_enroot_value_kind "$cmd" "$w"); then
                    if (( i + 1 == cword )); then
                        _enroot_reply $kind "$cur"
                        return 0
                    fi
                    (( i++ ))
                fi ;;
            *) positional=1; npos=1 ;;
        esac
    done

    if [[ -z $positional && $cur == --*=* ]]; then
        # the replaced word is only what follows '=' (bash split there)
        kind=$(_enroot_value_kind "$cmd" "${cur%%=*}") && _enroot_reply $kind "${cur#*=}"
        # where '=' does not split words, the reply replaces the whole --opt=value word
        [[ $COMP_WORDBREAKS == *=* ]] || COMPREPLY=("${COMPREPLY[@]/#/${cur%%=*}=}")
        return 0
    fi
    if [[ -z $positional && $cur == -* ]]; then
        mapfile -t COMPREPLY < <(compgen -W "$(_enroot_options "$cmd")" -- "$cur")
        return 0
    fi
    kind=$(_enroot_positional_kind "$cmd" "$npos")
    _enroot_reply ${kind:-none} "$cur"
    return 0
}

complete -F _enroot enroot
