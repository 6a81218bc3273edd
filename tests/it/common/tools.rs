//! Distribution tools the tests drive (promtool, mandoc, systemd-analyze): found on PATH, or
//! the test is skipped with a reason, or fails under `CI=true` (see `faults::skip`).

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The path of `tool` on PATH, or `None` after `faults::skip` said why `test` cannot run.
pub fn require(test: &str, tool: &str) -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(tool))
            .find(|p| p.is_file())
    });
    if found.is_none() {
        super::faults::skip(
            test,
            &format!("`{tool}` is not installed (see PACKAGES in .ci/run)"),
        );
    }
    found
}

/// Runs `cmd` with `stdin` fed to it, killed after `limit`; returns (exit code, stdout, stderr).
pub fn run_bounded(mut cmd: Command, stdin: &[u8], limit: Duration) -> (i32, String, String) {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn tool");
    let mut input = child.stdin.take().expect("stdin");
    let data = stdin.to_vec();
    // A tool that exits early closes its stdin; that is its answer, not a test failure.
    let feeder = std::thread::spawn(move || drop(input.write_all(&data)));
    let drain = |mut pipe: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut text = Vec::new();
            let _ = pipe.read_to_end(&mut text);
            String::from_utf8_lossy(&text).into_owned()
        })
    };
    let stdout = drain(Box::new(child.stdout.take().expect("stdout")));
    let stderr = drain(Box::new(child.stderr.take().expect("stderr")));
    let started = Instant::now();
    let status = loop {
        match child.try_wait().expect("wait for tool") {
            Some(status) => break status,
            None if started.elapsed() > limit => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("{cmd:?} did not finish within {limit:?}");
            }
            None => std::thread::sleep(Duration::from_millis(20)),
        }
    };
    let _ = feeder.join();
    (
        status.code().unwrap_or(-1),
        stdout.join().expect("stdout reader"),
        stderr.join().expect("stderr reader"),
    )
}
