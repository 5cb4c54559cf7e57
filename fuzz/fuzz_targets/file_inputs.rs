//! Untrusted file inputs: client file names (stored names must stay one safe ASCII path
//! segment), content sniffing, thumbnail sizes, and thumbnail decoding of arbitrary bytes
//! (errors, never panics or unbounded memory).
#![no_main]

use galley_files::thumbs::{self, Mode, ThumbSize};
use galley_files::{mime, names};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let stored = names::normalize(&text, ".bin");
    assert!(names::is_safe(&stored), "{text:?} -> {stored:?}");
    assert!(stored.is_ascii() && stored.len() <= 150, "{stored:?}");
    let sniffed = mime::sniff(data);
    assert!(!sniffed.mime.is_empty());
    if let Some(t) = ThumbSize::parse(&text) {
        assert!(t.width <= thumbs::MAX_SIDE && t.height <= thumbs::MAX_SIDE);
        assert!(t.width > 0 || t.height > 0);
    }
    if data.len() <= 64 * 1024 {
        let t = ThumbSize { width: 16, height: 16, mode: Mode::Center };
        let _ = thumbs::render(data, t);
    }
});
