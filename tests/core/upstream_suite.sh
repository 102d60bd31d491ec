#!/bin/bash
# Upstream dkms's own test suite (run_test.sh of dkms 3.2.2's orig tarball, fetched by
# .ci/fetch-dkms-3.2.2) against a dkms given as /usr/sbin/dkms, in a private mount namespace
# where nothing the suite writes reaches the host:
#   /usr and /etc      overlays (upper layers in WORK): /usr/src, /lib/modules/K/updates,
#                      depmod's files, /etc/dkms, /etc/os-release moves all land in WORK;
#   /var/lib/dkms      an empty dir of WORK bound over it (the suite wants an empty tree);
#   /usr/sbin/dkms     a link to the dkms under test, /usr/lib/dkms/dkms_autoinstaller its
#                      autoinstaller, /etc/dkms the given framework.conf and framework.conf.d/;
#   uname(2)           says KERNEL: the suite and dkms take `uname -r` for the kernel, and the
#                      running kernel need not be one with headers (an LD_PRELOAD shim, built
#                      here with cc, for bash's `uname` and dkms-rs's libc call alike).
#
# The suite stops at its first failed check (set -e); this runs a copy whose checks record a
# verdict and go on, line for line the same script (line numbers are run_test.sh's):
#   run_with_expected_error/_output, run_status_with_expected_output, check_make_log_content
#                      compare as upstream's do and write `PASS LINE`, `FAIL LINE` or
#                      `SIGN LINE` (fails, but passes once the signing lines are dropped from
#                      both sides: the MOK prologue and "Signing module ...") to RESULTS;
#   `exit 1` after an `echo >&2 "Error: ..."` (file checks, leftover modules)
#                      writes `FILE LINE` instead and goes on;
#   any other command that fails (set -e would have stopped there) writes `STEP LINE CMD`.
# Each failure's command, exit codes and diff go to WORK/failures.log.
#
# usage (as root): upstream_suite.sh WORK SUITE_SRC DKMS AUTOINSTALLER ETC_DKMS KERNEL [SECTION]
#   WORK           empty scratch dir (kept: results, failures.log, the overlays' upper layers)
#   SUITE_SRC      the extracted orig tarball (run_test.sh, test/)
#   DKMS           the dkms under test (dkms-rs's binary, or 3.2.2's usr/sbin/dkms)
#   AUTOINSTALLER  its dkms_autoinstaller
#   ETC_DKMS       dir copied as /etc/dkms (framework.conf, framework.conf.d/)
#   KERNEL         a kernel with headers in /lib/modules/KERNEL/build
#   SECTION        run_test.sh's own argument: one section only (basic, autoinstall, ...)
# e.g., with dkms 3.2.2 itself:
#   r=/var/cache/dkms-rs-tests; w=$(mktemp -d)
#   tests/core/upstream_suite.sh "$w" $r/dkms-3.2.2-src $r/dkms-3.2.2/usr/sbin/dkms \
#     $r/dkms-3.2.2/usr/lib/dkms/dkms_autoinstaller $r/dkms-3.2.2/etc/dkms "$(ls /lib/modules | head -n1)"
#   sort "$w/results" | cut -d' ' -f1 | uniq -c
set -euo pipefail

if [ $# -lt 6 ]; then
	sed -n 's/^# usage/usage/p' "$0" >&2
	exit 2
fi
work=$(realpath "$1") src=$(realpath "$2") dkms=$(realpath "$3") autoinstaller=$(realpath "$4")
etc_dkms=$(realpath "$5") kernel=$6
section=${7:-}

if [ "${UPSTREAM_SUITE_IN_NAMESPACE:-}" != 1 ]; then
	exec unshare -m --propagation private env UPSTREAM_SUITE_IN_NAMESPACE=1 "$0" "$@"
fi

[ -d /var/lib/dkms ] || {
	echo "upstream_suite.sh: /var/lib/dkms must exist to be bound over" >&2
	exit 1
}
[ -d "/lib/modules/$kernel/build" ] || {
	echo "upstream_suite.sh: no headers at /lib/modules/$kernel/build" >&2
	exit 1
}

# The uname shim, built before /usr is overlaid (cc's own temp files are the host's /tmp).
cat >"$work/uname.c" <<'EOF'
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
int uname(struct utsname *u)
{
	static int (*real)(struct utsname *);
	const char *release = getenv("UPSTREAM_SUITE_UNAME_R");
	if (!real)
		real = (int (*)(struct utsname *))dlsym(RTLD_NEXT, "uname");
	int r = real(u);
	if (r == 0 && release) {
		strncpy(u->release, release, sizeof u->release - 1);
		u->release[sizeof u->release - 1] = '\0';
	}
	return r;
}
EOF
cc -shared -fPIC -O2 -o "$work/uname.so" "$work/uname.c" -ldl

for d in usr etc; do
	mkdir -p "$work/$d.upper" "$work/$d.work"
	mount -t overlay overlay -o "lowerdir=/$d,upperdir=$work/$d.upper,workdir=$work/$d.work" "/$d"
done
mkdir -p "$work/var-lib-dkms"
mount --bind "$work/var-lib-dkms" /var/lib/dkms

rm -rf /etc/dkms
mkdir /etc/dkms
cp -a "$etc_dkms/." /etc/dkms/
ln -sfn "$dkms" /usr/sbin/dkms
mkdir -p /usr/lib/dkms
cp "$autoinstaller" /usr/lib/dkms/dkms_autoinstaller
chmod 0755 /usr/lib/dkms/dkms_autoinstaller

# The copy of the suite: three lines changed, each for one line (line numbers stay).
mkdir -p "$work/suite" "$work/tmp"
cp -a "$src/test" "$work/suite/"
awk -v overrides="$work/overrides.sh" '
	NR == 3 && $0 == "set -eu" {
		print "set -Eu; trap '\''__step_fail \"$LINENO\" \"$BASH_COMMAND\"'\'' ERR"
		next
	}
	$0 == "mod_compression_ext=" && !sourced {
		print "source \"" overrides "\"; mod_compression_ext="
		sourced = 1
		next
	}
	/^[ \t]*exit 1$/ && prev ~ /echo >&2 .Error: / && prev !~ /distribution/ {
		sub(/exit 1/, "__file_fail \"$LINENO\"")
	}
	{ print; prev = $0 }
' "$src/run_test.sh" >"$work/suite/run_test.sh"
chmod 0755 "$work/suite/run_test.sh"

cat >"$work/overrides.sh" <<'EOF'
# Sourced by the copy of run_test.sh after its own helpers: the checks record and go on.
__results=${UPSTREAM_SUITE_RESULTS:?}
__failures=${UPSTREAM_SUITE_FAILURES:?}

# The line of the check in run_test.sh: the caller of the check function (of
# run_with_expected_output when that is how run_with_expected_error was reached).
__check_line() {
	local i
	for ((i = 1; i < ${#FUNCNAME[@]}; i++)); do
		case ${FUNCNAME[i]} in
		run_with_expected_error | run_with_expected_output | run_status_with_expected_output | check_make_log_content | __check_line) ;;
		*)
			echo "${BASH_LINENO[i - 1]}"
			return
			;;
		esac
	done
	echo "${BASH_LINENO[${#BASH_LINENO[@]} - 2]}"
}

# Drop what module signing prints: the prologue's three lines (not the blank line after
# them: prepare_kernel_and_signing prints it with or without signing), "Signing module ...",
# and the key generation notes.
__drop_signing() {
	grep -Ev '^(Sign command: |Signing key: |Public certificate \(MOK\): |Signing module |Certificate or key are missing)' "$1" || true
}

__verdict() { # __verdict LINE VERDICT WHAT...
	local line=$1 verdict=$2
	shift 2
	echo "$verdict $line" >>"$__results"
	if [[ $verdict != PASS ]]; then
		{
			echo "=== $verdict line $line: $*"
			[[ ! -e test_cmd_expected_output.log ]] ||
				diff -U3 test_cmd_expected_output.log test_cmd_output.log || true
		} >>"$__failures"
	fi
}

run_with_expected_error() {
	local line
	line=$(__check_line)
	local expected_error_code=$1
	local dkms_command=$3
	local output_log=test_cmd_output.log
	local expected_output_log=test_cmd_expected_output.log
	local error_code=0 verdict=PASS

	shift
	cat >"${expected_output_log}"
	stdbuf -o L -e L "$@" >"${output_log}" 2>&1 || error_code=$?
	generalize_expected_output "${output_log}" "${dkms_command}"
	if ! diff -q "${expected_output_log}" "${output_log}" >/dev/null; then
		verdict=FAIL
		if [[ ${error_code} == "${expected_error_code}" ]] &&
			diff -q <(__drop_signing "${expected_output_log}") <(__drop_signing "${output_log}") >/dev/null; then
			verdict=SIGN
		fi
	elif [[ ${error_code} != "${expected_error_code}" ]]; then
		verdict=FAIL
	fi
	__verdict "$line" "$verdict" "$* (exit ${error_code}, expected ${expected_error_code})"
	rm -f "${expected_output_log}" "${output_log}"
}

run_status_with_expected_output() {
	local line
	line=$(__check_line)
	local module=$1 verdict=PASS

	cat >test_cmd_expected_output.log
	dkms_status_grep_dkms_module "${module}" >test_cmd_output.log 2>&1
	diff -q test_cmd_expected_output.log test_cmd_output.log >/dev/null || verdict=FAIL
	__verdict "$line" "$verdict" "dkms status (lines of ${module})"
	rm -f test_cmd_expected_output.log test_cmd_output.log
}

check_make_log_content() {
	local line
	line=$(__check_line)
	local make_log=$1 verdict=PASS

	cat >test_cmd_expected_output.log
	cat "$make_log" >test_cmd_output.log 2>&1 || true
	generalize_make_log test_cmd_output.log
	diff -q test_cmd_expected_output.log test_cmd_output.log >/dev/null || verdict=FAIL
	__verdict "$line" "$verdict" "content of ${make_log}"
	rm -f test_cmd_expected_output.log test_cmd_output.log
}

__file_fail() {
	echo "FILE $1" >>"$__results"
	echo "=== FILE line $1" >>"$__failures"
}

__step_fail() {
	echo "STEP $1 $2" >>"$__results"
	echo "=== STEP line $1: $2" >>"$__failures"
}
EOF

: >"$work/results"
: >"$work/failures.log"
cd "$work/suite"
status=0
env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root \
	LANG=C TMPDIR="$work/tmp" LD_PRELOAD="$work/uname.so" UPSTREAM_SUITE_UNAME_R="$kernel" \
	UPSTREAM_SUITE_RESULTS="$work/results" UPSTREAM_SUITE_FAILURES="$work/failures.log" \
	./run_test.sh ${section:+"$section"} >"$work/suite.log" 2>&1 || status=$?
echo "run_test.sh exit $status" >>"$work/suite.log"
exit $status
