#!/usr/bin/env bash
# Runs `make install` into staging directories (DESTDIR) and checks the installed tree. The
# binary must run, and ExecStart of the unit must name the binary of the chosen PREFIX. The man
# page must format without warnings and document every flag, variable and key of `fabrik -h`.
# The example config must start a server.
#
# Usage: install.sh <source dir> <build dir>
set -uo pipefail

src=$1
build=$2
errors=0
tmp=$(mktemp -d)
server_pid=

cleanup() {
    [[ -n $server_pid ]] && kill -KILL "$server_pid" 2>/dev/null
    rm -rf "$tmp"
}
trap cleanup EXIT

fail() {
    echo "FAIL: $*" >&2
    errors=$((errors + 1))
}

# Runs make install with the given variables; prints make's output on failure.
run_install() {
    local target=$1
    shift
    if ! make -C "$src" --no-print-directory "$target" BUILD_DIR="$build" "$@" \
            >"$tmp/make.log" 2>&1; then
        cat "$tmp/make.log" >&2
        return 1
    fi
}

expect_file() {
    [[ -f $1 ]] || fail "$1 was not installed"
}

# ---- PREFIX=/usr ----
root="$tmp/usr-root"
run_install install DESTDIR="$root" PREFIX=/usr || fail "make install PREFIX=/usr failed"
expect_file "$root/usr/bin/fabrik"
expect_file "$root/usr/share/man/man1/fabrik.1"
expect_file "$root/usr/lib/systemd/system/fabrik.service"
expect_file "$root/usr/lib/sysusers.d/fabrik.conf"
expect_file "$root/usr/share/doc/fabrik/examples/fabrik.toml"
[[ -x $root/usr/bin/fabrik ]] || fail "$root/usr/bin/fabrik is not executable"
grep -qxF 'ExecStart=/usr/bin/fabrik -d /var/lib/fabrik -c /etc/fabrik' \
    "$root/usr/lib/systemd/system/fabrik.service" ||
    fail "the unit installed with PREFIX=/usr does not start /usr/bin/fabrik"
version=$("$root/usr/bin/fabrik" -v) || fail "the installed fabrik -v failed"
[[ $version =~ ^fabrik\ [0-9]+\.[0-9]+\.[0-9]+$ ]] || fail "fabrik -v printed '$version'"

# ---- the default PREFIX, /usr/local, stripped ----
local_root="$tmp/local-root"
run_install install-strip DESTDIR="$local_root" || fail "make install-strip failed"
expect_file "$local_root/usr/local/bin/fabrik"
grep -qxF 'ExecStart=/usr/local/bin/fabrik -d /var/lib/fabrik -c /etc/fabrik' \
    "$local_root/usr/local/lib/systemd/system/fabrik.service" ||
    fail "the unit installed with the default prefix does not start /usr/local/bin/fabrik"
unstripped=$(stat -c %s "$root/usr/bin/fabrik")
stripped=$(stat -c %s "$local_root/usr/local/bin/fabrik")
((stripped < unstripped)) || fail "install-strip left the binary at $stripped bytes (unstripped $unstripped)"
"$local_root/usr/local/bin/fabrik" -v >/dev/null || fail "the stripped fabrik does not run"

# ---- make install without a build ----
if make -C "$src" --no-print-directory install BUILD_DIR="$tmp/no-build" DESTDIR="$tmp/x" \
        >"$tmp/nobuild.log" 2>&1; then
    fail "make install succeeded without a built binary"
fi
grep -q 'run make build first' "$tmp/nobuild.log" ||
    fail "make install without a build did not say to run make build: $(cat "$tmp/nobuild.log")"

# ---- the man page ----
man_page="$root/usr/share/man/man1/fabrik.1"
head -n 1 "$man_page" | grep -q '^\.TH FABRIK 1 ' || fail "the man page does not start with .TH FABRIK 1"
if command -v groff >/dev/null; then
    warnings=$(groff -man -ww -z "$man_page" 2>&1)
    [[ -z $warnings ]] || fail "groff warns about the man page: $warnings"
fi
help=$("$root/usr/bin/fabrik" -h)
while read -r long; do
    grep -qF -- "\\-\\-${long//-/\\-}" "$man_page" || fail "the man page does not document --$long"
done < <(sed -nE 's/^  -[a-z], --([a-z-]+).*/\1/p' <<<"$help")
while read -r variable; do
    grep -qF "$variable" "$man_page" || fail "the man page does not document $variable"
done < <(sed -nE 's/^  ([A-Z][A-Z_]+)$/\1/p' <<<"$help")
while read -r key; do
    grep -qF "$key" "$man_page" || fail "the man page does not document $key"
done < <(sed -nE 's/^  (\[[a-z]+\] [a-z_]+)$/\1/p' <<<"$help")
for section in OPTIONS ENVIRONMENT 'CONFIGURATION FILES' SIGNALS FILES 'EXIT STATUS'; do
    grep -qxF ".SH $section" "$man_page" || fail "the man page has no $section section"
done

# ---- the example config starts a server ----
config="$tmp/config"
mkdir -p "$config/conf.d"
cp "$root/usr/share/doc/fabrik/examples/fabrik.toml" "$config/conf.d/10-fabrik.toml"
started=no
for attempt in 1 2 3 4 5; do
    port=$((20000 + RANDOM % 20000))
    "$root/usr/bin/fabrik" -e development -b "127.0.0.1:$port" -w 127.0.0.1:0 \
        -d "$tmp/data" -c "$config" 2>"$tmp/server.log" &
    server_pid=$!
    for _ in $(seq 1 100); do
        if grep -q 'event=listening' "$tmp/server.log" || ! kill -0 "$server_pid" 2>/dev/null; then
            break
        fi
        sleep 0.05
    done
    if grep -q 'event=listening' "$tmp/server.log"; then
        started=yes
        break
    fi
    kill -KILL "$server_pid" 2>/dev/null
    wait "$server_pid" 2>/dev/null
    server_pid=
    # Only a port taken by another process is worth another attempt.
    grep -q 'cannot listen' "$tmp/server.log" || break
done
if [[ $started == yes ]]; then
    grep -q 'max_job_bytes=1048576' "$tmp/server.log" ||
        fail "the server did not apply the example's max_job_bytes: $(head -n 1 "$tmp/server.log")"
    kill -TERM "$server_pid"
    wait "$server_pid"
    status=$?
    server_pid=
    ((status == 0)) || fail "fabrik with the example config exited with $status after SIGTERM"
else
    fail "fabrik did not start with the example config: $(cat "$tmp/server.log")"
fi

if ((errors > 0)); then
    echo "$errors check(s) failed" >&2
    exit 1
fi
echo "make install produced a complete tree for PREFIX=/usr and /usr/local"
