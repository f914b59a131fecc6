# bash completion for distkv and dkv
#
# Commands and options are read from the programs' own --help texts (so
# they never disagree with the program); path words after a data command
# are completed from the server's children of the path typed so far
# (`dkv data list`), in the colon notation, with the connection options
# already on the line.

# The words of a "Commands:" section of a help text.
_distkv_commands()
{
	"$@" --help 2>/dev/null | awk '/^Commands:/ { on = 1; next } on && /^  [a-z]/ { print $1; next } on && !/^  / { on = 0 }'
}

# The options of a help text that take a value ("-v, --value VALUE").
_distkv_argopts()
{
	"$@" --help 2>/dev/null | grep -oE '^ +(-[A-Za-z], )?--?[A-Za-z][A-Za-z0-9-]* [A-Z]' |
		grep -oE -- '--?[A-Za-z][A-Za-z0-9-]*'
}

# The long and short options of a help text.
_distkv_options()
{
	"$@" --help 2>/dev/null | grep -oE '(^|[ ,])--?[A-Za-z][A-Za-z0-9-]*' | tr -d ' ,' | sort -u
}

_distkv()
{
	local cur prog i w
	local -a pre conn words
	cur=${COMP_WORDS[COMP_CWORD]}
	prog=${COMP_WORDS[0]}
	pre=("$prog")
	conn=()
	i=1
	# global options, and for dkv the client's connection options
	while [ "$i" -lt "$COMP_CWORD" ]; do
		w=${COMP_WORDS[i]}
		case $w in
		-c | -C | --config | --set)
			pre+=("$w" "${COMP_WORDS[i + 1]}"); conn+=("$w" "${COMP_WORDS[i + 1]}"); i=$((i + 2)) ;;
		-h | -p | -a | --host | --port | --auth)
			pre+=("$w" "${COMP_WORDS[i + 1]}"); conn+=("$w" "${COMP_WORDS[i + 1]}"); i=$((i + 2)) ;;
		-v | -q | --verbose | --quiet)
			pre+=("$w"); i=$((i + 1)) ;;
		*) break ;;
		esac
	done
	# distkv: the "server" or "client" word, then the client's own options
	if [ "${prog##*/}" != dkv ]; then
		if [ "$i" -eq "$COMP_CWORD" ]; then
			if [[ $cur == -* ]]; then
				mapfile -t COMPREPLY < <(compgen -W "$(_distkv_options "$prog")" -- "$cur")
			else
				mapfile -t COMPREPLY < <(compgen -W "server client" -- "$cur")
			fi
			return
		fi
		w=${COMP_WORDS[i]}
		pre+=("$w")
		i=$((i + 1))
		[ "$w" = client ] || { [[ $cur == -* ]] && mapfile -t COMPREPLY < <(compgen -W "$(_distkv_options "${pre[@]}")" -- "$cur"); return; }
		while [ "$i" -lt "$COMP_CWORD" ]; do
			case ${COMP_WORDS[i]} in
			-h | -p | -a | --host | --port | --auth)
				pre+=("${COMP_WORDS[i]}" "${COMP_WORDS[i + 1]}")
				conn+=("${COMP_WORDS[i]}" "${COMP_WORDS[i + 1]}"); i=$((i + 2)) ;;
			*) break ;;
			esac
		done
	fi
	words=("${COMP_WORDS[@]:i:COMP_CWORD-i}") # group, command, options, path so far
	if [[ $cur == -* ]]; then
		mapfile -t COMPREPLY < <(compgen -W "$(_distkv_options "${pre[@]}" "${words[@]:0:2}")" -- "$cur")
		return
	fi
	case ${#words[@]} in
	0 | 1)
		mapfile -t COMPREPLY < <(compgen -W "$(_distkv_commands "${pre[@]}" "${words[@]}")" -- "$cur")
		return ;;
	esac
	# a path after a data command: the children of what is typed so far
	if [ "${words[0]}" = data ]; then
		local -a path=()
		local argopts skip=0
		argopts=" $(_distkv_argopts "${pre[@]}" "${words[@]:0:2}" | tr '\n' ' ') "
		for w in "${words[@]:2}"; do
			if [ "$skip" = 1 ]; then
				skip=0
			elif [[ $w == -* ]]; then
				[[ $argopts == *" $w "* ]] && skip=1
			else
				path+=("$w")
			fi
		done
		[ "$skip" = 1 ] && return # the current word is an option's value
		local kids
		kids=$("${pre[@]}" data list "${path[@]}" 2>/dev/null) || return
		mapfile -t COMPREPLY < <(compgen -W "$kids" -- "$cur")
	fi
}

complete -F _distkv dkv distkv
