//! `completions/` and `man/` are generated from the clap definitions and committed; this test
//! fails when they are stale. `UPDATE_GENERATED=1 cargo test generated_files` rewrites them.

use std::collections::BTreeMap;
use std::path::Path;

use sorcha_peer::cli::generate::{write_completions, write_man_pages};

fn read_dir(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| {
                    (
                        e.file_name().to_string_lossy().into_owned(),
                        std::fs::read(e.path()).expect("read generated file"),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn generated_files_are_current() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let fresh = tempfile::tempdir().expect("tempdir");
    write_completions(&fresh.path().join("completions")).expect("completions");
    write_man_pages(&fresh.path().join("man")).expect("man pages");
    let update = std::env::var("UPDATE_GENERATED").is_ok_and(|v| v == "1");
    for sub in ["completions", "man"] {
        let expected = read_dir(&fresh.path().join(sub));
        assert!(
            expected.len() >= 5,
            "{sub}: generator produced {} files",
            expected.len()
        );
        if update {
            let _ = std::fs::remove_dir_all(root.join(sub));
            std::fs::create_dir_all(root.join(sub)).expect("mkdir");
            for (name, bytes) in &expected {
                std::fs::write(root.join(sub).join(name), bytes).expect("write");
            }
        }
        let committed = read_dir(&root.join(sub));
        assert_eq!(
            committed.keys().collect::<Vec<_>>(),
            expected.keys().collect::<Vec<_>>(),
            "{sub}/ is stale: run UPDATE_GENERATED=1 cargo test generated_files"
        );
        for (name, bytes) in &expected {
            assert!(
                committed.get(name) == Some(bytes),
                "{sub}/{name} is stale: run UPDATE_GENERATED=1 cargo test generated_files"
            );
        }
    }
    let page =
        String::from_utf8(read_dir(&root.join("man"))["sorcha-peer.1"].clone()).expect("utf8");
    assert!(
        page.contains("node unreachable"),
        "exit codes documented in the man page"
    );
}
