# The fabrik server image. The build stage runs `make build`, the entry point that CI runs
# before the tests (.ci/run -> make test), so the image is built the way CI builds. The
# runtime stage holds the binary and the Debian packages of the shared libraries it links;
# tests/deploy/dockerfile.sh checks both against the Makefile and `ldd`.
#
#   docker build -t fabrik .
#   docker run -d -p 7419:7419 -p 7420:7420 -v fabrik-data:/var/lib/fabrik \
#     -e FAKTORY_PASSWORD=... fabrik
#
# See docs/deployment.md.

FROM debian:bookworm AS build
# make is the only package needed before `make build`, which installs BUILD_PACKAGES itself.
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends make \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN make build \
 && cd build && ctest --output-on-failure -L unit \
 && cd .. && make install-strip DESTDIR=/staging PREFIX=/usr/local

FROM debian:bookworm-slim AS runtime
# The shared libraries of the fabrik binary (ldd), tzdata for cron time zones, and wget for
# the health check. The sanitizer build (build-asan) also links libevent-2.1-7 and
# libevent-pthreads-2.1-7; they are listed too, so the binary of either build runs here.
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      libc6 libgcc-s1 libstdc++6 \
      libevent-2.1-7 libevent-core-2.1-7 libevent-extra-2.1-7 libevent-openssl-2.1-7 \
      libevent-pthreads-2.1-7 \
      libsqlite3-0 libjansson4 libssl3 libtomlplusplus3 \
      tzdata wget \
 && rm -rf /var/lib/apt/lists/*
# A fixed id, so a bind-mounted data directory can be given to it: chown 7419:7419 <dir>.
RUN groupadd --system --gid 7419 fabrik \
 && useradd --system --uid 7419 --gid fabrik --home-dir /var/lib/fabrik \
      --shell /usr/sbin/nologin fabrik \
 && mkdir -p /var/lib/fabrik /etc/fabrik/conf.d \
 && chown fabrik:fabrik /var/lib/fabrik \
 && chmod 0750 /var/lib/fabrik
COPY --from=build /staging/usr/local/bin/fabrik /usr/local/bin/fabrik
COPY --from=build /staging/usr/local/share/man/man1/fabrik.1 /usr/local/share/man/man1/fabrik.1
COPY deploy/docker/healthcheck /usr/local/bin/fabrik-healthcheck

USER fabrik
VOLUME ["/var/lib/fabrik"]
EXPOSE 7419 7420
# A password is required (production); set FAKTORY_PASSWORD to the password, or to the path
# of a file that contains it, such as a Docker secret: /run/secrets/faktory_password.
ENV FAKTORY_ENV=production
HEALTHCHECK --interval=10s --timeout=6s --start-period=5s --retries=3 \
  CMD ["/usr/local/bin/fabrik-healthcheck"]
# Inside the container fabrik listens on every interface; publish the ports with -p.
ENTRYPOINT ["/usr/local/bin/fabrik", "-b", "0.0.0.0:7419", "-w", "0.0.0.0:7420", \
            "-d", "/var/lib/fabrik", "-c", "/etc/fabrik"]
CMD []
