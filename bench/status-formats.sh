#!/bin/bash
# `dkms-rs status` in its three formats (text, --format json, --format plain) on one tree of
# MODULES modules (default 1000) installed for KERNELS kernels (default 8): the machine formats
# must stay within 10% of the text's time (issue 14). A benchmark, not a test.
#
# The tree is made by hand, as dkms lays it out (no build: status reads dkms.conf, the built
# dir, the kernel-<k>-<a> link and compares the installed module file with the built one);
# the kernels are fake ones (ABI 900 and up) under a temp install tree, so no headers are
# needed. Runs alternate text/json/plain RUNS times (default 15) so that load drift hits all
# three; the medians and their ratios to text are printed. With hyperfine on PATH it runs
# that too.
#
# usage: bench/status-formats.sh [DKMS_RS]   (default: target/release/dkms-rs, built here)
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
modules=${MODULES:-1000} nkernels=${KERNELS:-8} runs=${RUNS:-15}
rs=${1:-}
if [ -z "$rs" ]; then
	cargo build --release --manifest-path "$here/Cargo.toml" --bin dkms-rs >&2
	rs="${CARGO_TARGET_DIR:-$here/target}/release/dkms-rs"
fi
arch=$(uname -m)
work=$(mktemp -d /tmp/dkms-rs-status-bench.XXXXXX)
trap 'rm -rf "$work"' EXIT
kernels=()
for i in $(seq 1 "$nkernels"); do kernels+=("6.1.0-$((900 + i))-amd64"); done
echo "$modules modules x ${#kernels[@]} kernels ($arch), work dir $work, $(nproc) CPUs" >&2

tree=$work/tree src=$work/src lib=$work/lib/modules
mkdir -p "$tree" "$src" "$work/etc"
for k in "${kernels[@]}"; do mkdir -p "$lib/$k/updates/dkms"; done
for i in $(seq -w 1 "$modules"); do
	m=bench$i
	s=$src/$m-1.0
	mkdir -p "$s" "$tree/$m/1.0"
	printf 'PACKAGE_NAME="%s"\nPACKAGE_VERSION="1.0"\nBUILT_MODULE_NAME[0]="%s"\nDEST_MODULE_LOCATION[0]="/updates"\nAUTOINSTALL="yes"\n' "$m" "$m" >"$s/dkms.conf"
	ln -s "$s" "$tree/$m/1.0/source"
	for k in "${kernels[@]}"; do
		d=$tree/$m/1.0/$k/$arch
		mkdir -p "$d/module" "$d/log"
		echo "module $m for $k" >"$d/module/$m.ko"
		ln -s "1.0/$k/$arch" "$tree/$m/kernel-$k-$arch"
		cp "$d/module/$m.ko" "$lib/$k/updates/dkms/$m.ko"
	done
done
T=(--dkmstree "$tree" --sourcetree "$src" --installtree "$lib" --etcdir "$work/etc")
"$rs" status "${T[@]}" >"$work/text"
"$rs" status --format json "${T[@]}" >"$work/json"
"$rs" status --format plain "${T[@]}" >"$work/plain"
lines=$(wc -l <"$work/text")
echo "text: $lines lines ($(grep -c ': installed$' "$work/text") installed); plain: $(wc -l <"$work/plain") records; json: $(($(wc -l <"$work/json") - 2)) records" >&2
[ "$lines" -eq "$(wc -l <"$work/plain")" ] || { echo "plain has not one record a line" >&2; exit 1; }

# Milliseconds of one run (wall), by the shell's clock.
once() {
	local t0 t1
	t0=$(date +%s%N)
	"$rs" status "$@" "${T[@]}" >/dev/null
	t1=$(date +%s%N)
	echo $(((t1 - t0) / 1000))
}
: >"$work/times"
for _ in 1 2; do once >/dev/null; done # warm the page cache
for r in $(seq 1 "$runs"); do
	echo "text $(once)" >>"$work/times"
	echo "json $(once --format json)" >>"$work/times"
	echo "plain $(once --format plain)" >>"$work/times"
done
median() { grep "^$1 " "$work/times" | cut -d' ' -f2 | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
text=$(median text) json=$(median json) plain=$(median plain)
echo "| format | median of $runs (ms) | ratio to text |"
echo "|---|---|---|"
for f in text json plain; do
	v=$(median $f)
	printf '| %s | %d.%03d | %s |\n' "$f" $((v / 1000)) $((v % 1000)) "$(awk -v a="$v" -v b="$text" 'BEGIN {printf "%.3f", a / b}')"
done
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
unset json plain
if command -v hyperfine >/dev/null; then
	hyperfine --runs "$runs" --warmup 2 -N \
		-n text "$rs status ${T[*]}" \
		-n json "$rs status --format json ${T[*]}" \
		-n plain "$rs status --format plain ${T[*]}" >&2
fi
