//! Where the logs go and how much of them: stderr, plain under systemd.

/// Logs to stderr; under systemd (JOURNAL_STREAM set) without timestamps or colours, since
/// the journal adds its own.
pub fn init_logging() {
    init_logging_with("info")
}

/// [`init_logging`] with another default level (`BURSTD_LOG` still wins): `exec` and `demo`
/// show their own status lines and keep the agent's info logs out of them.
pub fn init_logging_with(default_level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("BURSTD_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = if std::env::var_os("JOURNAL_STREAM").is_some() {
        builder
            .without_time()
            .with_ansi(false)
            .with_target(false)
            .try_init()
    } else {
        // Colours only for a terminal: a log redirected to a file stays plain text.
        use std::io::IsTerminal;
        builder
            .with_ansi(std::io::stderr().is_terminal())
            .with_target(false)
            .try_init()
    };
}
