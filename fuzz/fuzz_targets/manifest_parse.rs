//! The manifest reader: any text (JSON or YAML, one document or several)
//! is parsed, defaulted and validated; the only outcomes are its pods and
//! objects, or an error.
#![no_main]

use libfuzzer_sys::fuzz_target;
use podrun::manifest::{self, ContainerKind};

fuzz_target!(|data: &[u8]| {
    // The CLI refuses bytes that are not UTF-8 before parsing; a lossy
    // conversion still gives the parser text from every input.
    let text = String::from_utf8_lossy(data);
    match manifest::parse_all(&text) {
        Ok(bundle) => {
            assert!(!bundle.pods.is_empty());
            for m in &bundle.pods {
                // A valid pod has an app container, and apps start last.
                assert_eq!(
                    m.pod.containers.last().map(|c| c.kind),
                    Some(ContainerKind::App)
                );
            }
        }
        Err(e) => {
            // Every error renders (kubectl's shape for invalid objects).
            let _ = e.to_string();
        }
    }
});
