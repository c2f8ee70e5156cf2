# syntax=docker/dockerfile:1
#
# tcp-info, csvtool and example-eventsocket-client in a slim Debian image,
# run as an unprivileged user. Build: docker build -t tcp-info-rs .
#
# Stage 1 compiles with the Rust toolchain image (it carries gcc and libc6-dev,
# which zstd-sys needs); stage 2 holds only the binaries.

ARG RUST_VERSION=1.95
ARG DEBIAN_RELEASE=trixie

FROM rust:${RUST_VERSION}-slim-${DEBIAN_RELEASE} AS build
# The BPF poll mode's program (clang, libbpf headers) and libbpf itself
# (make, pkg-config, libelf, zlib).
RUN apt-get update -qq \
 && apt-get install -y -qq --no-install-recommends clang libbpf-dev libelf-dev zlib1g-dev pkg-config make \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
# The caches speed up rebuilds; binaries are copied out of the cached target
# directory in the same step so they land in the image layer.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked \
        -p tcp-info --bin tcp-info \
        -p csvtool --bin csvtool \
        -p example-eventsocket-client --bin example-eventsocket-client \
 && mkdir -p /out \
 && cp target/release/tcp-info target/release/csvtool target/release/example-eventsocket-client /out/

FROM debian:${DEBIAN_RELEASE}-slim
# libbpf (linked statically) needs libelf at run time (trixie's package name).
RUN apt-get update -qq \
 && apt-get install -y -qq --no-install-recommends libelf1t64 \
 && rm -rf /var/lib/apt/lists/*
# The spool directory is created here, owned by the runtime user, so a named
# volume mounted on it starts out writable by that user.
RUN useradd --system --uid 10001 --user-group --no-create-home --shell /usr/sbin/nologin tcpinfo \
 && mkdir -p /var/spool/tcpinfo/data \
 && chown -R tcpinfo:tcpinfo /var/spool/tcpinfo
COPY --from=build /out/tcp-info /usr/local/bin/tcp-info
COPY --from=build /out/csvtool /usr/local/bin/csvtool
COPY --from=build /out/example-eventsocket-client /usr/local/bin/example-eventsocket-client
USER tcpinfo:tcpinfo
WORKDIR /var/spool/tcpinfo
# Prometheus metrics (-prometheusx.listen-address).
EXPOSE 9990
ENTRYPOINT ["/usr/local/bin/tcp-info"]
CMD ["-output=/var/spool/tcpinfo/data"]
