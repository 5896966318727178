#!/usr/bin/env bash
# Checks packaging/fabrik.service.in with `systemd-analyze verify` (skipped when the tool is
# missing) and for the settings that docs/deployment.md promises. ExecStart is pointed at the
# built binary, because verify rejects a unit whose program does not exist, and
# /usr/local/bin/fabrik need not exist on the machine that runs the test.
#
# Usage: systemd.sh <source dir> <fabrik binary>
set -uo pipefail

src=$1
binary=$2
template="$src/packaging/fabrik.service.in"
errors=0

fail() {
    echo "FAIL: $*" >&2
    errors=$((errors + 1))
}

for setting in 'User=fabrik' 'ProtectSystem=strict' 'NoNewPrivileges=yes' \
               'StateDirectory=fabrik' 'ConfigurationDirectory=fabrik' \
               'ExecReload=/bin/kill -HUP $MAINPID' 'Restart=on-failure' 'KillSignal=SIGTERM' \
               'Environment=FAKTORY_ENV=production'; do
    grep -qxF "$setting" "$template" || fail "the unit lacks the line $setting"
done
grep -qE '^LimitNOFILE=[0-9]+$' "$template" || fail "the unit sets no LimitNOFILE"
grep -qE '^ExecStart=@FABRIK_BINDIR@/fabrik -d /var/lib/fabrik -c /etc/fabrik$' "$template" ||
    fail "ExecStart must run @FABRIK_BINDIR@/fabrik with the state and configuration directories"
grep -qE '^u fabrik ' "$src/packaging/fabrik.sysusers" ||
    fail "packaging/fabrik.sysusers does not create the user fabrik"

if ! command -v systemd-analyze >/dev/null; then
    echo "SKIP: systemd-analyze is not installed; only the settings were checked" >&2
    ((errors == 0)) && exit 77
    exit 1
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
bindir=$(cd "$(dirname "$binary")" && pwd)
sed "s#@FABRIK_BINDIR@#$bindir#" "$template" >"$tmp/fabrik.service"
# verify exits with 0 after most warnings (an unknown key, a value it ignores), so any output
# counts as a failure.
output=$(systemd-analyze verify --man=no "$tmp/fabrik.service" 2>&1)
status=$?
if ((status != 0)) || [[ -n $output ]]; then
    fail "systemd-analyze verify (exit $status): $output"
fi

if ((errors > 0)); then
    echo "$errors check(s) failed" >&2
    exit 1
fi
echo "fabrik.service passes systemd-analyze verify"
