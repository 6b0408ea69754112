//! The AFL++ main of the `verify` target: the body and its properties are
//! `evo_siem_fuzz::verify`.

fn main() {
    afl::fuzz!(|data: &[u8]| evo_siem_fuzz::verify(data));
}
