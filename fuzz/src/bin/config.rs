//! The AFL++ main of the `config` target: the body and its properties are
//! `evo_siem_fuzz::config`.

fn main() {
    afl::fuzz!(|data: &[u8]| evo_siem_fuzz::config(data));
}
