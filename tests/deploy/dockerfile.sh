#!/usr/bin/env bash
# Checks that the Dockerfile agrees with the build that CI runs and with the binary it ships:
#   - the build stage builds with `make build`, the target CI's `make test` depends on, and
#     never calls cmake itself;
#   - the runtime stage installs the Debian package of every shared library that `ldd` lists
#     for the built binary (resolved with dpkg -S), and no build-only package;
#   - the user, volume, ports, health check and bindings are the documented ones;
#   - docker-compose.yml and .dockerignore match them.
# This machine may have no Docker engine, so the image itself is not built here.
#
# Usage: dockerfile.sh <source dir> <fabrik binary>
set -uo pipefail

src=$1
binary=$2
dockerfile="$src/Dockerfile"
errors=0

fail() {
    echo "FAIL: $*" >&2
    errors=$((errors + 1))
}

if ! command -v dpkg-query >/dev/null || ! command -v ldd >/dev/null; then
    echo "SKIP: dpkg-query and ldd are needed to map libraries to Debian packages"
    exit 77
fi

# The Dockerfile with continuation lines joined and comments removed, one instruction a line.
instructions=$(sed -e '/^[[:space:]]*#/d' "$dockerfile" |
               sed -e ':a' -e '/\\$/N; s/\\\n/ /; ta' |
               sed -e '/^[[:space:]]*$/d')

# Prints the instructions of the stage named $1 (from its FROM line to the next FROM).
stage() {
    awk -v name="$1" '
        toupper($1) == "FROM" { inside = (tolower($NF) == name) }
        inside { print }' <<<"$instructions"
}

# ---- stages ----
froms=$(grep -i '^FROM ' <<<"$instructions")
[[ $(wc -l <<<"$froms") -eq 2 ]] || fail "expected two stages (build, runtime), found: $froms"
grep -qiE '^FROM debian:bookworm AS build$' <<<"$froms" ||
    fail "the build stage must be FROM debian:bookworm AS build"
[[ $(tail -n 1 <<<"$froms") =~ ^FROM\ debian:bookworm-slim\ AS\ runtime$ ]] ||
    fail "the last stage must be FROM debian:bookworm-slim AS runtime"
build_stage=$(stage build)
runtime_stage=$(stage runtime)

# ---- the build stage uses the Makefile, as CI does ----
grep -qE '^RUN (.*[ ;&|])?make build($|[ ;&|])' <<<"$build_stage" ||
    fail "the build stage must run 'make build'"
grep -qE '(^|[ ;&|])make install(-strip)? ' <<<"$build_stage" ||
    fail "the build stage must stage the files with 'make install' or 'make install-strip'"
if grep -qE '(^|[ ;&|])cmake( |$)' <<<"$instructions"; then
    fail "the Dockerfile calls cmake directly; build through the Makefile so it cannot drift"
fi
grep -qE '^build: ' "$src/Makefile" || fail "the Makefile has no build target"
grep -qE '^test-release: build( |$)' "$src/Makefile" ||
    fail "make test no longer builds through the build target that the image uses"
grep -qE '^make test$' "$src/.ci/run" || fail ".ci/run no longer runs make test"

# ---- runtime packages cover every library of the binary ----
packages=$(grep -E '^RUN .*apt-get install' <<<"$runtime_stage" |
           sed -e 's/.*apt-get install//' -e 's/&&.*//' | tr ' ' '\n' |
           grep -vE '^(-|$)' | sort -u)
[[ -n $packages ]] || fail "the runtime stage installs no packages"

# Prints the package that owns library path $1; ldd may name /lib paths that dpkg records
# under /usr/lib (merged /usr) or through a symbolic link.
owner() {
    local path=$1 candidate
    for candidate in "$path" "$(readlink -f "$path")" "/usr$path" "/usr$(readlink -f "$path")"; do
        if dpkg-query -S "$candidate" >/dev/null 2>&1; then
            dpkg-query -S "$candidate" 2>/dev/null | head -n 1 | cut -d: -f1
            return 0
        fi
    done
    return 1
}

libraries=$(ldd "$binary" | awk '/=>/ { print $3 } /^[[:space:]]*\/[^ ]*ld-linux/ { print $1 }')
[[ -n $libraries ]] || fail "ldd listed no libraries for $binary"
for library in $libraries; do
    # The sanitizer runtimes belong to a -DFABRIK_SANITIZE build, never to the image.
    if [[ $(basename "$library") =~ ^lib(a|ub|l|t)san ]]; then
        continue
    fi
    package=$(owner "$library") || { fail "no Debian package owns $library"; continue; }
    grep -qxF "$package" <<<"$packages" ||
        fail "$binary links $library from package $package, which the runtime stage does not install"
done
for package in $packages; do
    if [[ $package == *-dev || $package =~ ^(build-essential|cmake|make|gcc|g\+\+|pkg-config)$ ]]; then
        fail "the runtime stage installs the build package $package"
    fi
done
grep -qxF tzdata <<<"$packages" || fail "the runtime stage lacks tzdata, which cron time zones need"

# ---- user, volume, ports, health check, bindings ----
last_user=$(grep -E '^USER ' <<<"$runtime_stage" | tail -n 1 | awk '{ print $2 }')
[[ $last_user == fabrik ]] || fail "the runtime stage must run as USER fabrik, not '${last_user:-root}'"
grep -qE '^VOLUME .*"?/var/lib/fabrik"?' <<<"$runtime_stage" || fail "no VOLUME /var/lib/fabrik"
grep -qE '^EXPOSE 7419 7420$' <<<"$runtime_stage" || fail "the runtime stage must EXPOSE 7419 7420"
grep -qE 'mkdir .*/etc/fabrik/conf.d' <<<"$runtime_stage" || fail "/etc/fabrik/conf.d is not created"
grep -qE '^ENV .*FAKTORY_ENV=production' <<<"$runtime_stage" ||
    fail "the image must default to FAKTORY_ENV=production, which requires a password"
healthcheck=$(grep -E '^HEALTHCHECK ' <<<"$runtime_stage")
[[ $healthcheck == *fabrik-healthcheck* ]] || fail "HEALTHCHECK must run fabrik-healthcheck"
grep -qE '^COPY deploy/docker/healthcheck /usr/local/bin/fabrik-healthcheck$' <<<"$runtime_stage" ||
    fail "deploy/docker/healthcheck is not copied to /usr/local/bin/fabrik-healthcheck"
[[ -x $src/deploy/docker/healthcheck ]] || fail "deploy/docker/healthcheck is not executable"
grep -q '/health"' "$src/deploy/docker/healthcheck" || fail "the health check does not request /health"
if grep -qE '^exec wget ' "$src/deploy/docker/healthcheck"; then
    grep -qxF wget <<<"$packages" || fail "the health check uses wget, which is not installed"
fi
entrypoint=$(grep -E '^ENTRYPOINT ' <<<"$runtime_stage" | tr -d ' ')
for pair in '"-b","0.0.0.0:7419"' '"-w","0.0.0.0:7420"' '"-d","/var/lib/fabrik"' '"-c","/etc/fabrik"'; do
    [[ $entrypoint == *"$pair"* ]] || fail "ENTRYPOINT lacks $pair"
done

# ---- every file the Dockerfile copies from the context exists ----
while read -r source; do
    [[ -e $src/$source ]] || fail "COPY source $source does not exist"
done < <(grep -E '^COPY ' <<<"$instructions" | grep -v -- '--from' | awk '{ print $2 }' |
         grep -v '^\.$')

# ---- compose and .dockerignore ----
compose="$src/docker-compose.yml"
grep -qE '^[[:space:]]+- fabrik-data:/var/lib/fabrik$' "$compose" ||
    fail "docker-compose.yml does not mount a volume at /var/lib/fabrik"
grep -qE 'FAKTORY_PASSWORD: /run/secrets/' "$compose" ||
    fail "docker-compose.yml does not pass the password as a secret file"
worker_dir=$(awk '/^  worker:/ { inside = 1 } inside && /build:/ { print $2; exit }' "$compose")
[[ -f $src/$worker_dir/Dockerfile && -f $src/$worker_dir/package-lock.json ]] ||
    fail "the compose worker build directory '$worker_dir' lacks a Dockerfile or package-lock.json"
for pattern in build 'build-*' faktory_password .git; do
    grep -qxF "$pattern" "$src/.dockerignore" || fail ".dockerignore does not exclude $pattern"
done

if ((errors > 0)); then
    echo "$errors check(s) failed" >&2
    exit 1
fi
echo "Dockerfile agrees with the Makefile, .ci/run and the libraries of $binary"
