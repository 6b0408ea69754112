//! The AFL++ main of the `retry_after` target: the body and its properties are
//! `evo_siem_fuzz::retry_after`.

fn main() {
    afl::fuzz!(|data: &[u8]| evo_siem_fuzz::retry_after(data));
}
