//! The AFL++ main of the `standard_webhooks` target: the body and its properties are
//! `evo_siem_fuzz::standard_webhooks`.

fn main() {
    afl::fuzz!(|data: &[u8]| evo_siem_fuzz::standard_webhooks(data));
}
