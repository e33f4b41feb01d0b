//! Typed resource ids: how they are minted and what shape a caller may send.

use std::fmt;

use ring::rand::{SecureRandom, SystemRandom};

/// Characters after the prefix of every generated id (lowercase hex).
const ID_RANDOM_LEN: usize = 12;

/// Random lowercase hex of `len` characters from the system CSPRNG.
pub fn random_hex(len: usize) -> String {
    let mut bytes = vec![0u8; len.div_ceil(2)];
    SystemRandom::new()
        .fill(&mut bytes)
        .expect("the system random source failed");
    let mut s = hex::encode(bytes);
    s.truncate(len);
    s
}

macro_rules! typed_id {
    ($(#[$doc:meta])* $name:ident, $prefix:literal, $kind:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            pub const PREFIX: &'static str = $prefix;
            pub const KIND: &'static str = $kind;

            /// A fresh random id.
            pub fn generate() -> Self {
                Self(format!("{}{}", $prefix, random_hex(ID_RANDOM_LEN)))
            }

            /// Accepts only the shape `generate` produces, so a typo is a clear
            /// parameter error rather than a "not found".
            pub fn parse(s: &str) -> Option<Self> {
                let rest = s.strip_prefix($prefix)?;
                let ok = rest.len() == ID_RANDOM_LEN
                    && rest.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
                ok.then(|| Self(s.to_owned()))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

typed_id!(
    /// A physical machine.
    PmId,
    "pm-",
    "machine"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_ids_parse_and_others_do_not() {
        let id = PmId::generate();
        assert_eq!(PmId::parse(id.as_str()), Some(id.clone()));
        assert!(PmId::parse("pm-123").is_none());
        assert!(PmId::parse("pm-ABCDEF123456").is_none());
        assert!(PmId::parse("vm-0123456789ab").is_none());
        assert!(PmId::parse("pm-0123456789ab").is_some());
    }
}
