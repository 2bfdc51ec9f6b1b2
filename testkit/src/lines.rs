//! [`Lines`]: text lines shared between the task that reads them and the
//! test that looks at them.

use std::sync::{Arc, Mutex};

/// Shared text sinks, for consumers' printed lines.
pub(crate) type Lines = Arc<Mutex<Vec<String>>>;
