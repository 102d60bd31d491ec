#!/bin/bash
# The whole corpus (issue 13, item 2), dkms-rs against dkms 3.2.2 and dkms 3.0.10 in the same
# run (a benchmark, not a test): every Debian 12 -dkms module source of the conf corpus
# (tests/support's dkms_conf_corpus(), extracted in $CORPUS/<pkg>-dkms/usr/src/<m>-<v>/) added
# to an empty tree and autoinstalled for the first two kernels with headers (K1, K2).
#
# Sides (TOOLS, default "rs 322 3010 limit"; any subset, in that order):
#   rs     dkms-rs: `add` each, then one `autoinstall` with autoinstall_all_kernels="yes" in
#          its framework.conf (--etcdir): both kernels in one run (it takes one -k at most).
#   322    dkms 3.2.2: `add` each, `autoinstall -k K1`, `autoinstall -k K2` (one kernel a run).
#   3010   dkms 3.0.10 (/usr/sbin/dkms here), the same commands as 3.2.2.
#   limit  every module's build alone, one at a time (dkms-rs `build -j <cores>` of one module
#          for one kernel: its make runs as the tools run it, `make -j<cores> KERNELRELEASE=..`),
#          each under /usr/bin/time: limit = sum(CPU) / cores, longest = max(wall).
# Each tool side runs as one script under /usr/bin/time: wall, user+sys of the whole process
# tree (every make and compiler included), peak RSS (%M: the largest single process, a
# compiler's usually). Then each module's result per kernel: the .ko names in the tree's
# <m>/<v>/<k>/<a>/module/, or "-" (not built), and each autoinstall's exit status.
# Everything happens in temp trees (--dkmstree/--sourcetree/--installtree, --no-depmod; the
# headers linked under the install tree as <k>/build); dkms 3.2.2 and 3.0.10 run in a mount
# namespace with an empty /etc/dkms bound (neither reads the host's framework.conf), so the
# host's /var/lib/dkms, /lib/modules and /usr/src are never touched.
# Knobs: MODULES="pkg-dkms ..." (a subset of the corpus), RS=path (the dkms-rs binary; default
# the worktree's release build), RS_JOBS=N (dkms-rs's -j), MAKE_J=M (dkms-rs side only: a `make`
# wrapper first in PATH turns the top-level `-jN` into `-jM`: N builds at once, each make -jM,
# for measuring schedules), KEEP=1 (keep the work dir). Needs root, two kernels with headers,
# dkms 3.2.2 extracted by .ci/fetch-dkms-3.2.2, the corpus fetched by the conf tests.
# shellcheck disable=SC2046,SC2010 # T is word-split on purpose; .ko names are plain
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
tools=${TOOLS:-rs 322 3010 limit}
cache=${DKMS_RS_TEST_CACHE:-/var/cache/dkms-rs-tests}
corpus=${CORPUS:-$cache/dkms-conf-corpus}
ref=${DKMS_3_2_2:-$cache/dkms-3.2.2}
old=${DKMS_3_0_10:-/usr/sbin/dkms}
cores=$(nproc)
[ -x "$ref/usr/sbin/dkms" ] || { echo "no dkms 3.2.2 under $ref (.ci/fetch-dkms-3.2.2)" >&2; exit 1; }
[ -d "$corpus" ] || { echo "no corpus under $corpus (cargo test --test conf corpus)" >&2; exit 1; }
if [ -z "${RS:-}" ]; then
	cargo build --release --manifest-path "$here/Cargo.toml" --bin dkms-rs >&2
	RS=${CARGO_TARGET_DIR:-$here/target}/release/dkms-rs
fi
mapfile -t kernels < <(for d in /lib/modules/*/build/include; do d=${d%/build/include}; echo "${d##*/}"; done | sort | head -2)
((${#kernels[@]} == 2)) || { echo "need headers for two kernels" >&2; exit 1; }
k1=${kernels[0]} k2=${kernels[1]}
work=$(mktemp -d /tmp/dkms-rs-corpus.XXXXXX)
if [ -n "${KEEP:-}" ]; then echo "work dir: $work" >&2; else trap 'rm -rf "$work"' EXIT; fi
export sign_file=/nonexistent/sign-file LC_ALL=C.UTF-8
echo "kernels: K1=$k1 K2=$k2; $cores CPUs; dkms-rs $RS ($(git -C "$here" rev-parse --short HEAD)); load: $(cut -d' ' -f1-3 /proc/loadavg); $(date -u '+%F %T UTC')" >&2

# The sources: every <pkg>/usr/src/<m>-<v>/ of the corpus (dh-dkms has none).
mkdir -p "$work/src"
if [ -n "${MODULES:-}" ]; then read -r -a pkgs <<<"$MODULES"; else
	mapfile -t pkgs < <(cd "$corpus" && for d in *-dkms; do [ -d "$d/usr/src" ] && echo "$d"; done)
fi
for p in "${pkgs[@]}"; do cp -a "$corpus/$p/usr/src/." "$work/src/"; done
mapfile -t mvs < <(cd "$work/src" && for d in */; do
	d=${d%/}
	# <m>-<v>, the module name from dkms.conf (versions may hold dashes: linux-apfs-rw-0.3.0-1).
	n=$(sed -n 's/^PACKAGE_NAME=["'\'']\{0,1\}\([^"'\'']*\).*/\1/p' "$d/dkms.conf" | head -n 1)
	echo "$n/${d#"$n"-}"
done)
echo "${#mvs[@]} sources: ${mvs[*]}" >&2

# dkms 3.x with an empty /etc/dkms of its own (a private mount namespace).
mkdir -p "$work/etc"
for v in 322:"bash $ref/usr/sbin/dkms" 3010:"bash $old"; do
	cat >"$work/dkms${v%%:*}" <<EOF
#!/bin/sh
exec unshare -m --propagation private sh -c 'mount --bind "$work/etc" /etc/dkms && exec ${v#*:} "\$@"' sh "\$@"
EOF
	chmod +x "$work/dkms${v%%:*}"
done
# dkms-rs: autoinstall for every kernel with headers in one run.
mkdir -p "$work/rsetc"
echo 'autoinstall_all_kernels="yes"' >"$work/rsetc/framework.conf"
# The make wrapper for MAKE_J: only the top-level make (dkms's own `make -jN ...`) is changed.
mkdir -p "$work/wrap"
cat >"$work/wrap/make" <<EOF
#!/bin/bash
if [ -z "\${BENCH_MAKE_NESTED:-}" ]; then
	export BENCH_MAKE_NESTED=1
	args=()
	for a in "\$@"; do case \$a in -j[0-9]*) a=-j${MAKE_J:-} ;; esac; args+=("\$a"); done
	exec /usr/bin/make "\${args[@]}"
fi
exec /usr/bin/make "\$@"
EOF
chmod +x "$work/wrap/make"

T() { echo "--dkmstree $work/$1/tree --sourcetree $work/src --installtree $work/$1/lib/modules"; }
prepare() {
	rm -rf "${work:?}/${1:?}"
	mkdir -p "$work/$1/tree"
	for k in "$k1" "$k2"; do
		mkdir -p "$work/$1/lib/modules/$k"
		ln -s "/lib/modules/$k/build" "$work/$1/lib/modules/$k/build"
	done
}
# Each module's result per kernel: the .ko names built, or "-".
results() {
	local side=$1 mv k a kos
	for mv in "${mvs[@]}"; do
		for k in K1 K2; do
			kos=-
			for a in "$work/$side/tree/$mv/$(kernel $k)"/*/module; do
				[ -d "$a" ] && kos=$(cd "$a" && ls | grep '\.ko' | sed 's/\.\(xz\|gz\|zst\)$//' | sort | tr '\n' ' ')
			done
			echo "$mv $k ${kos% }"
		done
	done
}
kernel() { if [ "$1" = K1 ]; then echo "$k1"; else echo "$k2"; fi; }
run_side() {
	local side=$1 tool=$2 t
	prepare "$side"
	t=$(T "$side")
	{
		echo "set +e"
		for mv in "${mvs[@]}"; do echo "$tool add $mv $t >/dev/null || echo \"add $mv: exit \$?\""; done
		if [ "$side" = rs ]; then
			# One -k at most (as dkms 3.2.2); autoinstall_all_kernels: every kernel with headers.
			echo "$tool autoinstall ${RS_JOBS:+-j $RS_JOBS} --etcdir $work/rsetc --no-depmod $t; echo \"autoinstall K1 K2: exit \$?\""
		else
			for k in "$k1" "$k2"; do echo "$tool autoinstall -k $k --no-depmod $t; echo \"autoinstall $k: exit \$?\""; done
		fi
	} >"$work/$side.sh"
	local path=$PATH
	[ "$side" = rs ] && [ -n "${MAKE_J:-}" ] && path=$work/wrap:$PATH
	echo "$side: start $(date -u +%T), load $(cut -d' ' -f1-3 /proc/loadavg)" >&2
	PATH=$path /usr/bin/time -o "$work/$side.time" -f '%e %U %S %M' bash "$work/$side.sh" >"$work/$side.log" 2>&1
	read -r wall user sys rss <"$work/$side.time"
	printf '%s: wall %s s, CPU %.1f s (user %s + sys %s), peak RSS %s MiB; end %s, load %s\n' \
		"$side" "$wall" "$(echo "$user + $sys" | bc)" "$user" "$sys" "$((rss / 1024))" \
		"$(date -u +%T)" "$(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$work/summary" >&2
	grep -h 'exit [0-9]' "$work/$side.log" | sed "s/$k1/K1/; s/$k2/K2/; s/^/  $side: /" | tee -a "$work/summary" >&2
	grep -hi 'failed for module\|skipped\|^Error' "$work/$side.log" | sort | uniq -c | sed "s/$k1/K1/g; s/$k2/K2/g; s/^/  $side: /" >&2 || true
	results "$side" >"$work/$side.results"
}

for side in $tools; do
	case $side in
	rs) run_side rs "$RS" ;;
	322 | 3010) run_side "$side" "$work/dkms$side" ;;
	limit)
		prepare limit
		for mv in "${mvs[@]}"; do "$RS" add "$mv" $(T limit) >/dev/null; done
		echo "limit: start $(date -u +%T), load $(cut -d' ' -f1-3 /proc/loadavg)" >&2
		: >"$work/limit.each"
		for kl in K1 K2; do
			k=$(kernel $kl)
			for mv in "${mvs[@]}"; do
				rc=0
				/usr/bin/time -o "$work/one.time" -f '%e %U %S' "$RS" build "$mv" -k "$k" -j "$cores" --etcdir "$work/etc" $(T limit) \
					>"$work/one.log" 2>&1 || rc=$?
				# A failed build's time has "Command exited with non-zero status N" first.
				read -r wall user sys < <(tail -n 1 "$work/one.time")
				echo "$mv $kl $wall $(echo "$user + $sys" | bc) $rc" >>"$work/limit.each"
			done
		done
		results limit >"$work/limit.results"
		sed 's/^/  /' "$work/limit.each" >&2
		awk -v c="$cores" '{ w += $3; cpu += $4; if ($3 > max) { max = $3; at = $1 " " $2 } }
			END { printf "limit: sum of CPU %.1f s / %d cores = %.1f s; longest %.1f s (%s); one at a time: %.1f s wall\n", cpu, c, cpu / c, max, at, w }' \
			"$work/limit.each" | tee -a "$work/summary" >&2
		;;
	*) echo "unknown side $side" >&2; exit 1 ;;
	esac
done

# The outcomes side by side (module, kernel, then each side's .ko names or "-").
sides=()
for side in $tools; do sides+=("$side"); done
echo "outcomes (${sides[*]}):"
paste -d'|' $(for s in "${sides[@]}"; do echo "$work/$s.results"; done) | while IFS='|' read -r -a cols; do
	first=${cols[0]}
	line="${first%% *} $(echo "$first" | cut -d' ' -f2)"
	same=yes
	for c in "${cols[@]}"; do [ "${c#* * }" = "${first#* * }" ] || same=no; done
	if [ $same = yes ]; then echo "  $line: ${first#* * }"; else
		echo "  $line: DIFFER: $(for i in "${!cols[@]}"; do printf '%s=[%s] ' "${sides[$i]}" "${cols[$i]#* * }"; done)"
	fi
done
cat "$work/summary"
echo "load at the end: $(cut -d' ' -f1-3 /proc/loadavg); $(date -u '+%F %T UTC')" >&2
