//! Time as an injected dependency. The clock lives in `tessera-core`, which
//! the agent shares; it is re-exported here at the server's usual path.

pub use tessera_core::clock::{Clock, SharedClock, SystemClock, TestClock, from_unix, rfc3339};
