#!/bin/bash
# Incremental work (issue 13, item 3), dkms-rs against dkms 3.2.2 in the same run (a benchmark,
# not a test). Four real Debian -dkms modules (acpi-call, vpoll, tp_smapi: 3 modules, bbswitch)
# are autoinstalled for one kernel with headers (K1); then, each timed:
#  1. the kernel ABI bump: `autoinstall -k K2` for a kernel the modules were never built for
#     (the second kernel with headers here stands in for the new ABI: what matters is a kernel
#     release the tree has no build for). Nothing can be skipped: a module's vermagic names
#     its kernel, so every module is compiled again; both tools' make runs are measured;
#  2. `autoinstall -k K2` again: a no-op;
#  3. `dkms-postinst configure` of one module already installed for both kernels (dkms-rs
#     only: dkms 3.2.2 has no such command; its common.postinst is `dkms status` + `dkms
#     install`, which is step 4's peer);
#  4. `install` of an installed module (dkms 3.2.2: "already installed", exit 0... or 6);
#  5. `dkms-mkdeb` of an unchanged tree (against its first run: the same bytes).
# Everything happens in temp trees (--dkmstree/--sourcetree/--installtree, --no-depmod on both
# sides: dkms 3.2.2 runs depmod on the real /lib/modules whatever the install tree).
# Needs: root (dkms 3.2.2 in a mount namespace binds /etc/dkms), hyperfine, headers for two
# kernels, dkms 3.2.2 extracted by .ci/fetch-dkms-3.2.2, apt-get download.
# shellcheck disable=SC2046,SC2012 # T is word-split on purpose; the .deb names are plain
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
runs=${RUNS:-5}
ref=${DKMS_3_2_2:-${DKMS_RS_TEST_CACHE:-/var/cache/dkms-rs-tests}/dkms-3.2.2}
[ -x "$ref/usr/sbin/dkms" ] || { echo "no dkms 3.2.2 under $ref (.ci/fetch-dkms-3.2.2)" >&2; exit 1; }
cargo build --release --manifest-path "$here/Cargo.toml" --bins >&2
target=${CARGO_TARGET_DIR:-$here/target}
rs=$target/release/dkms-rs postinst=$target/release/dkms-postinst mkdeb=$target/release/dkms-mkdeb
mapfile -t kernels < <(for d in /lib/modules/*/build/include; do d=${d%/build/include}; echo "${d##*/}"; done | sort | head -2)
((${#kernels[@]} == 2)) || { echo "need headers for two kernels" >&2; exit 1; }
k1=${kernels[0]} k2=${kernels[1]}
work=$(mktemp -d /tmp/dkms-rs-incremental.XXXXXX)
trap 'rm -rf "$work"' EXIT
export sign_file=/nonexistent/sign-file LC_ALL=C.UTF-8
echo "kernels: K1=$k1 K2=$k2; $(nproc) CPUs; load: $(cut -d' ' -f1-3 /proc/loadavg)" >&2

# dkms 3.2.2 with an empty /etc/dkms of its own (a private mount namespace).
mkdir -p "$work/etc"
cat >"$work/dkms322" <<EOF
#!/bin/sh
exec unshare -m --propagation private sh -c 'mount --bind "$work/etc" /etc/dkms && exec bash "$ref/usr/sbin/dkms" "\$@"' sh "\$@"
EOF
chmod +x "$work/dkms322"

debs="$target/bench-debs"
mkdir -p "$debs"
pkgs=(acpi-call-dkms vpoll-dkms tp-smapi-dkms bbswitch-dkms)
(cd "$debs" && for p in "${pkgs[@]}"; do ls "$p"_*.deb >/dev/null 2>&1 || apt-get download "$p" >&2; done)
mkdir -p "$work/ext" "$work/src"
for p in "${pkgs[@]}"; do dpkg-deb -x "$(ls "$debs/$p"_*.deb | head -n 1)" "$work/ext"; done
cp -a "$work/ext/usr/src/." "$work/src/"
mapfile -t mvs < <(cd "$work/src" && for d in */; do d=${d%/}; echo "${d%-*}/${d##*-}"; done)
echo "modules: ${mvs[*]}" >&2

T() { echo "--dkmstree $work/$1/tree --sourcetree $work/src --installtree $work/$1/lib/modules"; }
# The start: every module added and installed for K1, by each tool in its own tree.
for side in rs 322; do
	mkdir -p "$work/$side/tree" "$work/$side/lib/modules/$k1" "$work/$side/lib/modules/$k2"
	# Headers are looked for under <installtree>/<k>/build (dkms 3.2.2's _get_kernel_dir).
	for k in "$k1" "$k2"; do ln -s "/lib/modules/$k/build" "$work/$side/lib/modules/$k/build"; done
	tool=$rs
	[ $side = 322 ] && tool=$work/dkms322
	for mv in "${mvs[@]}"; do
		# shellcheck disable=SC2046
		"$tool" add "$mv" $(T $side) >/dev/null
	done
	# shellcheck disable=SC2046
	"$tool" autoinstall -k "$k1" --no-depmod $(T $side) >/dev/null
	cp -a "$work/$side" "$work/$side.start"
done

# 1. The ABI bump: every module built for K2 (from the start state each run).
cat >"$work/restore" <<EOF
#!/bin/sh
rm -rf "$work/\$1" && cp -a "$work/\$1.start" "$work/\$1"
EOF
chmod +x "$work/restore"
hyperfine --runs "${RUNS_BUILD:-3}" --export-markdown "$work/p1.md" \
	-n "dkms 3.2.2 autoinstall -k K2 (new kernel)" --prepare "$work/restore 322" \
	"$work/dkms322 autoinstall -k $k2 --no-depmod $(T 322)" \
	-n "dkms-rs autoinstall -k K2 (new kernel)" --prepare "$work/restore rs" \
	"$rs autoinstall -k $k2 --no-depmod $(T rs)" >&2
cat "$work/p1.md"
# What no dkms can skip: the make runs themselves, as make.log times them (dkms-rs's log of
# the K2 builds, 3.2.2's invoke_command format: `# elapsed time: HH:MM:SS` per step).
echo "make steps for K2 (dkms-rs's make.log, last run):" >&2
for log in "$work"/rs/tree/*/*/"$k2"/*/log/make.log; do
	mv=${log#"$work"/rs/tree/}
	printf '  %s: %s\n' "$(echo "$mv" | cut -d/ -f1,2)" \
		"$(grep -h '^# elapsed time' "$log" | tr '\n' ' ')" >&2
done

# 2-4: the no-ops, on the state after the bump.
"$rs" status $(T rs) | sort >"$work/rs.status"
"$work/dkms322" status $(T 322) | sort >"$work/322.status"
cmp "$work/rs.status" "$work/322.status" || { diff "$work/rs.status" "$work/322.status" >&2; exit 1; }
first=${mvs[0]}
hyperfine --runs "$runs" --warmup 1 -N --export-markdown "$work/p2.md" -i \
	-n "dkms 3.2.2 autoinstall -k K2 (no-op)" "$work/dkms322 autoinstall -k $k2 --no-depmod $(T 322)" \
	-n "dkms-rs autoinstall -k K2 (no-op)" "$rs autoinstall -k $k2 --no-depmod $(T rs)" \
	-n "dkms 3.2.2 install $first -k K2 (installed)" "$work/dkms322 install $first -k $k2 --no-depmod $(T 322)" \
	-n "dkms-rs install $first -k K2 (installed)" "$rs install $first -k $k2 --no-depmod $(T rs)" \
	-n "dkms-postinst configure ${first%/*} ${first#*/} (second run)" \
	"$postinst $(T rs) --etcdir $work/etc --running-kernel $k2 configure ${first%/*} ${first#*/}" >&2
cat "$work/p2.md"

# 5. mkdeb of an unchanged tree: the same bytes, and its time.
mkdir -p "$work/deb1" "$work/deb2"
src=$work/src/${first%/*}-${first#*/}
"$mkdeb" --maintainer 'Bench <bench@example.org>' -o "$work/deb1" "$src" >/dev/null
hyperfine --runs "$runs" --warmup 1 -N --export-markdown "$work/p3.md" \
	-n "dkms-mkdeb of an unchanged tree" \
	"$mkdeb --maintainer 'Bench <bench@example.org>' -o $work/deb2 $src" >&2
cat "$work/p3.md"
cmp "$work"/deb1/*.deb "$work"/deb2/*.deb && echo "mkdeb: same bytes as the first run" >&2
echo "load at the end: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
