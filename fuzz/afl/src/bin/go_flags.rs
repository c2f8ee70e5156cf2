//! AFL entry point of the `go_flags` target: `tcp_info_fuzz::go_flags`.

fn main() {
    afl::fuzz!(|data: &[u8]| tcp_info_fuzz::go_flags(data));
}
