#!/bin/bash
# Kernel hooks, dkms 3.0.10 vs the engine (dkms-rs), on this machine, in one run (a benchmark,
# not a test): the wall time of `apt-get install <new kernel's headers>` until every AUTOINSTALL
# module is built and installed for that kernel (the headers' postinst runs
# /etc/kernel/header_postinst.d/dkms), for five real Debian -dkms packages, against the
# physical limit: the CPU time of the same make runs divided by the cores.
#
# Each side is a copy of the bookworm target machine of .ci/target-chroot, used through
# `unshare -m` + chroot (the host's /lib/modules, /var/lib/dkms and /usr/src are never
# touched): side "dkms" gets Debian's dkms (bookworm's 3.0.10), side "engine" the dkms-rs .deb
# from a local apt repo; then both get the five -dkms packages (their postinsts build for the
# kernels already there; not timed). The new kernel is a flavour whose headers are removed from
# the copy first (default: the standard one, linux-headers-ARCH, as the cloud flavour stays
# installed; see bench/README.md for why not -rt or -cloud; its release is found at run time from
# /lib/modules). Its .debs are downloaded before the timed install, so the network is not timed;
# apt's archives are kept in <cache>/bench-archives-<side> so a second run downloads nothing.
# The two sides run one after the other, never at once. After each timed install, `dkms status`
# must say "installed" for every module and the new kernel, on both sides, else the run fails.
#
# Then, on the engine side, for the new kernel: each module's make command as the engine ran it
# (line 3 of its make.log) is run again, one module at a time, in a fresh copy of the module's
# source at its build directory, under bash's `time` (user+sys of make and all its children):
# their sum divided by nproc is the physical limit. Last, on each side, the headers are installed
# once more with the dkms hook made non-executable (run-parts skips it): apt/dpkg's own share.
#
# usage: bench/kernel-hooks.sh [ENGINE_DEB]
# env:   ENGINE_DEB  the engine .deb (default: the one .ci/run's Debian test built, under the
#                    cache, with a note; BUILD=1 builds one from this tree with dpkg-buildpackage)
#        REPEAT=n    timed installs per side (default 1; between them the new kernel's modules
#                    are removed with `dkms remove` and its headers purged), sides alternating
#        NEW_HEADERS the headers metapackage of the new kernel (default linux-headers-ARCH)
#        KEEP=1      keep the work dir (chroots and logs) under /var/tmp
# cache: $DKMS_RS_TEST_CACHE, else /var/cache/dkms-rs-tests
# Needs: root, unshare, apt-ftparchive (apt-utils), mmdebstrap (first run of .ci/target-chroot),
# network to the Debian mirror on a first run.
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
cache=${DKMS_RS_TEST_CACHE:-/var/cache/dkms-rs-tests}
debarch=$(dpkg --print-architecture)
new_headers=${NEW_HEADERS:-linux-headers-$debarch}
flavour=${new_headers#linux-headers-}
repeat=${REPEAT:-1}
packages=(acpi-call-dkms v4l2loopback-dkms bbswitch-dkms tp-smapi-dkms openafs-modules-dkms)
cores=$(nproc)
export LC_ALL=C.UTF-8

[ "$(id -u)" = 0 ] || { echo "kernel-hooks.sh: needs root (chroot, unshare -m)" >&2; exit 1; }
for tool in unshare chroot apt-ftparchive; do
	command -v "$tool" >/dev/null || { echo "kernel-hooks.sh: needs $tool" >&2; exit 1; }
done

work=$(mktemp -d /var/tmp/dkms-rs-bench-hooks.XXXXXX)
cleanup() {
	# The chroots' mounts live in namespaces that are gone; never delete through a mount.
	if [ "${KEEP:-0}" = 1 ] || findmnt -rn -o TARGET | grep -q "^$work/"; then
		echo "kept $work" >&2
	else
		rm -rf "$work"
	fi
}
trap cleanup EXIT

## The engine .deb.
deb=${1:-${ENGINE_DEB:-}}
if [ -z "$deb" ] && [ "${BUILD:-0}" = 1 ]; then
	# A copy of what a commit of the tree holds (tracked and untracked-not-ignored files).
	src=$cache/bench-build/dkms-rs
	rm -rf "$src" && mkdir -p "$src"
	(cd "$here" && git ls-files -z --cached --others --exclude-standard | tar --null -T - -cf -) |
		tar -xf - -C "$src"
	(cd "$src" && CARGO_TARGET_DIR=$cache/bench-build/target dpkg-buildpackage -b -us -uc >&2)
	debs=("$cache"/bench-build/dkms-rs_*_"$debarch".deb)
	deb=${debs[-1]}
elif [ -z "$deb" ]; then
	debs=("$cache"/debian-target/debian-build/dkms-rs_*_"$debarch".deb)
	deb=${debs[-1]}
	[ -s "$deb" ] || { echo "kernel-hooks.sh: no engine .deb under $cache/debian-target/debian-build: pass one, or BUILD=1" >&2; exit 1; }
	echo "engine: the .deb built earlier, $deb ($(stat -c %y "$deb" | cut -d. -f1)); pass a path or BUILD=1 to build this tree's" >&2
fi
[ -s "$deb" ] || { echo "kernel-hooks.sh: $deb: no such .deb" >&2; exit 1; }
# A copy: the cached one may be rebuilt while this runs.
cp "$deb" "$work/" && deb=$work/${deb##*/}
deb_sum=$(sha256sum "$deb" | cut -c1-16)

## The target machine (a directory or a tarball, whichever .ci/target-chroot made).
tree=$("$here/.ci/target-chroot")

# What runs inside the chroot: `bench-in CMD ARGS`; results on stdout as `key value` lines.
cat >"$work/bench-in" <<'IN'
#!/bin/bash
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive LC_ALL=C.UTF-8
apt=(apt-get -y -q -o Dpkg::Use-Pty=0 --no-install-recommends)
hook=/etc/kernel/header_postinst.d/dkms
log=/root/bench.log
cmd=$1
shift
# Installed headers packages of a flavour: linux-headers-<flavour> and
# linux-headers-<N.N.N-ABI>-<flavour> (not another flavour ending the same way).
flavour_pkgs() {
	dpkg-query -W -f '${db:Status-Abbrev} ${Package}\n' 'linux-headers-*' |
		awk -v re="^linux-headers-([0-9.]+-[0-9]+-)?$1\$" '$1 == "ii" && $2 ~ re { print $2 }'
}
# The modules dkms knows, as module/version.
modules() {
	for s in /var/lib/dkms/*/*/source; do
		s=${s%/source}
		echo "${s#/var/lib/dkms/}"
	done
}
# Time an install of the new headers: prints `wall W`, `cpu U+S` (of apt and all it waited
# for) and `kernel K` (the one /lib/modules gained).
timed_install() {
	local before t
	before=$(ls /lib/modules)
	TIMEFORMAT='%R %U %S'
	echo "=== $(date -u +%T) apt-get install $1" >>"$log"
	t=$({ time "${apt[@]}" install "$1" >>"$log" 2>&1; } 2>&1) ||
		{ echo "apt-get install $1 failed; the end of $log:" >&2; tail -n 30 "$log" >&2; exit 1; }
	echo "wall ${t%% *}"
	echo "cpu $(echo "$t" | awk '{ printf "%.2f", $2 + $3 }')"
	echo "kernel $(comm -13 <(echo "$before") <(ls /lib/modules) | head -n 1)"
}
case $cmd in
prepare) # DKMS_PACKAGE NEW_HEADERS FLAVOUR PACKAGES...
	dkms_pkg=$1 new=$2 flavour=$3
	shift 3
	apt-get update -q >>"$log" 2>&1
	mapfile -t gone < <(flavour_pkgs "$flavour")
	if ((${#gone[@]})); then
		"${apt[@]}" purge "${gone[@]}" >>"$log" 2>&1
	fi
	for k in /lib/modules/*; do
		if [[ ${k#/lib/modules/} =~ ^[0-9.]+-[0-9]+-$flavour$ ]]; then rm -rf "$k"; fi
	done
	"${apt[@]}" install "$dkms_pkg" >>"$log" 2>&1
	"${apt[@]}" install "$@" >>"$log" 2>&1
	"${apt[@]}" install --download-only "$new" >>"$log" 2>&1
	echo "dkms $(dpkg-query -W -f '${Package} ${Version}' "$dkms_pkg")"
	kernels=(/lib/modules/*)
	echo "kernels ${kernels[*]#/lib/modules/}"
	;;
timed) # NEW_HEADERS
	timed_install "$1"
	;;
verify) # KERNEL COUNT: every module installed for KERNEL, COUNT of them
	st=$(dkms status)
	mapfile -t lines <<<"$st"
	printf '   %s\n' "${lines[@]}" >&2
	n=0
	for mv in $(modules); do
		if ! echo "$st" | grep -q "^$mv, $1, [^:]*: installed"; then
			echo "NOT INSTALLED: $mv for $1" >&2
			exit 1
		fi
		n=$((n + 1))
	done
	[ "$n" = "$2" ] || { echo "$n modules known to dkms, not $2" >&2; exit 1; }
	;;
reset) # KERNEL FLAVOUR: the new kernel's builds and installs gone, its headers purged
	# By hand, the same for both tools: dkms 3.0.10's `remove -k` drops a module from the
	# tree when no other kernel has it built (v4l2loopback, excluded on the cloud flavour).
	for mv in $(modules); do
		rm -rf "/var/lib/dkms/$mv/$1"
	done
	mapfile -t gone < <(flavour_pkgs "$2")
	"${apt[@]}" purge "${gone[@]}" >>"$log" 2>&1
	rm -rf "/lib/modules/$1"
	;;
unpack) # NEW_HEADERS KERNEL: the install without the dkms hook
	chmod -x "$hook"
	timed_install "$1"
	chmod +x "$hook"
	if dkms status | grep -q ", $2, "; then
		echo "the hook ran although it was not executable" >&2
		exit 1
	fi
	;;
makecpu) # KERNEL: each module's make again (the engine's command, its make.log line 3)
	TIMEFORMAT='%R %U %S'
	for mv in $(modules); do
		d=/var/lib/dkms/$mv
		mlog=$(ls "$d/$1"/*/log/make.log)
		inv=$(sed -n '3s/^# //p' "$mlog")
		[ -n "$inv" ] || { echo "$mlog: no command on line 3" >&2; exit 1; }
		# The engine's command names its build dir; a dir other than <m>/<v>/build is not
		# reproduced here.
		if echo "$inv" | grep -q "$d/" && ! echo "$inv" | grep -q "$d/build"; then
			echo "$mlog: the command names a build dir other than $d/build: $inv" >&2
			exit 1
		fi
		rm -rf "$d/build"
		cp -a "$(readlink -f "$d/source")/." "$d/build"
		t=$(cd "$d/build" && { time bash -c "$inv" >"/root/make-${mv%%/*}.log" 2>&1; } 2>&1) ||
			{ echo "make of $mv failed again: /root/make-${mv%%/*}.log" >&2; tail -n 20 "/root/make-${mv%%/*}.log" >&2; exit 1; }
		echo "make ${mv%%/*} $t"
	done
	;;
*)
	echo "bench-in: unknown command $cmd" >&2
	exit 2
	;;
esac
IN
chmod +x "$work/bench-in"

# Run a command in side $1's chroot, in a mount namespace of its own: /proc, /dev and the
# side's apt archive cache mounted there and gone when it ends.
inch() {
	local side=$1
	shift
	# shellcheck disable=SC2016 # expanded by the inner bash
	unshare -m -- /bin/bash -c 'set -e; R=$1 A=$2; shift 2
		mount -t proc proc "$R/proc"
		mount --rbind /dev "$R/dev"
		mount --bind "$A" "$R/var/cache/apt/archives"
		exec chroot "$R" /usr/bin/env -i HOME=/root LC_ALL=C.UTF-8 \
			PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin "$@"' \
		inch "$work/$side" "$cache/bench-archives-$side" "$@"
}
# Lines of a result, indented, to stderr.
indent() { sed 's/^/   /' >&2; }
# A `key value` line of a result.
val() { awk -v k="$1" '$1 == k { $1 = ""; sub(/^ /, ""); print; exit }' <<<"$2"; }

setup() {
	local side=$1 dkms_pkg=$2 out
	local R=$work/$side
	echo "== $side: copying the target machine" >&2
	mkdir -p "$R" "$cache/bench-archives-$side/partial"
	if [ -d "$tree" ]; then
		cp -a "$tree/." "$R"
	else
		tar -xf "$tree" --same-owner -C "$R"
	fi
	cp /etc/resolv.conf "$R/etc/resolv.conf"
	cp "$work/bench-in" "$R/usr/local/bin/bench-in"
	if [ "$side" = engine ]; then
		mkdir -p "$R/srv/repo"
		cp "$deb" "$R/srv/repo/"
		(cd "$R/srv/repo" && apt-ftparchive packages . >Packages)
		echo 'deb [trusted=yes] file:/srv/repo ./' >"$R/etc/apt/sources.list.d/engine.list"
	fi
	echo "== $side: $dkms_pkg, then ${packages[*]} (their builds for the kernels there: not timed)" >&2
	local t0=$SECONDS
	out=$(inch "$side" bench-in prepare "$dkms_pkg" "$new_headers" "$flavour" "${packages[@]}")
	indent <<<"$out"
	echo "   ($((SECONDS - t0)) s)" >&2
}

echo "load before: $(uptime)" >&2
load_before=$(uptime | sed 's/.*load average: //')
setup dkms dkms
setup engine dkms-rs

declare -A walls cpus
kernel=
for ((i = 1; i <= repeat; i++)); do
	for side in dkms engine; do
		if ((i > 1)); then
			inch "$side" bench-in reset "$kernel" "$flavour"
		fi
		echo "== $side: timed apt-get install $new_headers (run $i)" >&2
		out=$(inch "$side" bench-in timed "$new_headers")
		k=$(val kernel "$out")
		[ -n "$k" ] || { echo "$side: no new kernel in /lib/modules after installing $new_headers" >&2; exit 1; }
		[ -z "$kernel" ] || [ "$kernel" = "$k" ] || { echo "new kernel $k on $side, $kernel before" >&2; exit 1; }
		kernel=$k
		walls[$side]+="$(val wall "$out") "
		cpus[$side]+="$(val cpu "$out") "
		echo "   new kernel $kernel: wall $(val wall "$out") s, CPU $(val cpu "$out") s; dkms status:" >&2
		inch "$side" bench-in verify "$kernel" "${#packages[@]}"
	done
done
load_timed=$(uptime | sed 's/.*load average: //')

echo "== engine: each module's make again for $kernel, one at a time" >&2
makes=$(inch engine bench-in makecpu "$kernel")
indent <<<"$makes"
make_cpu=$(awk '{ s += $4 + $5 } END { printf "%.2f", s }' <<<"$makes")
make_wall=$(awk '{ s += $3 } END { printf "%.2f", s }' <<<"$makes")
make_longest=$(awk '$3 > m { m = $3; n = $2 } END { printf "%.2f (%s)", m, n }' <<<"$makes")

declare -A unpack
for side in dkms engine; do
	echo "== $side: $new_headers without the dkms hook" >&2
	inch "$side" bench-in reset "$kernel" "$flavour"
	out=$(inch "$side" bench-in unpack "$new_headers" "$kernel")
	unpack[$side]=$(val wall "$out")
done
load_after=$(uptime | sed 's/.*load average: //')
if [ "${KEEP:-0}" = 1 ]; then
	echo "logs: $work/{dkms,engine}/root/bench.log, make-*.log" >&2
fi

# The median of a list of numbers.
median() { tr ' ' '\n' <<<"$1" | grep . | sort -g | awk '{ a[NR] = $1 } END { print (NR % 2 ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2) }'; }
d=$(median "${walls[dkms]}")
e=$(median "${walls[engine]}")
limit=$(awk -v c="$make_cpu" -v n="$cores" 'BEGIN { printf "%.2f", c / n }')
calc() { awk "BEGIN { printf \"%.2f\", $1 }"; }

echo
echo "kernel hooks: apt-get install $new_headers (new kernel's release found at run time), ${#packages[@]} modules: ${packages[*]}"
echo "engine: $(basename "$deb") (sha256 $deb_sum...); $cores cores; load (1/5/15 min) before $load_before, after the timed runs $load_timed, at the end $load_after"
echo
printf '| %-44s | %s |\n' "measure" "value"
printf '|%s|%s|\n' "----------------------------------------------" "------"
printf '| %-44s | %s |\n' "dkms 3.0.10 wall (s), runs: ${walls[dkms]% }" "$d"
printf '| %-44s | %s |\n' "engine wall (s), runs: ${walls[engine]% }" "$e"
printf '| %-44s | %s |\n' "engine / dkms (target <= 0.5)" "$(calc "$e / $d")"
printf '| %-44s | %s |\n' "CPU of the timed install (s): dkms, engine" "${cpus[dkms]% } / ${cpus[engine]% }"
printf '| %-44s | %s |\n' "make CPU user+sys, sum of ${#packages[@]} (s)" "$make_cpu"
printf '| %-44s | %s |\n' "cores" "$cores"
printf '| %-44s | %s |\n' "physical limit = make CPU / cores (s)" "$limit"
printf '| %-44s | %s |\n' "engine / limit (target <= 1.15)" "$(calc "$e / $limit")"
printf '| %-44s | %s |\n' "makes one after another, wall sum (s)" "$make_wall"
printf '| %-44s | %s |\n' "longest single make, wall (s)" "$make_longest"
printf '| %-44s | %s |\n' "headers install, no hook (s): dkms, engine" "${unpack[dkms]} / ${unpack[engine]}"
printf '| %-44s | %s |\n' "limit + headers install, no hook (s)" "$(calc "$limit + ${unpack[engine]}")"
echo
echo "per module make (wall user sys, s):"
awk '{ printf "  %-14s %8s %8s %8s\n", $2, $3, $4, $5 }' <<<"$makes"
