//! The access token value (`--token`): kept as a digest, compared in constant time, never
//! printed. The server's front door checks requests against it (`server::auth`).

use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq as _;

/// Shortest token accepted: guessing it must be hopeless even at many calls per second.
pub const MIN_TOKEN_LEN: usize = 16;

/// A token given on the command line is unusable.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// Too short to resist guessing.
    #[error("the token is {len} characters long; use at least {MIN_TOKEN_LEN} (for example the output of `openssl rand -hex 32`)")]
    TooShort {
        /// Its length.
        len: usize,
    },
    /// Contains characters that cannot travel in a header, cookie or URL unescaped.
    #[error("the token may contain only letters, digits and - . _ ~ (it travels in headers, cookies and URLs)")]
    BadCharacters,
}

/// The gateway's token, with the cookie derived from it.
#[derive(Clone)]
pub struct AccessToken {
    token: Vec<u8>,
    pub(crate) cookie_name: String,
    cookie_value: String,
}

impl std::fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AccessToken(<redacted>)")
    }
}

impl AccessToken {
    /// A token from its text (surrounding white space, such as a file's newline, is dropped).
    pub fn new(token: &str) -> Result<AccessToken, TokenError> {
        let token = token.trim();
        if token.len() < MIN_TOKEN_LEN {
            return Err(TokenError::TooShort { len: token.len() });
        }
        if !token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
        {
            return Err(TokenError::BadCharacters);
        }
        // The cookie holds a digest, not the token; its name carries a short digest too, so
        // two gateways on one host (cookies ignore ports) with different tokens keep apart.
        let digest = hex(&Sha256::new()
            .chain_update(b"octaneweb cookie\0")
            .chain_update(token.as_bytes())
            .finalize());
        Ok(AccessToken {
            token: token.as_bytes().to_vec(),
            cookie_name: format!("octaneweb-{}", &digest[..12]),
            cookie_value: digest,
        })
    }

    /// The token itself, for the URL printed at start (only there).
    pub fn reveal(&self) -> &str {
        std::str::from_utf8(&self.token).unwrap_or_default()
    }

    pub(crate) fn matches(&self, candidate: &[u8]) -> bool {
        candidate.len() == self.token.len() && bool::from(candidate.ct_eq(&self.token))
    }

    pub(crate) fn cookie_matches(&self, value: &str) -> bool {
        value.len() == self.cookie_value.len()
            && bool::from(value.as_bytes().ct_eq(self.cookie_value.as_bytes()))
    }

    /// The `Set-Cookie` value that lets a browser in (`secure` over TLS).
    pub fn set_cookie(&self, secure: bool) -> String {
        format!(
            "{}={}; Path=/; HttpOnly; SameSite=Strict{}",
            self.cookie_name,
            self.cookie_value,
            if secure { "; Secure" } else { "" }
        )
    }
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes.iter().fold(String::new(), |mut out, b| {
        let _ = write!(out, "{b:02x}");
        out
    })
}
