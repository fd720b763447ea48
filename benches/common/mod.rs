//! What every benchmark starts from: a dev-mode Tessera on loopback, on a
//! fresh PostgreSQL database when `DATABASE_URL` names a server, else SQLite.
#![allow(dead_code, clippy::unwrap_used)]

pub mod acme;
pub mod load;
pub mod ocsp;

use std::path::Path;

use tessera::config::{Config, Overrides};
use tessera::storage::{Db, DbOptions};

/// A dev config in `dir` with every listener on a free loopback port.
pub async fn dev_config(dir: &Path) -> (Config, &'static str) {
    let database_url = match std::env::var("DATABASE_URL") {
        Ok(server) => Some(fresh_database(&server).await),
        Err(_) => None,
    };
    let backend = if database_url.is_some() { "postgres" } else { "sqlite" };
    let any = Some("127.0.0.1:0".parse().unwrap());
    let overrides = Overrides {
        https_addr: any,
        http_addr: any,
        admin_addr: any,
        data_dir: Some(dir.to_path_buf()),
        database_url,
        ..Default::default()
    };
    (Config::load(None, &overrides).unwrap(), backend)
}

/// An HTTPS client trusting only the dev CA's root in `dir`, keeping up to
/// `clients` connections open.
pub fn https_client(dir: &Path, clients: usize) -> reqwest::Client {
    let root = reqwest::Certificate::from_pem(&std::fs::read(dir.join("root.pem")).unwrap()).unwrap();
    reqwest::Client::builder().add_root_certificate(root).pool_max_idle_per_host(clients).build().unwrap()
}

/// A new, empty database on the server `server` names. A loopback server
/// is reached without TLS unless the URL says `sslmode`: Debian's
/// PostgreSQL turns TLS on and sqlx prefers it, and encrypting traffic that
/// never leaves the machine measured ~5% of the ACME flows per second.
pub async fn fresh_database(server: &str) -> String {
    let name = format!("tessera_bench_{}_{}", std::process::id(), hex::encode(rand::random::<[u8; 3]>()));
    let admin = Db::connect(&DbOptions::new(server)).await.unwrap();
    admin.execute_raw(&format!("CREATE DATABASE {name}")).await.unwrap();
    admin.close().await;
    let mut url = url::Url::parse(server).unwrap();
    url.set_path(&format!("/{name}"));
    // A `postgres:` URL's host stays text (not a special scheme), so parse it.
    let loopback = url.host_str().is_some_and(|host| {
        host == "localhost"
            || host.trim_matches(['[', ']']).parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
    });
    if loopback && !url.query_pairs().any(|(key, _)| key == "sslmode") {
        url.query_pairs_mut().append_pair("sslmode", "disable");
    }
    url.to_string()
}

/// Drops a database `fresh_database` made (by its URL), so benchmark runs do
/// not leave gigabytes behind; any other URL is left alone.
pub async fn drop_database(url: &str) {
    let Ok(mut server) = url::Url::parse(url) else { return };
    let name = server.path().trim_start_matches('/').to_owned();
    if !server.scheme().starts_with("postgres") || !name.starts_with("tessera_bench_") {
        return;
    }
    server.set_path("/postgres");
    let admin = Db::connect(&DbOptions::new(server.as_str())).await.unwrap();
    admin.execute_raw(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).await.unwrap();
    admin.close().await;
}
