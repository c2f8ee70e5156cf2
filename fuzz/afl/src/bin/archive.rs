//! AFL entry point of the `archive` target: `tcp_info_fuzz::archive`.

fn main() {
    afl::fuzz!(|data: &[u8]| tcp_info_fuzz::archive(data));
}
