//! Logs in tests only when asked (`TEST_LOG=1`), set up once per test
//! binary; and quiet expected panics of test handlers.

use std::sync::Once;

/// Sets up the library's tracing at INFO once, when `TEST_LOG` is set.
pub fn init() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        if std::env::var_os("TEST_LOG").is_some() {
            rabbit_gather::telemetry::init(tracing::Level::INFO);
        }
    });
}

/// Expected panics of test handlers (their message starts with "test
/// handler") are not printed, even with `RUST_BACKTRACE` set; any other
/// panic is, as usual.
pub fn quiet_expected_panics() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let payload = info.payload();
            let message = payload
                .downcast_ref::<&str>()
                .copied()
                .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
                .unwrap_or("");
            if !message.starts_with("test handler") {
                default(info);
            }
        }));
    });
}
