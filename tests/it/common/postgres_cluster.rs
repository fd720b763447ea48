//! A PostgreSQL cluster of a test's own, which the test may stop and start
//! (the shared server of `DATABASE_URL` must stay up for the other tests).
//! Made with `initdb` and run with `pg_ctl`, as `scripts/test.sh` does; as
//! root, through `runuser -u postgres`, since PostgreSQL refuses root.

use std::path::{Path, PathBuf};
use std::process::Command;

pub struct PostgresCluster {
    dir: tempfile::TempDir,
    bin: PathBuf,
    port: u16,
    as_postgres: bool,
}

/// The directory holding both `initdb` and `pg_ctl`: the one on PATH, or
/// the newest under /usr/lib/postgresql.
fn pg_bin() -> Option<PathBuf> {
    let on_path =
        std::env::var_os("PATH").map(|path| std::env::split_paths(&path).collect::<Vec<_>>()).unwrap_or_default();
    let mut installed: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|dirs| dirs.filter_map(|d| d.ok()).map(|d| d.path().join("bin")).collect())
        .unwrap_or_default();
    installed.sort_by_key(|dir| std::cmp::Reverse(dir.parent().and_then(Path::file_name).map(|n| n.to_owned())));
    on_path.into_iter().chain(installed).find(|dir| dir.join("initdb").is_file() && dir.join("pg_ctl").is_file())
}

impl PostgresCluster {
    /// A fresh cluster on a free loopback port, started; None (skipped,
    /// with its reason) where PostgreSQL's programs are not installed,
    /// unless PostgreSQL is required here.
    pub fn start() -> Option<Self> {
        let Some(bin) = pg_bin() else {
            assert!(
                std::env::var("TESSERA_TEST_POSTGRES").as_deref() != Ok("required") && !super::is_ci(),
                "PostgreSQL is required here but initdb and pg_ctl are not installed"
            );
            super::skip("initdb and pg_ctl are not installed: no cluster of the test's own");
            return None;
        };
        let dir = tempfile::tempdir().unwrap();
        let as_postgres = Command::new("id").arg("-u").output().unwrap().stdout.starts_with(b"0\n");
        if as_postgres {
            let chown = Command::new("chown").arg("postgres").arg(dir.path()).status().unwrap();
            assert!(chown.success(), "chown the cluster's directory to postgres");
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let cluster = Self { dir, bin, port, as_postgres };
        cluster.run("initdb", &["-D", &cluster.data(), "-A", "trust", "-U", "postgres", "--no-sync"]);
        cluster.start_again();
        Some(cluster)
    }

    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// `pg_ctl stop -m immediate`: every backend killed, no checkpoint, as
    /// a crash or a lost host would leave it.
    pub fn stop_immediately(&self) {
        self.run("pg_ctl", &["-D", &self.data(), "-m", "immediate", "-w", "stop"]);
    }

    /// Starts the cluster (again) on its port, after crash recovery. Commits
    /// are synchronous, as in production: an asynchronous commit acknowledged
    /// before an immediate stop may be lost, and a delivered certificate's
    /// record with it. `fsync=off` is safe here: the machine does not crash.
    pub fn start_again(&self) {
        let options = format!(
            "-c listen_addresses=127.0.0.1 -p {} -k {} -c fsync=off -c full_page_writes=off",
            self.port,
            self.dir.path().display()
        );
        let log = self.dir.path().join("server.log").display().to_string();
        self.run("pg_ctl", &["-D", &self.data(), "-l", &log, "-w", "-t", "60", "-o", &options, "start"]);
    }

    fn data(&self) -> String {
        self.dir.path().join("data").display().to_string()
    }

    fn run(&self, program: &str, args: &[&str]) {
        let program = self.bin.join(program);
        let mut command = if self.as_postgres {
            let mut command = Command::new("runuser");
            command.args(["-u", "postgres", "--"]).arg(&program);
            command
        } else {
            Command::new(&program)
        };
        let out = command.args(args).output().unwrap();
        assert!(
            out.status.success(),
            "{} {args:?}: {}{}",
            program.display(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for PostgresCluster {
    fn drop(&mut self) {
        let program = self.bin.join("pg_ctl");
        let data = self.data();
        let args = ["-D", data.as_str(), "-m", "immediate", "stop"];
        let _ = if self.as_postgres {
            Command::new("runuser").args(["-u", "postgres", "--"]).arg(&program).args(args).output()
        } else {
            Command::new(&program).args(args).output()
        };
    }
}
