//! Random bytes from aws-lc-rs's system generator, the only source of randomness in this crate.
//!
//! The generator failing means the operating system cannot give ORB entropy; nothing in authentication
//! can be done safely then, so the helpers panic with a message saying so instead of handing out a weak
//! secret.

use aws_lc_rs::rand;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// `N` random bytes.
///
/// # Panics
/// When the system random number generator fails (see the module docs).
pub(crate) fn bytes<const N: usize>() -> [u8; N] {
    let mut buf = [0u8; N];
    rand::fill(&mut buf).expect(
        "the operating system's random number generator failed; ORB cannot create secrets without it \
         (check the host's entropy source)",
    );
    buf
}

/// `N` random bytes as unpadded base64url text.
pub(crate) fn base64url<const N: usize>() -> String {
    URL_SAFE_NO_PAD.encode(bytes::<N>())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_differ_and_have_the_asked_length() {
        assert_ne!(bytes::<16>(), bytes::<16>());
        assert_eq!(base64url::<32>().len(), 43);
    }
}
