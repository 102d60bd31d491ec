#!/bin/bash
# The floor under `status` on a growth tree (`bench/growth.sh tree DIR N K`): what any status
# must ask the kernel for each module x kernel entry, and nothing else, timed as a whole
# process. Per entry: stat of the built module, stat of the installed one (the two compared
# through their stat data, as the status record does), readlink of `kernel-<k>-<a>` (the
# installed version). The paths are listed first (untimed); then perl (no per-call fork;
# `perl -e 1`'s start is timed too and printed, to subtract) stats them, one process per CPU
# on an equal share, as dkms-rs's status runs one thread per CPU.
# Usage: bench/status-floor.sh DIR/n1000-k8 [RUNS]
set -euo pipefail
tree=${1:?usage: bench/status-floor.sh GROWTH_TREE_DIR [RUNS]}
runs=${2:-5}
cpus=$(nproc)
list=$(mktemp -d /tmp/dkms-rs-floor.XXXXXX)
trap 'rm -rf "$list"' EXIT
arch=$(uname -m)
# One line per entry: built, installed, link.
for link in "$tree"/tree/*/kernel-*; do
	m=${link%/kernel-*}; m=${m##*/}
	k=${link##*/kernel-}; k=${k%-"$arch"}
	printf '%s\t%s\t%s\n' "$tree/tree/$m/1.0/$k/$arch/module/$m.ko" \
		"$tree/lib/modules/$k/updates/dkms/$m.ko" "$link"
done >"$list/all"
split -n "l/$cpus" -d "$list/all" "$list/part."
entries=$(wc -l <"$list/all")
one() {
	# shellcheck disable=SC2016
	perl -ne 'chomp; my ($b, $i, $l) = split /\t/; my @b = stat $b; my @i = stat $i; my $t = readlink $l;' "$1"
}
export -f one
ms() { echo $(( ($2 - $1) / 1000000 )); }
echo "entries: $entries, $cpus processes; load: $(cut -d' ' -f1-3 /proc/loadavg)"
for _ in $(seq "$runs"); do
	a=$(date +%s%N); perl -e 1; b=$(date +%s%N)
	for p in "$list"/part.*; do one "$p" & done; wait
	c=$(date +%s%N)
	echo "floor $(ms "$b" "$c") ms (perl start alone $(ms "$a" "$b") ms)"
done
echo "load: $(cut -d' ' -f1-3 /proc/loadavg)"
