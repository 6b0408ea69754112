//! The AFL++ main of the `signature_header` target: the body and its properties are
//! `evo_siem_fuzz::signature_header`.

fn main() {
    afl::fuzz!(|data: &[u8]| evo_siem_fuzz::signature_header(data));
}
