#!/bin/sh
# dump.sh - every value below a mounted path, one "path: value" per line.
#
#   dump.sh MOUNT/some/path
#
# The same data as `distkv client data get -r`, from the filesystem: the
# directories are the path, each `_` file the value as YAML.
set -eu
top=${1%/}
cd "$top"
find . -name _ -type f | sort | while read -r f; do
	p=${f#./}
	p=${p%_}
	p=${p%/}
	printf '%s: %s\n' "${p:-.}" "$(tr '\n' ' ' < "$f" | sed 's/ $//')"
done
