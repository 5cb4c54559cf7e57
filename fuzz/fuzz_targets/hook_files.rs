//! Hook files as Galley loads them (QuickJS under the hooks' time and memory limits, the
//! registrations they make checked as a load checks them), and `{:param}` binding of
//! filters: never a panic, a hang or unbounded memory, whatever the source.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

fn hooks() -> &'static galley_hooks::Hooks {
    static H: OnceLock<(tokio::runtime::Runtime, galley_hooks::Hooks)> = OnceLock::new();
    let (_, h) = H.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime");
        let h = rt.block_on(async {
            galley_hooks::Hooks::load(galley_hooks::HooksConfig {
                dir: None,
                timeout: std::time::Duration::from_millis(200),
                memory_limit: 16 << 20,
                pool_size: 1,
                watch: false,
                ..Default::default()
            })
            .expect("hooks")
        });
        (rt, h)
    });
    h
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let _ = hooks().check("fuzz.pb.js", &text);
    // The same text as a filter with `{:name}` placeholders, bound to fixed values.
    let mut params = serde_json::Map::new();
    params.insert("a".into(), serde_json::json!("x' || 1=1 || '\\\\"));
    params.insert("b".into(), serde_json::json!(1.5));
    if let Ok(bound) = galley_expr::bind_params(&text, &params) {
        let _ = galley_expr::parse(&bound);
    }
});
