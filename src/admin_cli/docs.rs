//! `tessera admin completions` and `tessera admin man`: generated from the
//! command line's own definition, so they cannot drift from it.

use std::path::Path;

use super::error::{CliError, file_error};
use super::output;

/// Completions for the whole `tessera` command, for `shell`.
pub fn completions(shell: clap_complete::Shell, mut root: clap::Command) -> Result<(), CliError> {
    let name = root.get_name().to_owned();
    // Into memory first: the generator panics on a failed write (a closed pipe).
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut root, name, &mut script);
    output::write_stdout(&script)
}

/// The `tessera-admin(1)` page on stdout, or with `dir` one page per
/// `tessera admin` command written there.
pub fn man(mut root: clap::Command, dir: Option<&Path>) -> Result<(), CliError> {
    root.build();
    let admin = root
        .find_subcommand("admin")
        .cloned()
        .ok_or_else(|| CliError::Usage("this binary has no admin command".into()))?;
    if let Some(dir) = dir {
        return clap_mangen::generate_to(admin, dir).map_err(|e| file_error(dir, e));
    }
    let mut page = Vec::new();
    clap_mangen::Man::new(admin).render(&mut page).map_err(|e| CliError::Usage(format!("manual page: {e}")))?;
    output::write_stdout(&page)
}
