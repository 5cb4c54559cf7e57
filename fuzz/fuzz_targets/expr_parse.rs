#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(s) = std::str::from_utf8(data) {
        let _ = galley_expr::parse(s);
        let _ = galley_expr::parse_sort(s);
        let _ = galley_expr::parse_expand(s);
    }
});
