//! The general envelope's parameters: which JSON fields carry an
//! application's request, its batch and its reply, and the limits a service
//! enforces. Greetings is one choice of them ([`Contract::GREETINGS`]);
//! another application keeps the defaults or names its own fields.

/// What an application's requests and replies look like on the wire, and
/// the limits its services enforce. Both ends of a route must use the same.
///
/// A request body is a JSON object holding the request in
/// [`request_field`](Self::request_field), or a batch of them as an array in
/// [`batch_field`](Self::batch_field); a reply holds the responder's name in
/// `consumer` and the answer in [`reply_field`](Self::reply_field), an
/// `error`, or a batch's `results` (docs/wire-contract.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Contract {
    /// The field of a single request.
    pub request_field: &'static str,
    /// The field of a batch: an array of requests.
    pub batch_field: &'static str,
    /// The field of an answer, in a reply and in each result of a batch reply.
    pub reply_field: &'static str,
    /// Largest single request body a service accepts, in bytes.
    pub max_request_bytes: usize,
    /// Most requests in one batch.
    pub max_batch_items: usize,
    /// Largest batch request body a service accepts, in bytes.
    pub max_batch_bytes: usize,
}

impl Contract {
    /// The envelope's defaults: `{"request": ...}`, `{"requests": [...]}`,
    /// answers in `reply`; 128 KiB bodies, batches of up to 1,000.
    pub const DEFAULT: Self = Self {
        request_field: "request",
        batch_field: "requests",
        reply_field: "reply",
        max_request_bytes: 128 * 1024,
        max_batch_items: 1000,
        max_batch_bytes: 128 * 1024,
    };

    /// Greetings (contract v1 to v1.2): `{"name": ...}`, `{"names": [...]}`,
    /// answers in `greeting`; 4 KiB single requests, batches of up to 1,000
    /// names in 128 KiB.
    pub const GREETINGS: Self = Self {
        request_field: "name",
        batch_field: "names",
        reply_field: "greeting",
        max_request_bytes: 4096,
        max_batch_items: 1000,
        max_batch_bytes: 128 * 1024,
    };

    /// Fields the envelope itself uses, which an application's cannot be.
    pub const RESERVED_FIELDS: [&'static str; 5] =
        ["consumer", "error", "results", "offset", "done"];

    /// Checks that the three fields are distinct, not reserved, and the
    /// limits are not zero.
    ///
    /// # Errors
    /// What is wrong, in a sentence.
    pub fn validate(&self) -> Result<(), String> {
        let fields = [self.request_field, self.batch_field, self.reply_field];
        if let Some(field) = fields
            .iter()
            .find(|f| f.is_empty() || Self::RESERVED_FIELDS.contains(f))
        {
            return Err(format!(
                "contract field {field:?} is empty or one the envelope uses ({:?})",
                Self::RESERVED_FIELDS
            ));
        }
        if self.request_field == self.batch_field {
            return Err("a contract's request and batch fields must differ".to_owned());
        }
        if self.max_request_bytes == 0 || self.max_batch_items == 0 || self.max_batch_bytes == 0 {
            return Err("a contract's limits must be more than 0".to_owned());
        }
        Ok(())
    }

    /// Bytes of a batch body besides its items: `{"<batch_field>":[]}`.
    #[must_use]
    pub fn batch_overhead(&self) -> usize {
        self.batch_field.len() + 7
    }
}

impl Default for Contract {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// Largest greetings single-name request body a service accepts, in bytes.
pub const MAX_REQUEST_BYTES: usize = Contract::GREETINGS.max_request_bytes;
/// Most items in one batch request, in greetings and by default.
pub const MAX_BATCH_NAMES: usize = Contract::GREETINGS.max_batch_items;
/// Largest batch request body a service accepts, in greetings and by
/// default, in bytes.
pub const MAX_BATCH_BYTES: usize = Contract::GREETINGS.max_batch_bytes;

/// The smallest `amqp.max_message_size` the services accept: a greetings
/// single request (at most 4 KiB) and any error reply fit, with room.
pub const MIN_MESSAGE_SIZE: usize = 8 * 1024;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contracts_are_checked() {
        assert_eq!(Contract::DEFAULT.validate(), Ok(()));
        assert_eq!(Contract::GREETINGS.validate(), Ok(()));
        assert_eq!(
            Contract::GREETINGS.batch_overhead(),
            br#"{"names":[]}"#.len()
        );
        for wrong in [
            Contract {
                reply_field: "error",
                ..Contract::DEFAULT
            },
            Contract {
                batch_field: "request",
                ..Contract::DEFAULT
            },
            Contract {
                max_batch_items: 0,
                ..Contract::DEFAULT
            },
        ] {
            assert!(wrong.validate().is_err(), "{wrong:?}");
        }
    }
}
