//! Replays every committed corpus file through its target on stable, so an
//! input that once crashed a parser keeps being tried (`scripts/test.sh`).

use std::path::{Path, PathBuf};

fn fuzz_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn files_in(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.expect("a directory entry").path())
        .filter(|path| path.is_file())
        .collect();
    files.sort();
    files
}

#[test]
fn every_corpus_file_runs_through_its_target() {
    let mut replayed = 0;
    for (name, target) in tessera_fuzz::TARGETS {
        let files = files_in(&fuzz_dir().join("corpus").join(name));
        assert!(!files.is_empty(), "corpus/{name} is empty");
        for file in files {
            let data = std::fs::read(&file).expect("a corpus file");
            let outcome = std::panic::catch_unwind(|| target(&data));
            assert!(outcome.is_ok(), "{name} fails on {}", file.display());
            replayed += 1;
        }
    }
    println!("{replayed} corpus files replayed");
}

#[test]
fn every_fuzz_binary_is_a_listed_target() {
    let mut binaries: Vec<String> = files_in(&fuzz_dir().join("fuzz_targets"))
        .iter()
        .filter_map(|path| path.file_stem()?.to_str().map(str::to_owned))
        .collect();
    binaries.sort();
    let listed: Vec<String> = tessera_fuzz::TARGETS.iter().map(|(name, _)| name.to_string()).collect();
    assert_eq!(binaries, listed);
}
