//! The async runtime every Stratus process runs on.
//!
//! Multi-threaded, with tokio's LIFO-slot heuristic turned off when the build allows it (the
//! `tokio_unstable` cfg set in `.cargo/config.toml`). With the LIFO slot, connections woken by the
//! same poll run newest-first, so a PUBLISH that arrived just after another client's SUBSCRIBE was
//! routed before that SUBSCRIBE took effect in 37 of 100 rounds on one worker thread; without it,
//! 0 of 100 (two raw clients, SUBSCRIBE on one then PUBLISH on the other). With two worker threads
//! the two connections can still be handled in parallel, so packets sent microseconds apart on
//! different connections are occasionally reordered (0-4 of 100 rounds, more on a busy machine);
//! MQTT orders messages per connection only.

/// Builds the runtime.
pub fn build() -> std::io::Result<tokio::runtime::Runtime> {
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    builder.enable_all();
    #[cfg(tokio_unstable)]
    builder.disable_lifo_slot();
    builder.build()
}
