//! AFL entry point of the `event_socket` target: `tcp_info_fuzz::event_socket`.

fn main() {
    afl::fuzz!(|data: &[u8]| tcp_info_fuzz::event_socket(data));
}
