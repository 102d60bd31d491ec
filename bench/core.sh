#!/bin/bash
# dkms-rs core vs dkms 3.0.10, on this machine, in one run (a benchmark, not a test):
#  1. `status` and a no-op `autoinstall` with 100 modules installed for 2 kernels;
#  2. `autoinstall` of 4 real Debian -dkms modules for 2 kernels.
# Everything happens in temp trees (--dkmstree/--sourcetree/--installtree); depmod is off for
# both tools in part 2 because dkms 3.0.10 runs it on the real /lib/modules/<k> whatever the
# install tree. Needs: root, hyperfine, dkms, kernel headers for two kernels, apt-get download.
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
runs=${RUNS:-5}
cargo build --release --manifest-path "$here/Cargo.toml" --bin dkms-rs >&2
rs="$here/target/release/dkms-rs"
# Kernels with headers by dkms's rule (build/include), whatever Debian ships that day.
mapfile -t kernels < <(for d in /lib/modules/*/build/include; do d=${d%/build/include}; echo "${d##*/}"; done | sort | head -2)
(( ${#kernels[@]} == 2 )) || { echo "need headers for two kernels" >&2; exit 1; }
k1=${kernels[0]} k2=${kernels[1]}
arch=$(uname -m)
work=$(mktemp -d /tmp/dkms-rs-bench.XXXXXX)
trap 'rm -rf "$work"' EXIT
# Keep real dkms from creating a MOK key in /var/lib/dkms (it reads sign_file from the env).
export sign_file=/nonexistent/sign-file LC_ALL=C.UTF-8
echo "kernels: $k1 $k2; work dir $work; $(nproc) CPUs" >&2

## Part 1: 100 installed modules, 2 kernels.
T="--dkmstree $work/t1/tree --sourcetree $work/t1/src --installtree $work/t1/lib/modules"
mkdir -p "$work/t1/tree" "$work/t1/src/bench000-1.0" "$work/t1/lib/modules/$k1" "$work/t1/lib/modules/$k2"
# Headers under <installtree>/<k>/build, where dkms 3.2.2 (and dkms-rs) look with --installtree.
ln -s "/lib/modules/$k1/build" "$work/t1/lib/modules/$k1/build"
ln -s "/lib/modules/$k2/build" "$work/t1/lib/modules/$k2/build"
src0="$work/t1/src/bench000-1.0"
echo 'obj-m := bench000.o' > "$src0/Kbuild"
cat > "$src0/bench000.c" <<'C'
#include <linux/module.h>
static int __init b_init(void) { return 0; }
static void __exit b_exit(void) {}
module_init(b_init);
module_exit(b_exit);
MODULE_LICENSE("GPL");
MODULE_VERSION("1.0");
C
printf 'PACKAGE_NAME="bench000"\nPACKAGE_VERSION="1.0"\nBUILT_MODULE_NAME[0]="bench000"\nDEST_MODULE_LOCATION[0]="/updates"\nAUTOINSTALL="yes"\n' > "$src0/dkms.conf"
"$rs" install bench000/1.0 -k "$k1" -k "$k2" --no-depmod $T >&2
# Copy the one real installed module's state to 99 more names: the same files dkms writes.
for i in $(seq -w 1 99); do
    m=bench0$i
    s="$work/t1/src/$m-1.0"
    mkdir -p "$s"
    sed "s/bench000/$m/g" "$src0/dkms.conf" > "$s/dkms.conf"
    cp "$src0/Kbuild" "$src0/bench000.c" "$s/"
    mkdir -p "$work/t1/tree/$m/1.0"
    ln -s "$s" "$work/t1/tree/$m/1.0/source"
    for k in "$k1" "$k2"; do
        mkdir -p "$work/t1/tree/$m/1.0/$k"
        cp -a "$work/t1/tree/bench000/1.0/$k/$arch" "$work/t1/tree/$m/1.0/$k/"
        mv "$work/t1/tree/$m/1.0/$k/$arch/module/bench000.ko" "$work/t1/tree/$m/1.0/$k/$arch/module/$m.ko"
        ln -s "1.0/$k/$arch" "$work/t1/tree/$m/kernel-$k-$arch"
        cp "$work/t1/tree/$m/1.0/$k/$arch/module/$m.ko" "$work/t1/lib/modules/$k/updates/dkms/$m.ko"
    done
done
dkms status $T > "$work/dkms.status"
"$rs" status $T > "$work/rs.status"
cmp "$work/dkms.status" "$work/rs.status" || { echo "status differs" >&2; diff "$work/dkms.status" "$work/rs.status" | head >&2; exit 1; }
echo "installed lines: $(grep -c ': installed$' "$work/rs.status") (same in dkms and dkms-rs)" >&2

hyperfine --runs "$runs" --warmup 1 -N --export-markdown "$work/p1.md" \
    -n "dkms status" "dkms status $T" \
    -n "dkms-rs status" "$rs status $T" \
    -n "dkms autoinstall -k $k1 (no-op)" "dkms autoinstall -k $k1 $T" \
    -n "dkms-rs autoinstall -k $k1 (no-op)" "$rs autoinstall -k $k1 $T" \
    -n "dkms-rs autoinstall -k $k1 -k $k2 (no-op)" "$rs autoinstall -k $k1 -k $k2 $T" >&2
cat "$work/p1.md"

## Part 2: 4 real Debian -dkms modules, autoinstall for 2 kernels.
debs="$here/target/bench-debs"
mkdir -p "$debs"
pkgs=(acpi-call-dkms vpoll-dkms tp-smapi-dkms bbswitch-dkms)
(cd "$debs" && for p in "${pkgs[@]}"; do ls "$p"_*.deb >/dev/null 2>&1 || apt-get download "$p" >&2; done)
mkdir -p "$work/ext" "$work/t2/src"
for d in "$debs"/*.deb; do dpkg-deb -x "$d" "$work/ext"; done
cp -a "$work/ext/usr/src/." "$work/t2/src/"
mv_list=$(cd "$work/t2/src" && for d in */; do d=${d%/}; echo "${d%-*}/${d##*-}"; done | tr "\n" " ")
echo "modules:" $mv_list >&2
# hyperfine runs --prepare through sh: a script file, not a bash function.
cat > "$work/prepare" <<PREP
#!/bin/bash
set -e
rm -rf "$work/\$1"
mkdir -p "$work/\$1/tree" "$work/\$1/lib/modules/$k1" "$work/\$1/lib/modules/$k2"
ln -s /lib/modules/$k1/build "$work/\$1/lib/modules/$k1/build"
ln -s /lib/modules/$k2/build "$work/\$1/lib/modules/$k2/build"
for mv in $mv_list; do
    "$rs" add "\$mv" -q --dkmstree "$work/\$1/tree" --sourcetree "$work/t2/src" --installtree "$work/\$1/lib/modules"
done
PREP
chmod +x "$work/prepare"
D() { echo "--dkmstree $work/$1/tree --sourcetree $work/t2/src --installtree $work/$1/lib/modules --no-depmod"; }
hyperfine --runs "${RUNS2:-3}" --export-markdown "$work/p2.md" -i \
    -n "dkms autoinstall -k $k1; -k $k2" --prepare "$work/prepare t3" \
    "dkms autoinstall -k $k1 $(D t3); dkms autoinstall -k $k2 $(D t3)" \
    -n "dkms-rs autoinstall -k $k1 -k $k2" --prepare "$work/prepare t4" \
    "$rs autoinstall -k $k1 -k $k2 $(D t4)" >&2
cat "$work/p2.md"
echo "after the last runs:" >&2
dkms status $(D t3) | sort >&2
"$rs" status $(D t4) | sort >&2
