//! Hostile input never panics the receiver and always gets a 4xx, signed or not.

use crate::common;
use evo_siem_protocol::{Secret, headers, sign};
use evo_siem_receiver::Receiver;
use proptest::prelude::*;

fn accept_status(receiver: &Receiver, body: Vec<u8>, signed: bool) -> u16 {
    let mut map = http::HeaderMap::new();
    if signed {
        map.insert(
            headers::SIGNATURE_256,
            sign(&Secret::new(common::SECRET), &body).parse().unwrap(),
        );
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    match rt.block_on(receiver.accept(&map, body.into(), common::now())) {
        Ok(_) => 200,
        Err(rejection) => rejection.status().as_u16(),
    }
}

proptest! {
    #[test]
    fn arbitrary_bytes_are_refused_without_panicking(body in prop::collection::vec(any::<u8>(), 0..2048), signed in any::<bool>()) {
        let receiver = common::receiver();
        let status = accept_status(&receiver, body, signed);
        prop_assert_eq!(status, if signed { 400 } else { 401 });
    }

    #[test]
    fn mutated_valid_batches_never_panic(flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8)) {
        let receiver = common::receiver();
        let mut body = common::body(&common::uuids(3), common::now());
        for (at, byte) in flips {
            let i = at.index(body.len());
            body[i] = byte;
        }
        // Signed after mutation, so every check past the signature sees the damage.
        let status = accept_status(&receiver, body, true);
        prop_assert!(status == 200 || status == 400 || status == 401, "status {}", status);
    }
}
