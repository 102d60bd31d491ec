#!/bin/bash
# Benchmark (by hand, not a test): resolving a dkms.conf with dkms-rs vs dkms 3.0.10's read_conf.
# Usage: bench/conf.sh [KERNEL] [ARCH]    (needs cargo, hyperfine, /usr/sbin/dkms)
# Prints hyperfine's whole-process comparison and the in-process mean of conf::read.
set -euo pipefail
cd "$(dirname "$0")/.."
kernel=${1:-$(ls /lib/modules | sort -V | tail -1)}
arch=${2:-$(uname -m)}
cargo build -q --release --example conf_show --example conf_bench
bin=target/release/examples

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/decl" "$work/shell" "$work/etc"
# Declarative: what most Debian -dkms packages ship (native reader, no process spawned).
cat >"$work/decl/dkms.conf" <<'CONF'
PACKAGE_NAME="benchmod"
PACKAGE_VERSION="1.0"
MAKE[0]="make -C ${kernel_source_dir} M=${dkms_tree}/${PACKAGE_NAME}/${PACKAGE_VERSION}/build"
CLEAN="make -C ${kernel_source_dir} M=${dkms_tree}/${PACKAGE_NAME}/${PACKAGE_VERSION}/build clean"
BUILT_MODULE_NAME[0]="benchmod"
BUILT_MODULE_NAME[1]="benchmod_extra"
DEST_MODULE_LOCATION[0]="/extra"
DEST_MODULE_LOCATION[1]="/extra"
BUILD_EXCLUSIVE_CONFIG="CONFIG_PCI"
AUTOINSTALL="yes"
CONF
# Needs the shell (v4l2loopback-style): handed over to bash.
cat >"$work/shell/dkms.conf" <<'CONF'
PACKAGE_NAME="benchsh"
PACKAGE_VERSION="1.0"
if [ -f $kernel_source_dir/.config ]; then
    . $kernel_source_dir/.config
    if ! { echo "$kernelver"; echo 5.18; } | sort -V -C; then
        [ "${CONFIG_VIDEO_DEV:-n}" = "n" ] && BUILD_EXCLUSIVE_KERNEL="REQUIRES CONFIG_VIDEO_DEV"
    fi
fi
MAKE[0]="make KERNEL_DIR=${kernel_source_dir} all"
BUILT_MODULE_NAME[0]="$PACKAGE_NAME"
DEST_MODULE_LOCATION[0]="/extra"
CONF

# dkms's own read_conf: its functions (everything before argument parsing), one read.
end=$(grep -n '^# Clear out command line argument variables' /usr/sbin/dkms | cut -d: -f1)
head -n "$((end - 1))" /usr/sbin/dkms >"$work/dkms-read.sh"
cat >>"$work/dkms-read.sh" <<'SH'
module=$3 module_version=1.0 kernel_source_dir="" ksourcedir_fromcli="" kconfig_fromcli=""
read_conf "$1" "$2" "$4" >/dev/null
SH

echo "== whole process: dkms-rs (conf_show example) vs dkms read_conf, kernel $kernel/$arch"
for kind in decl shell; do
    name=$([ $kind = decl ] && echo benchmod || echo benchsh)
    hyperfine -N -w 3 -m 20 \
        -n "dkms-rs $kind" "$bin/conf_show $kernel $arch $work/$kind/dkms.conf" \
        -n "dkms $kind" "bash $work/dkms-read.sh $kernel $arch $name $work/$kind/dkms.conf"
done

echo "== in process: conf::read mean (target < 1 ms for a declarative file)"
"$bin/conf_bench" "$kernel" "$arch" 2000 "$work/decl/dkms.conf"
"$bin/conf_bench" "$kernel" "$arch" 50 "$work/shell/dkms.conf"
