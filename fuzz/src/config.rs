//! The TOML config file, through `Config::load` as `tessera serve` reads it.

use std::io::Write;
use std::sync::OnceLock;

use tessera::config::{Config, Overrides};

/// One file per process, rewritten for each input: `Config::load` takes a path.
fn scratch() -> &'static tempfile::NamedTempFile {
    static FILE: OnceLock<tempfile::NamedTempFile> = OnceLock::new();
    FILE.get_or_init(|| tempfile::NamedTempFile::new().expect("a temporary config file"))
}

pub fn config(data: &[u8]) {
    let file = scratch();
    let mut handle = file.reopen().expect("the temporary config file");
    handle.set_len(0).expect("truncate");
    handle.write_all(data).expect("write");
    let Ok(config) = Config::load(Some(file.path()), &Overrides::default()) else { return };
    // What `serve` derives from a loaded config before it binds anything.
    let _ = (config.database_url(), config.public_base_url());
    let lifetimes = [&config.hierarchy.root, &config.hierarchy.issuing].map(|authority| {
        let _ = config.resolve_key_uri(&authority.key_uri);
        time::Duration::days(i64::from(authority.validity_days))
    });
    let revocation = &config.revocation;
    let lifecycle = &config.lifecycle;
    let durations = [
        revocation.crl_validity(),
        revocation.crl_refresh(),
        revocation.ocsp_validity(),
        revocation.ocsp_signer_lifetime(),
        lifecycle.max_lifetime(),
        lifecycle.expired_lookback(),
        lifecycle.scan_interval(),
        lifecycle.webhook_backoff(),
        lifecycle.ca_rotation.check_interval(),
    ];
    // Certificates, CRLs and jobs are dated now plus these.
    let now = time::OffsetDateTime::now_utc();
    for duration in lifetimes.into_iter().chain(durations) {
        assert!(now.checked_add(duration).is_some(), "the config accepts a duration past any date: {duration}");
    }
}
