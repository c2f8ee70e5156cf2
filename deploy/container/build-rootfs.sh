#!/bin/sh
# Builds the image's root filesystem under OUT: the three binaries, static
# and stripped, in OUT/bin, and the directories the image gives uid 65534
# (OUT/home, OUT/var/spool/tcpinfo). The Dockerfile's build stage runs this;
# so does the container test (tests/kernel/tests/container_image.rs), which
# hands OUT to `buildah bud --build-context build=...` in place of that stage.
#
# Static with glibc (-C target-feature=+crt-static on the gnu target): the
# musl target is not part of the toolchain everywhere this builds (CI has
# only x86_64-unknown-linux-gnu and no network to add one), and glibc's
# static libc.a ships with libc6-dev, which zstd-sys needs anyway. What
# static glibc cannot do without its shared NSS modules: look up names
# (-tcpinfo.eventsocket.group=NAME, a host name in
# -prometheusx.listen-address); numeric gids and IP addresses work.
set -eu
out=${1:?usage: build-rootfs.sh OUT}
target="$(uname -m)-unknown-linux-gnu"
cd "$(dirname "$0")/../.."

# --target keeps build scripts and proc macros dynamic (RUSTFLAGS then only
# applies to the target's artifacts) and puts this build in its own
# directory of the target dir, apart from the ordinary release build.
RUSTFLAGS="-C target-feature=+crt-static" cargo build --release --locked --target "$target" \
    -p tcp-info --bin tcp-info \
    -p csvtool --bin csvtool \
    -p example-eventsocket-client --bin example-eventsocket-client

built="${CARGO_TARGET_DIR:-target}/$target/release"
mkdir -p "$out/bin" "$out/home" "$out/var/spool/tcpinfo"
for bin in tcp-info csvtool example-eventsocket-client; do
    strip --strip-all -o "$out/bin/$bin" "$built/$bin"
done
