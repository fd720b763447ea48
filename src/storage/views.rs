//! The narrow views of the database that components hold, one per kind of
//! user, as Boulder hands each component its subset of the storage
//! authority. A view is the pool plus only the methods its user needs (the
//! methods live beside their tables, in `impl` blocks of the view), so
//! ACME code cannot write a certificate and the OCSP responder cannot
//! write at all without the compiler objecting. Every view reads the
//! [`Catalog`] (it dereferences to it); only wiring (`cli`, `setup`) holds
//! a [`Db`] and hands the views out.

use std::ops::Deref;

use super::Db;

/// What any component may read: authorities, certificates, policies and
/// the status rows OCSP answers from. It writes nothing.
#[derive(Debug, Clone)]
pub struct Catalog {
    db: Db,
}

impl Catalog {
    /// The pool, for the statements in this module's siblings.
    pub(super) fn db(&self) -> &Db {
        &self.db
    }
}

/// Declares views that read the catalog and add their own methods, and
/// their constructors on [`Db`].
macro_rules! views {
    ($($(#[$doc:meta])* $view:ident by $constructor:ident;)*) => {
        $(
            $(#[$doc])*
            #[derive(Debug, Clone)]
            pub struct $view {
                catalog: Catalog,
            }

            impl Deref for $view {
                type Target = Catalog;

                fn deref(&self) -> &Catalog {
                    &self.catalog
                }
            }
        )*

        impl Db {
            /// The read-only view.
            pub fn catalog(&self) -> Catalog {
                Catalog { db: self.clone() }
            }

            $(
                #[doc = concat!("The [`", stringify!($view), "`] view.")]
                pub fn $constructor(&self) -> $view {
                    $view { catalog: self.catalog() }
                }
            )*
        }
    };
}

views! {
    /// The issuance pipeline's records (`issuance::CertificateIssuer`, and
    /// `setup` for CA certificates): serials reserved, certificates issued
    /// or failed, and the compromised-key check that refuses a key.
    IssuanceLedger by ledger;
    /// The authorities table's writes: a new hierarchy (`setup`) and a
    /// rotation (`rotation`).
    AuthorityStore by authorities;
    /// ACME's objects (`acme`): accounts, orders, authorizations,
    /// challenges, used nonces, new orders within their rate limits, EAB
    /// key secrets for MAC checks, renewal pulls for ARI.
    AcmeStore by acme;
    /// What the admin API manages (`admin`): policies, tokens, EAB keys,
    /// the audit log, certificate lists, renewal pulls and the jobs' state.
    AdminStore by admin;
    /// Revocation's writes and reads (`revocation`): revoking certificates
    /// and their blocked keys' siblings, CRL numbers and stored CRLs,
    /// revocations made elsewhere.
    RevocationStore by revocation;
    /// The lifecycle jobs' reads and writes (`lifecycle`): expiry counts,
    /// notices and webhook deliveries.
    LifecycleStore by lifecycle;
    /// Job leases and runs, for the jobs that run on one node at a time
    /// (`revocation`, `rotation`, `lifecycle`).
    JobLeases by leases;
    /// The sealed secrets' data keys and the rows they seal (`secrets`):
    /// sealing at start and a key-encryption key's rotation.
    SecretStore by secrets;
}
