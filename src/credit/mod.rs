//! The pure credit model: profiles, the bucket, events and decisions.
