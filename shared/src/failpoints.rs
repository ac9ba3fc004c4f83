//! Named crash points, compiled in only with the `failpoints` feature (the tests turn it on): a
//! test starts the real process with `AIVIDEO_CRASH_AT=<point>[,<point>…]`, and the process dies
//! there as `kill -9` would leave it (no unwinding, no shutdown code, nothing flushed), so every
//! step where a crash matters is crashed for real, not reasoned about.

/// Dies here if the test named `point`.
pub fn hit(point: &str) {
    let named = std::env::var("AIVIDEO_CRASH_AT").is_ok_and(|points| points.split(',').any(|p| p.trim() == point));
    if named {
        tracing::error!(point, "crash point reached: the process dies here");
        std::process::abort();
    }
}

/// A named crash point (nothing at all without the `failpoints` feature).
#[macro_export]
macro_rules! crash_point {
    ($point:literal) => {
        #[cfg(feature = "failpoints")]
        $crate::failpoints::hit($point);
    };
}
