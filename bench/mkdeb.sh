#!/bin/bash
# Whole-process benchmark of dkms-mkdeb (issue 2, point 6). Run by hand, not a test:
#
#   bench/mkdeb.sh [WORKDIR]
#
# For examples/hello and for a large module (a copy of the ~75 MB linux-headers common tree
# with a dkms.conf added) it compares
#   - dkms-mkdeb (release build), the whole process, source dir -> .deb;
#   - dpkg-deb --root-owner-group --build of the same staged tree: dkms-mkdeb's own output
#     raw-extracted (dpkg-deb -R), so DEBIAN/ holds the same control, md5sums, postinst and
#     prerm and both programs do the same job at the same xz level (6, both defaults);
#   - for hello only: dpkg-buildpackage -b with dh + dh_dkms on a minimal debian/ dir.
# Wall times come from hyperfine (warm page cache: warmup runs), peak RSS from
# /usr/bin/time -v (maximum resident set size of the process tree's largest process).
# It also measures the physical limit of the large case: xz -6 CPU time of its data.tar on
# one thread (wall time on N cores cannot go below that / N) and memory of 1 and 2 encoders.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
work=${1:-$(mktemp -d /tmp/mkdeb-bench.XXXXXX)}
mkdir -p "$work"
headers=${HEADERS:-$(ls -d /usr/src/linux-headers-*-common | sort -V | tail -1)}
big_runs=${BIG_RUNS:-3}
# CASES="hello dh" runs a subset (limits and big-alternate need big's output);
# CASES="big big-alternate" adds PAIRS (default 5) alternating runs of the big case.
hello_runs=${HELLO_RUNS:-30}

for tool in hyperfine dpkg-deb dpkg-buildpackage dh_dkms xz /usr/bin/time; do
    command -v "$tool" >/dev/null || { echo "missing: $tool" >&2; exit 1; }
done

echo "== load before: $(uptime)"
(cd "$repo" && cargo build --release --quiet --bin dkms-mkdeb)
mkdeb=$repo/target/release/dkms-mkdeb

export SOURCE_DATE_EPOCH=1700000000
export DEBFULLNAME="Bench Mark" DEBEMAIL="bench@example.org"

# --- sources -------------------------------------------------------------------------------
hello=$repo/examples/hello
big=$work/bigmod
if [ ! -f "$big/dkms.conf" ]; then
    rm -rf "$big"
    cp -a "$headers" "$big"
    cat > "$big/dkms.conf" <<'CONF'
PACKAGE_NAME="bigmod"
PACKAGE_VERSION="1.0"
BUILT_MODULE_NAME[0]="bigmod"
DEST_MODULE_LOCATION[0]="/updates"
AUTOINSTALL="yes"
CONF
fi

# --- helpers -------------------------------------------------------------------------------
# peak_rss_kb CMD...: maximum resident set size (KiB) of one run.
peak_rss_kb() {
    /usr/bin/time -f '%M' -o "$work/rss" "$@" >/dev/null 2>&1
    cat "$work/rss"
}

# wall_mean JSON INDEX: mean wall seconds of command INDEX in a hyperfine export.
wall_mean() {
    python3 -c 'import json,sys; r=json.load(open(sys.argv[1]))["results"][int(sys.argv[2])]; print("%.4f %.4f %.4f" % (r["mean"], r["stddev"] or 0, r["user"] + r["system"]))' "$1" "$2"
}

# compare NAME SOURCE RUNS: dkms-mkdeb vs dpkg-deb of the same staged tree.
compare() {
    local name=$1 src=$2 runs=$3
    local dir=$work/$name
    rm -rf "$dir" && mkdir -p "$dir/ours" "$dir/ref"
    local deb
    deb=$("$mkdeb" -o "$dir/ours" "$src")
    local base
    base=$(basename "$deb")
    # The staged tree dpkg-deb gets: dkms-mkdeb's own output, data and DEBIAN/.
    dpkg-deb -R "$deb" "$dir/staged"
    hyperfine --style basic --warmup 1 --runs "$runs" --export-json "$dir/hyperfine.json" \
        -n dkms-mkdeb "$mkdeb -o $dir/ours $src" \
        -n dpkg-deb "dpkg-deb --root-owner-group -Zxz -z6 --build $dir/staged $dir/ref/$base" \
        >"$dir/hyperfine.txt"
    local ours ref
    read -r ours ours_sd ours_cpu < <(wall_mean "$dir/hyperfine.json" 0)
    read -r ref ref_sd ref_cpu < <(wall_mean "$dir/hyperfine.json" 1)
    local rss_ours rss_ref
    rss_ours=$(peak_rss_kb "$mkdeb" -o "$dir/ours" "$src")
    rss_ref=$(peak_rss_kb dpkg-deb --root-owner-group -Zxz -z6 --build "$dir/staged" "$dir/ref/$base")
    local size_ours size_ref
    size_ours=$(stat -c %s "$dir/ours/$base")
    size_ref=$(stat -c %s "$dir/ref/$base")
    # Same files, same control: only the compressed bytes may differ.
    cmp <(dpkg-deb --fsys-tarfile "$dir/ours/$base" | tar -t) \
        <(dpkg-deb --fsys-tarfile "$dir/ref/$base" | tar -t) >/dev/null \
        || { echo "$name: file lists differ" >&2; exit 1; }
    python3 - "$name" "$ours" "$ours_sd" "$ref" "$ref_sd" "$ours_cpu" "$ref_cpu" "$size_ours" "$size_ref" "$rss_ours" "$rss_ref" <<'PY'
import sys
n, t1, s1, t2, s2, c1, c2, z1, z2, m1, m2 = sys.argv[1:]
t1, s1, t2, s2, c1, c2 = map(float, (t1, s1, t2, s2, c1, c2))
z1, z2, m1, m2 = map(int, (z1, z2, m1, m2))
print(f"{n}: wall dkms-mkdeb {t1*1000:.1f} ms ± {s1*1000:.1f}, dpkg-deb {t2*1000:.1f} ms ± {s2*1000:.1f}, ratio {t1/t2:.3f}")
print(f"{n}: CPU (user+sys) dkms-mkdeb {c1*1000:.1f} ms, dpkg-deb {c2*1000:.1f} ms")
print(f"{n}: size dkms-mkdeb {z1} B, dpkg-deb {z2} B, ratio {z1/z2:.4f}")
print(f"{n}: peak RSS dkms-mkdeb {m1} KiB, dpkg-deb {m2} KiB, ratio {m1/m2:.3f}")
PY
}

# debhelper reference for hello: dh + dh_dkms on a minimal debian/ dir.
dh_reference() {
    local dir=$work/dh/hello-dkms-0.1
    rm -rf "$work/dh" && mkdir -p "$dir/debian" "$dir/src"
    # The module source in a subdir, as -dkms source packages do, so dh_auto_* leave it alone.
    cp "$hello"/* "$dir/src/"
    cat > "$dir/debian/control" <<'CTL'
Source: hello-dkms
Section: kernel
Priority: optional
Maintainer: Bench Mark <bench@example.org>
Build-Depends: debhelper-compat (= 13), dh-sequence-dkms
Standards-Version: 4.6.2
Rules-Requires-Root: no

Package: hello-dkms
Architecture: all
Depends: ${misc:Depends}
Description: hello module in DKMS format
 Benchmark package.
CTL
    cat > "$dir/debian/changelog" <<'CHL'
hello-dkms (0.1) unstable; urgency=medium

  * Benchmark.

 -- Bench Mark <bench@example.org>  Tue, 14 Nov 2023 22:13:20 +0000
CHL
    printf 'Files: *\nCopyright: nobody\nLicense: GPL-2\n' > "$dir/debian/copyright"
    printf 'src/* usr/src/hello-0.1/\n' > "$dir/debian/hello-dkms.install"
    printf '#!/usr/bin/make -f\n%%:\n\tdh $@\n\noverride_dh_dkms:\n\tdh_dkms -V 0.1\n' > "$dir/debian/rules"
    chmod +x "$dir/debian/rules"
    (cd "$dir" && dpkg-buildpackage -b -us -uc >/dev/null 2>&1) \
        || { echo "dpkg-buildpackage -b failed in $dir" >&2; exit 1; }
    hyperfine --style basic --warmup 1 --runs 5 --export-json "$work/dh/hyperfine.json" \
        -n dpkg-buildpackage "cd $dir && dpkg-buildpackage -b -us -uc >/dev/null 2>&1" \
        -n dkms-mkdeb "$mkdeb -o $work/dh $hello" >"$work/dh/hyperfine.txt"
    local dh ours
    read -r dh _ _ < <(wall_mean "$work/dh/hyperfine.json" 0)
    read -r ours _ _ < <(wall_mean "$work/dh/hyperfine.json" 1)
    python3 -c "import sys; d,o=map(float,sys.argv[1:]); print(f'hello: dpkg-buildpackage -b (dh + dh_dkms) {d*1000:.0f} ms, dkms-mkdeb {o*1000:.1f} ms, {d/o:.0f}x faster')" "$dh" "$ours"
}

# alternate NAME PAIRS: on a shared machine, load drifts between hyperfine's blocks of runs;
# running the two programs in alternation shares the drift. Prints each pair and the median.
alternate() {
    local name=$1 pairs=$2 dir=$work/$1
    local src=$big
    [ "$name" = hello ] && src=$hello
    local base
    base=$(basename "$(ls "$dir"/ours/*.deb)")
    : > "$dir/pairs"
    for _ in $(seq "$pairs"); do
        /usr/bin/time -f '%e' -o "$work/t_ours" "$mkdeb" -o "$dir/ours" "$src" >/dev/null
        /usr/bin/time -f '%e' -o "$work/t_ref" dpkg-deb --root-owner-group -Zxz -z6 --build \
            "$dir/staged" "$dir/ref/$base" >/dev/null
        echo "$(cat "$work/t_ours") $(cat "$work/t_ref") $(cut -d' ' -f1 /proc/loadavg)" >> "$dir/pairs"
    done
    python3 - "$name" "$dir/pairs" <<'PY'
import sys, statistics
rows = [tuple(map(float, l.split())) for l in open(sys.argv[2])]
for o, r, l in rows:
    print(f"{sys.argv[1]}: pair dkms-mkdeb {o:.2f} s, dpkg-deb {r:.2f} s, ratio {o/r:.3f} (load {l})")
print(f"{sys.argv[1]}: alternating, median ratio {statistics.median(o/r for o, r, _ in rows):.3f}, "
      f"median dkms-mkdeb {statistics.median(o for o, _, _ in rows):.2f} s, dpkg-deb {statistics.median(r for _, r, _ in rows):.2f} s")
PY
}

# Physical limits of the large case: xz work and encoder memory.
limits() {
    local deb=$work/big/ours/bigmod-dkms_1.0_all.deb
    dpkg-deb --fsys-tarfile "$deb" > "$work/big/data.tar"
    /usr/bin/time -f '%U %e %M' -o "$work/xz1" xz -6 -T1 -c "$work/big/data.tar" > "$work/big/t1.xz"
    /usr/bin/time -f '%U %e %M' -o "$work/xz2" xz -6 -T2 --block-size=8MiB -c "$work/big/data.tar" > /dev/null
    read -r u1 e1 m1 < "$work/xz1"
    read -r u2 e2 m2 < "$work/xz2"
    echo "big: data.tar $(stat -c %s "$work/big/data.tar") B; xz -6 -T1: ${u1}s CPU, ${e1}s wall, ${m1} KiB, $(stat -c %s "$work/big/t1.xz") B"
    echo "big: xz -6 -T2 --block-size=8MiB: ${u2}s CPU, ${e2}s wall, ${m2} KiB"
    python3 -c "import sys; print(f'big: lower bound on 2 cores: xz CPU / 2 = {float(sys.argv[1])/2:.2f} s')" "$u1"
    rm -f "$work/big/data.tar" "$work/big/t1.xz"
}

for case in ${CASES:-hello big dh limits}; do
    case $case in
        hello) compare hello "$hello" "$hello_runs" ;;
        big) compare big "$big" "$big_runs" ;;
        big-alternate) alternate big "${PAIRS:-5}" ;;
        dh) dh_reference ;;
        limits) limits ;;
    esac
done
echo "== load after: $(uptime)"
echo "raw hyperfine output: $work/*/hyperfine.txt"
