//! The documents agree with the code: `docs/configuration.md` names every
//! config key and no other, and every relative link in the repository's
//! Markdown reaches a file (and, for `#anchor`, a heading in it).
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde_json::Value;
use tessera::config::{
    CertAuthConfig, CertRoleConfig, Config, KubernetesAuthConfig, KubernetesRoleConfig, VaultMountConfig, WebhookConfig,
};

fn repository() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The dotted path of every leaf of a serialized config; an array of
/// tables adds `[]` (`acme.directories[].name`), an array of plain values
/// is a leaf (`tls_names`).
fn key_paths(value: &Value, prefix: &str, paths: &mut BTreeSet<String>) {
    match value {
        Value::Object(fields) => {
            for (name, field) in fields {
                let path = if prefix.is_empty() { name.clone() } else { format!("{prefix}.{name}") };
                key_paths(field, &path, paths);
            }
        }
        Value::Array(items) if items.iter().any(Value::is_object) => {
            for item in items {
                key_paths(item, &format!("{prefix}[]"), paths);
            }
        }
        _ => {
            paths.insert(prefix.to_owned());
        }
    }
}

/// Every key the config accepts: the defaults, with one webhook, one Vault
/// mount, a Kubernetes and a certificate login added so that their arrays and optional
/// tables show their keys as the directories do.
fn config_keys() -> BTreeSet<String> {
    let mut config = Config::default();
    config.lifecycle.webhooks.push(WebhookConfig {
        url: "https://alerts.test/tessera".into(),
        secret_env: None,
        secret_file: None,
        ca_file: None,
    });
    config.vault.mounts.push(VaultMountConfig { path: "pki".into(), roles: vec!["default".into()], authority: None });
    config.vault.kubernetes = Some(KubernetesAuthConfig {
        path: "kubernetes".into(),
        issuer: "https://kubernetes.default.svc".into(),
        jwks_file: Some("jwks.json".into()),
        jwks: None,
        token_ttl: "20m".parse().unwrap(),
        roles: vec![KubernetesRoleConfig {
            name: "cert-manager".into(),
            bound_service_account_names: vec!["cert-manager".into()],
            bound_service_account_namespaces: vec!["cert-manager".into()],
            audience: None,
            policies: vec!["default".into()],
        }],
    });
    config.vault.cert = Some(CertAuthConfig {
        path: "cert".into(),
        trusted_ca_file: Some("anchors.pem".into()),
        token_ttl: "20m".parse().unwrap(),
        roles: vec![CertRoleConfig {
            name: "workloads".into(),
            spiffe_ids: vec!["spiffe://cluster.local/*".into()],
            dns_names: vec![],
            policies: vec!["default".into()],
        }],
    });
    let mut paths = BTreeSet::new();
    key_paths(&serde_json::to_value(&config).unwrap(), "", &mut paths);
    paths
}

/// The keys `docs/configuration.md` documents: the first cell of each table
/// row, written as code.
fn documented_keys(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter_map(|line| line.strip_prefix("| `"))
        .filter_map(|rest| rest.split_once('`'))
        .map(|(key, _)| key.to_owned())
        .collect()
}

#[test]
fn configuration_doc_names_every_config_key_and_no_other() {
    let text = std::fs::read_to_string(repository().join("docs/configuration.md")).unwrap();
    let documented = documented_keys(&text);
    let keys = config_keys();
    let undocumented: Vec<_> = keys.difference(&documented).collect();
    let unknown: Vec<_> = documented.difference(&keys).collect();
    assert!(
        undocumented.is_empty() && unknown.is_empty(),
        "docs/configuration.md is out of step with src/config.rs:\n\
         keys missing from it: {undocumented:?}\nkeys it names that do not exist: {unknown:?}"
    );
}

/// The Markdown files people read: the top level and `docs/`.
fn markdown_files() -> Vec<PathBuf> {
    let mut files = Vec::new();
    for dir in [repository(), repository().join("docs")] {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "md") {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

/// Targets of inline links, `[text](target)`, outside code blocks.
fn link_targets(text: &str) -> Vec<String> {
    let mut targets = Vec::new();
    let mut in_code = false;
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            in_code = !in_code;
            continue;
        }
        if in_code {
            continue;
        }
        let mut rest = line;
        while let Some(start) = rest.find("](") {
            let after = &rest[start + 2..];
            let Some(end) = after.find(')') else { break };
            targets.push(after[..end].to_owned());
            rest = &after[end..];
        }
    }
    targets
}

/// GitHub's anchor for a heading: lowercase, punctuation other than `-`
/// and `_` dropped, spaces to `-`.
fn anchor(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || matches!(c, '-' | '_' | ' '))
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

fn anchors(text: &str) -> BTreeSet<String> {
    let mut in_code = false;
    let mut anchors = BTreeSet::new();
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            in_code = !in_code;
        } else if !in_code && line.starts_with('#') {
            anchors.insert(anchor(line.trim_start_matches('#')));
        }
    }
    anchors
}

fn broken_link(file: &Path, target: &str) -> Option<String> {
    let shown = file.strip_prefix(repository()).unwrap_or(file).display();
    if target.contains("://") || target.starts_with("mailto:") {
        return None;
    }
    let (path, fragment) = match target.split_once('#') {
        Some((path, fragment)) => (path, Some(fragment)),
        None => (target, None),
    };
    let linked = if path.is_empty() { file.to_path_buf() } else { file.parent().unwrap().join(path) };
    if !linked.exists() {
        return Some(format!("{shown}: {target}: no such file"));
    }
    let fragment = fragment?;
    if linked.extension().is_none_or(|e| e != "md") {
        return None;
    }
    let text = std::fs::read_to_string(&linked).unwrap();
    (!anchors(&text).contains(fragment)).then(|| format!("{shown}: {target}: no such heading"))
}

#[test]
fn relative_links_in_the_documents_reach_their_files_and_headings() {
    let files = markdown_files();
    assert!(files.iter().any(|f| f.ends_with("README.md")), "no README.md among {files:?}");
    let broken: Vec<_> = files
        .iter()
        .flat_map(|file| {
            let text = std::fs::read_to_string(file).unwrap();
            link_targets(&text).into_iter().filter_map(|target| broken_link(file, &target)).collect::<Vec<_>>()
        })
        .collect();
    assert!(broken.is_empty(), "broken links:\n{}", broken.join("\n"));
}

#[test]
fn anchors_are_made_as_github_makes_them() {
    assert_eq!(anchor(" Fuzzing, lint and dependencies"), "fuzzing-lint-and-dependencies");
    assert_eq!(anchor(" Key custody: SoftHSM2 and the KMS emulator"), "key-custody-softhsm2-and-the-kms-emulator");
    assert_eq!(anchor(" The admin CLI: `tessera admin`"), "the-admin-cli-tessera-admin");
}
