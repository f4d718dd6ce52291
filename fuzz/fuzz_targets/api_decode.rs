//! The socket API's request decoder: any line a client sends decodes to a
//! request of this protocol version or to an error, which the supervisor
//! sends back as one JSON reply line.
#![no_main]

use libfuzzer_sys::fuzz_target;
use podrun::api::{self, ApiError, Reply, Request};

fuzz_target!(|data: &[u8]| {
    match api::decode(data) {
        Ok(request) => {
            assert!(data.len() <= api::MAX_REQUEST);
            let version = match request {
                Request::Status { version }
                | Request::Stop { version, .. }
                | Request::Events { version, .. }
                | Request::Apply { version, .. }
                | Request::Logs { version, .. }
                | Request::Exec { version, .. } => version,
            };
            assert_eq!(version, api::VERSION);
        }
        Err(e) => {
            if data.len() > api::MAX_REQUEST {
                assert_eq!(e, ApiError::TooLong);
            }
            let line = Reply::error(e.to_string()).line();
            assert_eq!(line.iter().filter(|&&b| b == b'\n').count(), 1);
            assert_eq!(line.last(), Some(&b'\n'));
            serde_json::from_slice::<serde_json::Value>(&line).expect("the reply is JSON");
        }
    }
});
