//! The async runtime every Stratus process runs on.
//!
//! Multi-threaded, with tokio's LIFO-slot heuristic turned off when the build allows it (the
//! `tokio_unstable` cfg set in `.cargo/config.toml`). With the LIFO slot, connections woken by the
//! same poll run newest-first, so a PUBLISH that arrived just after another client's SUBSCRIBE was
//! routed before that SUBSCRIBE took effect about a third of the time on one worker thread (1 in
//! 100 on two); without it, 0 in 100 on either (`scripts`-free reproduction: two raw clients,
//! SUBSCRIBE on one then PUBLISH on the other, 100 rounds).

/// Builds the runtime.
pub fn build() -> std::io::Result<tokio::runtime::Runtime> {
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    builder.enable_all();
    #[cfg(tokio_unstable)]
    builder.disable_lifo_slot();
    builder.build()
}
