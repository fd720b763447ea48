//! The README's commands work as written: every fenced block marked
//! ```` ```sh runnable ```` runs, in order, in one bash (`set -euo
//! pipefail`) against a dev `tessera serve`, from the directory that holds
//! its `tessera-data/`, as a newcomer following the README would; then the
//! runnable blocks of the docs pages that continue from it, each page in a
//! bash of its own, with the built `tessera` first on PATH. A block
//! that fails fails the test with its text and output, so a README
//! statement that stops being true fails CI. Blocks that need root, certbot
//! or an HSM stay unmarked.
//!
//! The README speaks of the default ports; the server here listens on ports
//! the kernel picks (tests run side by side), so the blocks' default
//! addresses are rewritten to the bound ones before they run. Nothing else
//! in a block is changed.
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_tessera");
const RUNNABLE: &str = "```sh runnable";
/// Printed after each block; how many arrived tells which block failed.
const DONE: &str = "readme-block-done";

/// The text of every runnable fenced block of a Markdown document, in order.
fn runnable_blocks(markdown: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for line in markdown.lines() {
        match current.as_mut() {
            None if line.trim_end() == RUNNABLE => current = Some(String::new()),
            None => {}
            Some(_) if line.trim_start().starts_with("```") => blocks.extend(current.take()),
            Some(block) => {
                block.push_str(line);
                block.push('\n');
            }
        }
    }
    assert!(current.is_none(), "a runnable block is not closed");
    blocks
}

/// `tessera serve` in dev mode under `workdir/tessera-data`, killed on drop.
struct DevServer {
    child: Child,
    admin_port: u16,
    http_port: u16,
}

impl Drop for DevServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn port_of(addresses: &serde_json::Value, key: &str) -> u16 {
    addresses[key].as_str().unwrap().parse::<std::net::SocketAddr>().unwrap().port()
}

async fn start_dev_server(workdir: &Path) -> DevServer {
    let data_dir = workdir.join("tessera-data");
    let ready_file = workdir.join("ready.json");
    let child = Command::new(BIN)
        .arg("serve")
        .arg("--data-dir")
        .arg(&data_dir)
        .args(["--https-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0", "--admin-addr", "127.0.0.1:0"])
        .arg("--ready-file")
        .arg(&ready_file)
        .env("TESSERA_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut server = DevServer { child, admin_port: 0, http_port: 0 };
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(status) = server.child.try_wait().unwrap() {
            panic!("tessera exited early with {status}");
        }
        if let Ok(text) = std::fs::read_to_string(&ready_file) {
            let addresses: serde_json::Value = serde_json::from_str(&text).unwrap();
            server.admin_port = port_of(&addresses, "admin_addr");
            server.http_port = port_of(&addresses, "http_addr");
            let client = crate::common::client_trusting(&std::fs::read(data_dir.join("root.pem")).unwrap());
            let url = format!("https://localhost:{}/healthz", server.admin_port);
            if client.get(&url).send().await.is_ok_and(|r| r.status() == 200) {
                return server;
            }
        }
        assert!(Instant::now() < deadline, "tessera did not become ready");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Runs `blocks` in one bash from `workdir`, with `tessera` on PATH, and
/// panics with the failing block and the output if one fails.
fn run_blocks(document: &str, blocks: &[String], workdir: &Path, server: &DevServer) {
    let mut script = String::from("set -euo pipefail\n");
    for block in blocks {
        let block = block
            .replace("localhost:9443", &format!("localhost:{}", server.admin_port))
            .replace("127.0.0.1:8080", &format!("127.0.0.1:{}", server.http_port));
        script.push_str(&block);
        // On a line of its own even after output without a final newline.
        script.push_str(&format!("\nprintf '\\n%s\\n' {DONE}\n"));
    }
    let bin_dir = PathBuf::from(BIN).parent().unwrap().to_owned();
    let path = format!("{}:{}", bin_dir.display(), std::env::var("PATH").unwrap_or_default());
    let output = Command::new("bash")
        .arg("-c")
        .arg(&script)
        .current_dir(workdir)
        .env("PATH", path)
        .env("HOME", workdir)
        .env("XDG_CONFIG_HOME", workdir.join(".config"))
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    let done = stdout.lines().filter(|line| *line == DONE).count();
    if !output.status.success() || done != blocks.len() {
        let failed = blocks.get(done).map_or("(none: every block ended)", String::as_str);
        panic!(
            "{document}: runnable block {} of {} failed ({}):\n{failed}\n--- stdout\n{stdout}\n--- stderr\n{stderr}",
            done + 1,
            blocks.len(),
            output.status
        );
    }
}

#[test]
fn runnable_blocks_are_found_in_order() {
    let markdown =
        "text\n```sh runnable\necho one\n```\n```sh\nnot this\n```\n```sh runnable\necho two\necho three\n```\n";
    assert_eq!(runnable_blocks(markdown), ["echo one\n", "echo two\necho three\n"]);
}

/// The pages with runnable blocks, in the order a reader follows them, and
/// how many each marks: the README first (the first certificate, then
/// looking it up and revoking it), then the pages that continue from the
/// files it left behind, each in a shell of its own as a reader opening it.
const DOCUMENTS: [(&str, usize); 4] =
    [("README.md", 2), ("docs/revocation.md", 1), ("docs/operations.md", 1), ("docs/admin-api.md", 1)];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_runnable_block_runs_against_a_dev_server() {
    let repository = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let documents: Vec<_> = DOCUMENTS
        .into_iter()
        .map(|(document, count)| {
            let blocks = runnable_blocks(&std::fs::read_to_string(repository.join(document)).unwrap());
            assert_eq!(blocks.len(), count, "{document} should mark {count} blocks runnable");
            (document, blocks)
        })
        .collect();
    // A page that marks a block runnable but is not listed would never run it.
    for entry in std::fs::read_dir(repository.join("docs")).unwrap() {
        let path = entry.unwrap().path();
        let document = format!("docs/{}", path.file_name().unwrap().to_string_lossy());
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        let listed = DOCUMENTS.iter().any(|(listed, _)| *listed == document);
        assert!(listed || runnable_blocks(&text).is_empty(), "{document} marks blocks runnable: list it in DOCUMENTS");
    }

    let workdir = tempfile::tempdir().unwrap();
    let server = start_dev_server(workdir.path()).await;
    for (document, blocks) in &documents {
        run_blocks(document, blocks, workdir.path(), &server);
    }
}
