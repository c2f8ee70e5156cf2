# syntax=docker/dockerfile:1
#
# tcp-info, csvtool and example-eventsocket-client, static and stripped, in
# an image laid out as M-Lab's measurementlab/tcp-info: the agent at
# /bin/tcp-info (other images copy it out with
# `COPY --from=<this image> /bin/tcp-info /bin/tcp-info`), entrypoint
# /bin/tcp-info with no default flags, working directory /home.
#
#   docker build -t tcp-info-rs .
#
# Runs as uid:gid 65534:65534 (nobody:nogroup); /home and
# /var/spool/tcpinfo belong to it, so a volume mounted there starts out
# writable. Without root the agent still dumps every socket; destroy
# notices want CAP_NET_ADMIN and process names CAP_SYS_PTRACE and
# CAP_DAC_READ_SEARCH (README "Deploy").

ARG RUST_VERSION=1.95
ARG DEBIAN_RELEASE=trixie

# Build stage: everything the image holds, under /rootfs. The container test
# replaces this stage with a locally built /rootfs (buildah's
# --build-context build=DIR), so the stage below is the one CI checks.
FROM rust:${RUST_VERSION}-slim-${DEBIAN_RELEASE} AS build
# The BPF poll mode's program (clang, libbpf headers) and libbpf itself
# (make, pkg-config, libelf, zlib).
RUN apt-get update -qq \
 && apt-get install -y -qq --no-install-recommends clang libbpf-dev libelf-dev zlib1g-dev pkg-config make \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
# The caches speed up rebuilds; the script copies the binaries out of the
# cached target directory within this step, so they land in the layer.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    deploy/container/build-rootfs.sh /rootfs

FROM scratch
COPY --from=build /rootfs/bin/ /bin/
COPY --from=build --chown=65534:65534 /rootfs/home/ /home/
COPY --from=build --chown=65534:65534 /rootfs/var/spool/tcpinfo/ /var/spool/tcpinfo/
USER 65534:65534
WORKDIR /home
# Prometheus metrics (-prometheusx.listen-address, default :9990).
EXPOSE 9990
# A scratch image has no curl: the agent's own probe asks /-/ready on the
# address in PROMETHEUSX_LISTEN_ADDRESS (default :9990). An agent given
# another address on its command line needs a health check naming it
# (docker-compose.yml does).
HEALTHCHECK --interval=10s --timeout=5s --start-period=10s --retries=3 \
    CMD ["/bin/tcp-info", "ready"]
ENTRYPOINT ["/bin/tcp-info"]
