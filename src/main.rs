//! The `sorcha-peer` executable: parse the command line, run, exit with the documented code.

use clap::Parser;
use sorcha_peer::cli::{self, Cli};

fn main() {
    let cli = Cli::parse();
    if !matches!(cli.command, cli::Command::Serve(_)) {
        // Client commands log only warnings, to stderr, so stdout stays clean for JSON.
        sorcha_peer::telemetry::init_logging("warn");
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            cli::output::eprint_text(&format!("error: cannot start the async runtime: {e}"));
            std::process::exit(cli::EXIT_FAILED);
        }
    };
    let code = runtime.block_on(cli::run(cli));
    // Don't wait for stray background tasks (e.g. a half-open connection) after the answer.
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    sorcha_peer::telemetry::flush_logs();
    std::process::exit(code);
}
