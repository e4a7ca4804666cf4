//! XEP-0227 parsing never panics on any bytes, under every bad-timestamp policy.
#![no_main]

use jidstore::pie::{BadTimestamps, ImportOptions, validate_bytes};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    for policy in [BadTimestamps::Reject, BadTimestamps::Now, BadTimestamps::Skip] {
        let _ = validate_bytes(data, &ImportOptions::default().bad_timestamps(policy));
    }
});
