#!/bin/bash
# `status` of two dkms-rs builds on one growth tree (`bench/growth.sh tree DIR N K`), alternating,
# each with its own status record (the record format may differ between builds; one build's
# record would make the other compare every module): whole processes, `date +%s%N` around
# each, the median of RUNS for each; then each once under /usr/bin/time and strace -f -c, the
# outputs compared (cmp), and the floor (bench/status-floor.sh) in the same minute.
# Usage: bench/status-ab.sh OLD_BINARY NEW_BINARY DIR/n1000-k8 [RUNS]
set -euo pipefail
old=${1:?usage: bench/status-ab.sh OLD NEW GROWTH_TREE_DIR [RUNS]}
new=${2:?usage}
tree=${3:?usage}
runs=${4:-15}
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d /tmp/dkms-rs-status-ab.XXXXXX)
trap 'rm -rf "$work"' EXIT
opts=(--dkmstree "$tree/tree" --sourcetree "$tree/src" --installtree "$tree/lib/modules" --etcdir "$tree/etc")
record=$tree/tree/.dkms-rs.status
cd "$tree"
echo "start $(date -u +%T), load $(cut -d' ' -f1-3 /proc/loadavg)"
# Each build's record, written by a first run and settled (files younger than 2 s are not
# recorded).
for side in old new; do
	bin=$old; [ "$side" = new ] && bin=$new
	rm -f "$record"
	"$bin" "${opts[@]}" status >/dev/null
done
sleep 3
for side in old new; do
	bin=$old; [ "$side" = new ] && bin=$new
	"$bin" "${opts[@]}" status >/dev/null
	cp "$record" "$work/record.$side"
done
for _ in $(seq "$runs"); do
	for side in old new; do
		bin=$old; [ "$side" = new ] && bin=$new
		cp "$work/record.$side" "$record"
		a=$(date +%s%N)
		"$bin" "${opts[@]}" status >"$work/out.$side"
		b=$(date +%s%N)
		cmp -s "$work/record.$side" "$record" || echo "$side rewrote its record"
		echo "$side $(((b - a) / 1000))" >>"$work/times"
	done
done
cmp "$work/out.old" "$work/out.new" && echo "outputs equal: $(wc -l <"$work/out.old") lines"
for side in old new; do
	awk -v s="$side" '$1 == s { print $2 / 1000 }' "$work/times" | sort -n |
		awk -v s="$side" '{ v[NR] = $1 } END { printf "%s: median %.1f ms (%.1f-%.1f), %d runs\n", s, v[int((NR + 1) / 2)], v[1], v[NR], NR }'
done
for side in old new; do
	bin=$old; [ "$side" = new ] && bin=$new
	cp "$work/record.$side" "$record"
	/usr/bin/time -f "$side: %e s wall, %U user + %S sys, %M KiB peak RSS" "$bin" "${opts[@]}" status >/dev/null
	cp "$work/record.$side" "$record"
	strace -f -c -o "$work/strace.$side" "$bin" "${opts[@]}" status >/dev/null
	echo "$side: $(awk '/total/ { print $4 " syscalls, " $5 " failed" }' "$work/strace.$side")"
	awk '$NF ~ /^(statx|getdents64|openat|close|readlink|read)$/ { print "  " $NF " " $4 }' "$work/strace.$side"
done
cp "$work/record.new" "$record"
bash "$here/status-floor.sh" "$tree" 5
echo "end $(date -u +%T), load $(cut -d' ' -f1-3 /proc/loadavg)"
