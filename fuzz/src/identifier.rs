//! Names as they arrive from outside: ACME identifiers, REST request
//! names, SANs, and the tagged and column forms they are stored in.

use tessera::issuance::{Identifier, from_column, to_column};

pub fn identifier(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    for name in [
        Identifier::dns(text),
        Identifier::ip(text),
        Identifier::uri(text),
        Identifier::guess(text),
        Identifier::from_tagged(text),
    ]
    .into_iter()
    .flatten()
    {
        reads_back(&name);
    }
    for name in from_column(text) {
        reads_back(&name);
    }
}

/// A name is stored tagged (one per row) and in the `sans` column; both
/// must read back as the same name, and its value as its kind parses it.
fn reads_back(name: &Identifier) {
    assert_eq!(Identifier::from_tagged(&name.to_tagged()).as_ref(), Ok(name), "tagged form of {name:?}");
    assert_eq!(from_column(&to_column(std::slice::from_ref(name))), vec![name.clone()], "column form of {name:?}");
    let value = name.value();
    let again = match name {
        Identifier::Dns(_) => Identifier::dns(&value),
        Identifier::Ip(_) => Identifier::ip(&value),
        Identifier::Uri(_) => Identifier::uri(&value),
    };
    assert_eq!(again.as_ref(), Ok(name), "value of {name:?}");
}
