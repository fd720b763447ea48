//! The stored column form of identifiers. [`Identifier`] itself lives in
//! `tessera-core`, which the agent shares; it is re-exported here, at the
//! path the server has always used.

pub use tessera_core::identifier::{Identifier, IdentifierError};

/// Joins identifiers for the `sans` column: space-separated with a space at
/// each end, so `LIKE '% dns:a.test %'` finds an exact name.
pub fn to_column(names: &[Identifier]) -> String {
    let mut out = String::from(" ");
    for n in names {
        out.push_str(&n.to_tagged());
        out.push(' ');
    }
    out
}

pub fn from_column(column: &str) -> Vec<Identifier> {
    column.split_whitespace().filter_map(|t| Identifier::from_tagged(t).ok()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn column_form_round_trips() {
        let names = vec![
            Identifier::dns("a.test").expect("dns"),
            Identifier::ip("::1").expect("ip"),
            Identifier::uri("spiffe://tessera.test/ns/a/sa/b").expect("uri"),
        ];
        assert_eq!(from_column(&to_column(&names)), names);
    }
}
