#![no_main]
use libfuzzer_sys::fuzz_target;

// Index definitions come from superusers as SQL text; whatever parses must re-render as a
// single statement with quoted identifiers.
fuzz_target!(|data: &[u8]| {
    if let Ok(s) = std::str::from_utf8(data) {
        if let Ok(idx) = galley_types::index::IndexDef::parse(s) {
            for d in [&galley_sql::SQLITE, &galley_sql::POSTGRES] {
                let sql = idx.to_sql(d, "t");
                assert!(!sql.contains(';'), "{sql}");
                let again = galley_types::index::IndexDef::parse(&idx.display("t")).expect("display re-parses");
                assert_eq!(again.to_sql(d, "t"), sql);
            }
        }
    }
});
