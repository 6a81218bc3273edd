//! `sorcha-peer doctor`: the node's own checks (`GET /api/doctor`), one line per item with its
//! verdict, and the fix under each item that is not ok. Exit 1 when an item fails.

use super::output::Output;
use super::{EXIT_FAILED, EXIT_OK};
use crate::client::{AdminClient, ClientError};

pub(super) async fn run(client: &AdminClient, out: &Output) -> Result<i32, ClientError> {
    let report = client.doctor().await?;
    let failing = report.findings.iter().any(|f| f.verdict == "failing");
    if out.json {
        out.print_json(&report);
    } else {
        // `VERDICT  ITEM: DETAIL`, the fix indented under it, cut by words to the width.
        let width = out.width.filter(|_| !out.wide);
        for f in &report.findings {
            let line = format!("{:<8} {}: {}", f.verdict, f.item, f.detail);
            print_wrapped(out, &line, "         ", width);
            if let Some(fix) = &f.fix {
                print_wrapped(
                    out,
                    &format!("         fix: {fix}"),
                    "              ",
                    width,
                );
            }
        }
        out.message(&format!("doctor: {}", report.status));
    }
    Ok(if failing { EXIT_FAILED } else { EXIT_OK })
}

fn print_wrapped(out: &Output, line: &str, indent: &str, width: Option<usize>) {
    let Some(width) = width.filter(|&w| line.chars().count() > w && w > indent.len() + 20) else {
        out.print_value(line);
        return;
    };
    let lead = line.chars().take_while(|c| *c == ' ').count();
    let wrapped = super::table::wrap_text(line.trim_start(), width - indent.len(), false);
    for (i, text) in wrapped.iter().enumerate() {
        let pad = if i == 0 {
            " ".repeat(lead)
        } else {
            indent.to_string()
        };
        out.print_value(&format!("{pad}{text}"));
    }
}
