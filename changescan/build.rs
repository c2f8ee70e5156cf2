//! Compiles the BPF program (src/bpf/changescan.bpf.c) with clang into
//! `$OUT_DIR/changescan.bpf.o`, which the library embeds. Needs clang with
//! the BPF target and libbpf's headers (Debian: `clang libbpf-dev`); no
//! root, no running kernel.

use std::env;
use std::path::PathBuf;
use std::process::Command;

const SOURCE: &str = "src/bpf/changescan.bpf.c";

fn main() {
    println!("cargo:rerun-if-changed={SOURCE}");
    println!("cargo:rerun-if-env-changed=CLANG");
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("OUT_DIR")).join("changescan.bpf.o");
    let clang = env::var("CLANG").unwrap_or_else(|_| "clang".into());
    let target_arch = env::var("CARGO_CFG_TARGET_ARCH").unwrap_or_else(|_| "x86_64".into());
    let arch = match target_arch.as_str() {
        "x86_64" => "x86",
        "aarch64" => "arm64",
        other => other,
    };
    // Where Debian keeps <asm/types.h>, which <linux/types.h> includes.
    let multiarch = format!("/usr/include/{target_arch}-linux-gnu");
    let status = Command::new(&clang)
        .args(["-O2", "-g", "-target", "bpf", "-Wall", "-Werror"])
        .arg(format!("-D__TARGET_ARCH_{arch}"))
        .arg(format!("-I{multiarch}"))
        .args(["-c", SOURCE, "-o"])
        .arg(&out)
        .status();
    match status {
        Ok(s) if s.success() => {}
        Ok(s) => panic!(
            "\n\nbuilding the BPF program {SOURCE} with `{clang}` failed ({s}).\n\
             It needs clang with the BPF target and libbpf's headers: on Debian/Ubuntu\n\
             `apt-get install clang libbpf-dev libelf-dev zlib1g-dev pkg-config`.\n\n"
        ),
        Err(e) => panic!(
            "\n\ncannot run `{clang}` to build the BPF program {SOURCE}: {e}.\n\
             tcp-info's `-poll.mode=bpf` is built with clang: on Debian/Ubuntu\n\
             `apt-get install clang libbpf-dev libelf-dev zlib1g-dev pkg-config`\n\
             (or set CLANG to a clang binary).\n\n"
        ),
    }
}
