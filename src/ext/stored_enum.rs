//! On-disk mirrors of public fieldless enums.
//!
//! A public enum that is part of a stored record is not serialized itself: the record holds a
//! private mirror declared with [`stored_enum`], so adding, renaming or reordering a public
//! variant cannot silently change the bytes on disk. The codec (bincode, see
//! [`crate::codec`]) writes a variant as its index, so the mirror's variant order *is* the
//! format: it changes only with a format version bump (README "On-disk format"), and the
//! golden-byte tests in `src/golden.rs` pin it.

/// Declares `$stored`, the on-disk mirror of the public enum `$public` (in scope by that
/// name), with the listed variants in on-disk order and `From` conversions both ways. Every
/// public variant must be listed (the conversion's `match` is exhaustive), so a new public
/// variant does not compile until its stored form is decided.
macro_rules! stored_enum {
    ($(#[$meta:meta])* $vis:vis enum $stored:ident mirrors $public:ident { $($variant:ident),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
        $vis enum $stored {
            $($variant),+
        }

        impl From<$public> for $stored {
            fn from(v: $public) -> Self {
                match v {
                    $($public::$variant => $stored::$variant),+
                }
            }
        }

        impl From<$stored> for $public {
            fn from(v: $stored) -> Self {
                match v {
                    $($stored::$variant => $public::$variant),+
                }
            }
        }
    };
}

pub(crate) use stored_enum;
