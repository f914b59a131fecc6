#!/bin/sh
# counter.sh - count something from cron, through the mounted tree.
#
#   counter.sh MOUNT [NAME]
#
# Adds 1 to the integer at MOUNT/counters/NAME/_ (default NAME: the host
# name), creating it at 1, and prints the new count.  Runs on this machine
# take turns (flock on a local lock file), so none loses a count.  Writers
# on other nodes are not covered by a local lock: for those, make the
# write conditional on what was read, with
# `distkv client data set -ev N --last NODE TICK counters NAME` (NODE and
# TICK from the .meta file); a stale condition is refused and you retry.
#
# A crontab line:   * * * * *  /path/to/counter.sh /srv/distkv/mnt
set -eu
mnt=$1
name=${2:-$(hostname)}
dir=$mnt/counters/$name
lock=${TMPDIR:-/tmp}/distkv-counter-$(echo "$dir" | cksum | cut -d' ' -f1).lock
exec 9>"$lock"
flock 9
mkdir -p "$dir"
n=0
[ -e "$dir/_" ] && n=$(cat "$dir/_")
case $n in
'' | *[!0-9]*) echo "counter.sh: $dir/_ holds '$n', not a count" >&2; exit 1 ;;
esac
echo $((n + 1)) > "$dir/_"
echo $((n + 1))
