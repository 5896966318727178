# Entry points for a fresh Debian bookworm machine (run as root so missing packages install):
#   make run    install packages, build, start the server in the foreground (data in ./data)
#   make test   install packages, build, run every test, then again under ASan and UBSan, then
#               run each fuzz target briefly (clang, build-fuzz/)
#   make install          after make build: install the server, fabrikctl, libfabrik, the man
#                         pages, the systemd unit and an example config under
#                         $(DESTDIR)$(PREFIX) (install-strip: the same with the binaries
#                         stripped of debug information)
# Everything else is CMake under build/ (release) and build-asan/ (sanitizers).

# What building and running the server needs; tzdata gives cron its time zones, and libcurl
# carries fabrikctl's HTTP API calls.
BUILD_PACKAGES := build-essential cmake pkg-config libevent-dev libsqlite3-dev libjansson-dev \
                  libssl-dev libcmocka-dev libtomlplusplus-dev uthash-dev tzdata \
                  libcurl4-openssl-dev
# What only the tests need: clang for the fuzz targets, Chromium for the web UI tests.
TEST_PACKAGES := clang chromium
JOBS ?= 2
# make install: where to install (the unit's ExecStart names $(PREFIX)/bin/fabrik), an optional
# staging root for packagers, and the build directory to install from.
PREFIX ?= /usr/local
DESTDIR ?=
BUILD_DIR ?= build
# Seconds each fuzz target runs in test-fuzz.
FUZZ_SECONDS ?= 10

.PHONY: all deps test-deps build build-asan run test test-release test-asan test-fuzz node-deps \
        fuzz install install-strip clean

all: build

# Installs the Debian packages of $(1) that are missing, so a prepared machine needs no root
# and no network.
define install_missing
	@missing=$$(for p in $(1); do \
	    dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q 'install ok installed' || echo $$p; \
	  done); \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:" $$missing; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	fi
endef

deps:
	$(call install_missing,$(BUILD_PACKAGES))

test-deps: deps
	$(call install_missing,$(TEST_PACKAGES))
	@# Node and npm run the client tests. A machine may already have them from another source
	@# (which conflicts with Debian's npm package), so Debian's are installed only when missing.
	@if ! command -v npm >/dev/null 2>&1; then \
	  echo "installing Debian packages: nodejs npm"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm; \
	fi

build: deps
	cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
	cmake --build build -j $(JOBS)

build-asan: deps
	cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DFABRIK_SANITIZE=address,undefined >/dev/null
	cmake --build build-asan -j $(JOBS)

run: build
	mkdir -p data
	./build/fabrik -b 127.0.0.1:7419 -d ./data

node-deps: test-deps
	cd tests/compat && npm ci --no-audit --no-fund --loglevel=error
	cd tests/web && npm ci --no-audit --no-fund --loglevel=error

test: test-release test-asan test-fuzz

test-release: build node-deps
	cd build && ctest --output-on-failure -j $(JOBS)

test-asan: build-asan node-deps
	cd build-asan && ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
	  ctest --output-on-failure -j $(JOBS) -LE slow

fuzz: test-deps
	CC=clang CXX=clang++ cmake -S . -B build-fuzz -DFABRIK_FUZZ=ON -DCMAKE_BUILD_TYPE=Debug >/dev/null
	cmake --build build-fuzz -j $(JOBS)

# Builds only the fuzz targets (the rest of build-fuzz is not needed to run them) and runs each
# for FUZZ_SECONDS over its seed corpus.
test-fuzz: test-deps
	CC=clang CXX=clang++ cmake -S . -B build-fuzz -DFABRIK_FUZZ=ON -DCMAKE_BUILD_TYPE=Debug \
	  -DFABRIK_FUZZ_SECONDS=$(FUZZ_SECONDS) >/dev/null
	cmake --build build-fuzz -j $(JOBS) --target fuzz_targets
	cd build-fuzz && ctest --output-on-failure -j $(JOBS) -L fuzz

# install does not build: running it as root after an unprivileged make build must not leave
# root-owned files in the build directory.
install install-strip:
	@test -x $(BUILD_DIR)/fabrik || { \
	  echo "make $@: $(BUILD_DIR)/fabrik is missing; run make build first" >&2; exit 1; }
	DESTDIR="$(DESTDIR)" cmake --install $(BUILD_DIR) --prefix "$(PREFIX)" \
	  $(if $(filter install-strip,$@),--strip)

clean:
	rm -rf build build-asan build-fuzz
