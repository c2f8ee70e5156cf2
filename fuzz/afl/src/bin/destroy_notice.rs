//! AFL entry point of the `destroy_notice` target: `tcp_info_fuzz::destroy_notice`.

fn main() {
    afl::fuzz!(|data: &[u8]| tcp_info_fuzz::destroy_notice(data));
}
