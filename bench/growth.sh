#!/bin/bash
# How the cost of dkms-rs's commands grows with the tree, against Debian's dkms 3.2.2, in one
# run (a benchmark, not a test; issue 13, item 1):
#   `status`, a no-op `autoinstall -k K1`, `uninstall M/1.0 -k K1` of one module and
#   `remove M/1.0 --all` of one module, `install M/1.0 -k K1` of one module uninstalled
#   for K1 (its build kept), with N modules installed for K kernels
#   (N in $SIZES, K in $KERNELS; default 10 100 1000 x 1 4 8).
#
# The tree, in a temp dir per size (`--dkmstree tree --sourcetree src --installtree
# lib/modules`, an etc/ as /etc/dkms with the tests' framework.conf):
#   - one real module, g0000, built and installed once by dkms-rs against the first kernel of
#     this machine with headers (ls /lib/modules/*/build): its `<k>/<a>/{module,log}` is the seed;
#   - K fake kernels 6.1.0-901-amd64 ... (ABI >= 900, never a real release), each with
#     lib/modules/<fk>/build a symlink to the real kernel's headers (the no-op autoinstall
#     looks for them; nothing is built for a fake kernel);
#   - N modules g0000..: src/<m>-1.0/{dkms.conf,Kbuild,<m>.c}, tree/<m>/1.0/source -> there,
#     for each fake kernel tree/<m>/1.0/<fk>/<a>/module/<m>.ko (the seed's .ko, copied) and
#     log/make.log, tree/<m>/kernel-<fk>-<a> -> 1.0/<fk>/<a>, and the installed copy
#     lib/modules/<fk>/updates/dkms/<m>.ko: the files dkms writes, so both tools say
#     `installed` for all N x K (checked: the two status outputs must be equal).
# Times: whole processes, `date +%s%N` around each (written before hyperfine was installed), the
# median of $RUNS (default 5) for dkms-rs. dkms 3.2.2 runs as the tests run it
# (tests/support/scratch.rs Scratch::dkms_3_2_2: unshare -m, etc/ bind-mounted on /etc/dkms,
# `bash dkms ... <tree options>`; the unshare is in its time): $PEER_RUNS runs (default 5), and
# 1 run where N x K > $PEER_BIG (default 40); sizes with N x K > $PEER_MAX (default 400) are
# not run for it at all (at ~0.2-0.9 s per entry, 8000 entries are 30 min to 2 h a run). The table says how many runs each figure is. uninstall/remove undo
# themselves between runs (the module's tree dir and installed files restored, untimed).
# depmod is off for both (--no-depmod): fake kernels have no modules.dep worth remaking.
# Needs: root (unshare), make, headers of one kernel, dkms 3.2.2 extracted by
# .ci/fetch-dkms-3.2.2. Usage: bench/growth.sh   (SIZES="10 100" KERNELS="1 8" RUNS=3 ...)
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
runs=${RUNS:-5}
peer_runs=${PEER_RUNS:-5}
peer_big=${PEER_BIG:-40}
peer_max=${PEER_MAX:-400}
sizes=(${SIZES:-10 100 1000})
kcounts=(${KERNELS:-1 4 8})
target=${CARGO_TARGET_DIR:-$here/target}
# DKMS_RS=<binary>: time that build instead of this tree's release build.
if [ -n "${DKMS_RS:-}" ]; then
    rs=$DKMS_RS
else
    cargo build --release --manifest-path "$here/Cargo.toml" --bin dkms-rs >&2
    rs="$target/release/dkms-rs"
fi
peer=${DKMS_3_2_2:-/var/cache/dkms-rs-tests/dkms-3.2.2}/usr/sbin/dkms
[ -f "$peer" ] || { echo "no dkms 3.2.2 at $peer (.ci/fetch-dkms-3.2.2)" >&2; exit 1; }
real=$(for d in /lib/modules/*/build/include; do d=${d%/build/include}; echo "${d##*/}"; done | sort | head -1)
[ -n "$real" ] && [ -d "/lib/modules/$real/build" ] || { echo "no kernel headers" >&2; exit 1; }
arch=$(uname -m)
if [ "${1:-}" = tree ]; then
    # `bench/growth.sh tree DIR N K`: only build one tree in DIR (kept), for profiling and
    # peak memory by hand; its tree options are printed.
    work=$2
    mkdir -p "$work"
else
    work=$(mktemp -d /tmp/dkms-rs-growth.XXXXXX)
    trap 'rm -rf "$work"' EXIT
fi
export LC_ALL=C.UTF-8
echo "real kernel $real; work dir $work; $(nproc) CPUs; $(uptime)" >&2

# The seed: one module built and installed for the real kernel.
seed=$work/seed
mkdir -p "$seed/tree" "$seed/src/g0000-1.0" "$seed/lib/modules/$real" "$seed/etc"
# No signing, and no MOK pair made in the host's /var/lib/dkms.
printf 'sign_file="%s/no-sign-file"\nmok_signing_key="%s/mok.key"\nmok_certificate="%s/mok.pub"\n' "$seed" "$seed" "$seed" > "$seed/etc/framework.conf"
ln -s "/lib/modules/$real/build" "$seed/lib/modules/$real/build"
echo 'obj-m := g0000.o' > "$seed/src/g0000-1.0/Kbuild"
cat > "$seed/src/g0000-1.0/g0000.c" <<'C'
#include <linux/module.h>
static int __init g_init(void) { return 0; }
static void __exit g_exit(void) {}
module_init(g_init);
module_exit(g_exit);
MODULE_LICENSE("GPL");
MODULE_VERSION("1.0");
C
printf 'PACKAGE_NAME="g0000"\nPACKAGE_VERSION="1.0"\nBUILT_MODULE_NAME[0]="g0000"\nDEST_MODULE_LOCATION[0]="/updates"\nAUTOINSTALL="yes"\n' > "$seed/src/g0000-1.0/dkms.conf"
"$rs" install g0000/1.0 -k "$real" --no-depmod --dkmstree "$seed/tree" --sourcetree "$seed/src" \
    --installtree "$seed/lib/modules" --etcdir "$seed/etc" >&2
built=$seed/tree/g0000/1.0/$real/$arch
ls "$built/module/g0000.ko" >/dev/null

# One tree of N modules installed for K fake kernels (layout in the header).
make_tree() {
    local dir=$1 n=$2 k=$3
    python3 - "$dir" "$n" "$k" "$seed" "$built" "$arch" "/lib/modules/$real/build" <<'PY'
import os, shutil, sys
dir, n, k, seed, built, arch, headers = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), *sys.argv[4:]
kernels = [f"6.1.0-{901 + i}-amd64" for i in range(k)]
src0 = os.path.join(seed, "src", "g0000-1.0")
ko = open(os.path.join(built, "module", "g0000.ko"), "rb").read()
log = open(os.path.join(built, "log", "make.log"), "rb").read() if os.path.exists(os.path.join(built, "log", "make.log")) else b""
conf = open(os.path.join(src0, "dkms.conf")).read()
c = open(os.path.join(src0, "g0000.c")).read()
etc = os.path.join(dir, "etc")
os.makedirs(etc)
d = dir
open(os.path.join(etc, "framework.conf"), "w").write(
    f'sign_file="{d}/no-sign-file"\nmok_signing_key="{d}/mok.key"\nmok_certificate="{d}/mok.pub"\n')
for fk in kernels:
    os.makedirs(os.path.join(dir, "lib/modules", fk, "updates/dkms"))
    os.symlink(headers, os.path.join(dir, "lib/modules", fk, "build"))
def write(path, data):
    with open(path, "wb") as f:
        f.write(data)
for i in range(n):
    m = f"g{i:04d}"
    s = os.path.join(dir, "src", f"{m}-1.0")
    os.makedirs(s)
    write(os.path.join(s, "dkms.conf"), conf.replace("g0000", m).encode())
    write(os.path.join(s, "Kbuild"), f"obj-m := {m}.o\n".encode())
    write(os.path.join(s, f"{m}.c"), c.encode())
    v = os.path.join(dir, "tree", m, "1.0")
    os.makedirs(v)
    os.symlink(s, os.path.join(v, "source"))
    for fk in kernels:
        t = os.path.join(v, fk, arch)
        os.makedirs(os.path.join(t, "module"))
        os.makedirs(os.path.join(t, "log"))
        write(os.path.join(t, "module", f"{m}.ko"), ko)
        write(os.path.join(t, "log", "make.log"), log)
        os.symlink(f"1.0/{fk}/{arch}", os.path.join(dir, "tree", m, f"kernel-{fk}-{arch}"))
        write(os.path.join(dir, "lib/modules", fk, "updates/dkms", f"{m}.ko"), ko)
PY
}

# Median of the given numbers.
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }

# time_runs RUNS RESTORE -- CMD...: the median wall in ms of RUNS runs of CMD (stdout and
# stderr to $work/last.{out,err}), RESTORE run untimed after each; fails on a failed run.
time_runs() {
    local n=$1 restore=$2 t0 t1 i
    shift 3
    local ms=()
    for ((i = 0; i < n; i++)); do
        t0=$(date +%s%N)
        "$@" > "$work/last.out" 2> "$work/last.err" || {
            echo "failed ($?): $*" >&2; cat "$work/last.err" >&2; return 1; }
        t1=$(date +%s%N)
        ms+=("$(( (t1 - t0) / 100000 ))")   # tenths of ms
        $restore
    done
    median "${ms[@]}" | awk '{printf "%.1f", $1 / 10}'
}

# The tools on the tree of the current size ($T: its dir).
ours() { "$rs" "$@" --dkmstree "$T/tree" --sourcetree "$T/src" --installtree "$T/lib/modules" --etcdir "$T/etc"; }
theirs() {
    unshare -m --propagation private sh -c \
        'etc=$1 dkms=$2; shift 2; mount --bind "$etc" /etc/dkms && exec bash "$dkms" "$@"' \
        sh "$T/etc" "$peer" "$@" --dkmstree "$T/tree" --sourcetree "$T/src" --installtree "$T/lib/modules"
}

# The one module uninstall/remove act on, kept aside to be put back between runs.
victim=g0005
save_victim() {
    local d kv
    rm -rf "$T/saved"; mkdir -p "$T/saved"
    cp -a "$T/tree/$victim" "$T/saved/tree"
    for d in "$T"/lib/modules/*/updates/dkms; do
        kv=${d%/updates/dkms}; kv=${kv##*/}
        mkdir -p "$T/saved/lib/$kv"; cp -a "$d/$victim.ko" "$T/saved/lib/$kv/"
    done
}
restore_victim() {
    local d
    rm -rf "$T/tree/$victim"; cp -a "$T/saved/tree" "$T/tree/$victim"
    for d in "$T"/saved/lib/*; do cp -a "$d/$victim.ko" "$T/lib/modules/${d##*/}/updates/dkms/"; done
}
nothing() { :; }
# install's runs start from the victim uninstalled for K1 (by dkms-rs, untimed), and end
# with the tree put back.
reuninstall() { ours uninstall "$victim/1.0" -k "$k1" --no-depmod > /dev/null; }

if [ "${1:-}" = tree ]; then
    make_tree "$work/n$3-k$4" "$3" "$4"
    T=$work/n$3-k$4
    echo "--dkmstree $T/tree --sourcetree $T/src --installtree $T/lib/modules --etcdir $T/etc"
    exit 0
fi
results=$work/results
printf '| size (modules x kernels) | command | dkms-rs ms (median of %s) | dkms 3.2.2 ms (runs) | ratio | load |\n|---|---|---|---|---|---|\n' "$runs" > "$results"
slopes=$work/slopes
: > "$slopes"
: > "$work/cpu"
for n in "${sizes[@]}"; do
    for k in "${kcounts[@]}"; do
        T=$work/n$n-k$k
        echo "== $n x $k: building the tree" >&2
        make_tree "$T" "$n" "$k"
        # Both tools glob unquoted dkms.conf fields against the working directory (dkms's
        # read_conf does): run them in the tree's dir, not in a crowded /tmp.
        cd "$T"
        k1=6.1.0-901-amd64
        (( n > 5 )) || victim=g0000
        save_victim
        size=$((n * k))
        if (( size > peer_max )); then pr=0; elif (( size > peer_big )); then pr=1; else pr=$peer_runs; fi
        ours status > "$work/rs.status"
        # Same output from both tools where 3.2.2 runs at all (its status alone is minutes
        # there); elsewhere every entry must at least be `installed`.
        if (( pr > 0 )); then
            theirs status > "$work/peer.status"
            cmp -s "$work/rs.status" "$work/peer.status" || {
                echo "status differs at $n x $k" >&2; diff "$work/peer.status" "$work/rs.status" | head >&2; exit 1; }
        fi
        lines=$(grep -c ': installed$' "$work/rs.status")
        (( lines == n * k )) || { echo "$lines installed lines, not $((n * k))" >&2; exit 1; }
        for cmd in status autoinstall uninstall remove install; do
            [ "$cmd" = install ] && reuninstall
            case $cmd in
                status) args=(status); restore=nothing ;;
                install) args=(install "$victim/1.0" -k "$k1" --no-depmod); restore=reuninstall ;;
                autoinstall) args=(autoinstall -k "$k1"); restore=nothing ;;
                uninstall) args=(uninstall "$victim/1.0" -k "$k1" --no-depmod); restore=restore_victim ;;
                remove) args=(remove "$victim/1.0" --all --no-depmod); restore=restore_victim ;;
            esac
            load=$(cut -d' ' -f1 /proc/loadavg)
            a=$(time_runs "$runs" "$restore" -- ours "${args[@]}")
            if (( pr > 0 )); then
                b=$(time_runs "$pr" "$restore" -- theirs "${args[@]}")
                ratio=$(awk -v a="$a" -v b="$b" 'BEGIN {printf "%.4f", a / b}')
                peer_cell="$b ($pr)"
            else
                peer_cell="not run"; ratio="—"
            fi
            load="$load→$(cut -d' ' -f1 /proc/loadavg)"
            printf '| %s x %s = %s | `%s` | %s | %s | %s | %s |\n' "$n" "$k" "$size" "${args[*]}" "$a" "$peer_cell" "$ratio" "$load" | tee -a "$results" >&2
            echo "$cmd $size $a ${b:-}" >> "$slopes"
            b=
            [ "$cmd" = install ] && restore_victim
        done
        # The status output after uninstall/remove runs is the one before (restored).
        ours status | cmp -s - "$work/rs.status" || { echo "tree not restored at $n x $k" >&2; exit 1; }
        # status once more under time(1): CPU (user+sys) and peak RSS, dkms 3.2.2 where run.
        /usr/bin/time -f "%e %U %S %M" -o "$work/time.rs" "$rs" status --dkmstree "$T/tree" \
            --sourcetree "$T/src" --installtree "$T/lib/modules" --etcdir "$T/etc" > /dev/null
        read -r e u sy m < "$work/time.rs"
        cell_rs=$(awk -v u="$u" -v s="$sy" -v m="$m" -v e="$e" 'BEGIN {printf "%.0f ms CPU, %.1f MiB (wall %.2f s)", (u + s) * 1000, m / 1024, e}')
        if (( pr > 0 )); then
            /usr/bin/time -f "%e %U %S %M" -o "$work/time.peer" bash -c \
                'T=$1 peer=$2; exec unshare -m --propagation private sh -c '"'"'mount --bind "$1" /etc/dkms && exec bash "$2" status --dkmstree "$3/tree" --sourcetree "$3/src" --installtree "$3/lib/modules"'"'"' sh "$T/etc" "$peer" "$T"' \
                sh "$T" "$peer" > /dev/null
            read -r e u sy m < "$work/time.peer"
            cell_peer=$(awk -v u="$u" -v s="$sy" -v m="$m" -v e="$e" 'BEGIN {printf "%.0f ms CPU, %.1f MiB (wall %.2f s)", (u + s) * 1000, m / 1024, e}')
        else
            cell_peer="not run"
        fi
        printf '| %s x %s | %s | %s | %s |\n' "$n" "$k" "$cell_rs" "$cell_peer" "$(cut -d' ' -f1 /proc/loadavg)" | tee -a "$work/cpu" >&2
        cd "$work"
        rm -rf "$T"
    done
done
printf '\n`status` once under /usr/bin/time (user+sys CPU, peak RSS %%M of the largest process):\n\n| size | dkms-rs | dkms 3.2.2 | load |\n|---|---|---|---|\n' >> "$results"
cat "$work/cpu" >> "$results"
echo >> "$results"
# Slope: least squares of ms on modules x kernels, over every size measured.
for cmd in status autoinstall uninstall remove install; do
    awk -v c="$cmd" '$1 == c {
        n++; x += $2; y += $3; xx += $2 * $2; xy += $2 * $3
        if ($4 != "") { m++; X += $2; Y += $4; XX += $2 * $2; XY += $2 * $4 } }
      END {
        s = (n * xy - x * y) / (n * xx - x * x)
        printf "slope of `%s`: dkms-rs %.4f ms per module x kernel (intercept %.1f ms)", c, s, (y - s * x) / n
        if (m > 1) { S = (m * XY - X * Y) / (m * XX - X * X); printf "; dkms 3.2.2 %.4f ms over its %d sizes", S, m }
        print "" }' "$slopes" >> "$results"
done
echo "done: $(uptime)" >&2
cat "$results"
