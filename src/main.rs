//! The `sorcha-peer` executable: parse the command line, run, exit with the documented code.

use clap::Parser;
use sorcha_peer::cli::{self, Cli};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(kind) = args
        .get(1)
        .and_then(|a| cli::complete::Candidates::from_arg(a))
    {
        // Called by the completion scripts on every TAB: no logging, no clap.
        let code = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_or(cli::EXIT_FAILED, |rt| {
                rt.block_on(cli::complete(kind, &args[2..]))
            });
        std::process::exit(code);
    }
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
