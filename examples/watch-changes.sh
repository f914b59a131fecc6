#!/bin/sh
# watch-changes.sh - print every value that changes below a mounted path.
#
#   watch-changes.sh MOUNT/some/path
#
# One line per change: the entry's path (relative to the argument), a
# tab, and the new value as one line of YAML (deletions print "(deleted)").
# Uses inotifywait (Debian package inotify-tools); changes made on other
# nodes show up too.  For a stream without inotify, read the .watch file
# in the directory instead: cat MOUNT/some/path/.watch
set -eu
top=${1%/}
inotifywait -q -m -r -e close_write -e delete --format '%e %w%f' "$top" |
while read -r ev path; do
	case $path in */_) ;; *) continue ;; esac
	rel=${path#"$top"/}
	rel=${rel%_}
	rel=${rel%/}
	[ -n "$rel" ] || rel=.
	case $ev in
	DELETE*) printf '%s\t(deleted)\n' "$rel" ;;
	*) printf '%s\t%s\n' "$rel" "$(tr '\n' ' ' < "$path" | sed 's/ $//')" ;;
	esac
done
