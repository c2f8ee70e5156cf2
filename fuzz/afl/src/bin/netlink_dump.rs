//! AFL entry point of the `netlink_dump` target: `tcp_info_fuzz::netlink_dump`.

fn main() {
    afl::fuzz!(|data: &[u8]| tcp_info_fuzz::netlink_dump(data));
}
