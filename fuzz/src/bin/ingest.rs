//! The AFL++ main of the `ingest` target: the body and its properties are
//! `evo_siem_fuzz::ingest`.

fn main() {
    afl::fuzz!(|data: &[u8]| evo_siem_fuzz::ingest(data));
}
