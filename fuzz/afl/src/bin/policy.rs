//! AFL entry point of the `policy` target: `tcp_info_fuzz::policy`.

fn main() {
    afl::fuzz!(|data: &[u8]| tcp_info_fuzz::policy(data));
}
