//! The API token as a secret: never printed, not even by `Debug`.

use std::fmt;

/// A Dagster+ (or `dagster-deploy serve`) API token. Only [`ApiToken::expose`] gives the text,
/// and the only caller that needs it is the code setting the request header.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiToken(String);

impl ApiToken {
    /// `None` for an empty or blank value (an unset variable is often set to "").
    pub fn new(token: impl Into<String>) -> Option<ApiToken> {
        let token = token.into().trim().to_string();
        (!token.is_empty()).then_some(ApiToken(token))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for ApiToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiToken(<redacted>)")
    }
}

impl fmt::Display for ApiToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Replaces every occurrence of the token in `text` (server answers may echo headers).
pub fn redact(text: &str, token: &ApiToken) -> String {
    text.replace(token.expose(), "<redacted>")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_never_print() {
        let t = ApiToken::new(" ddp_secret ").unwrap();
        assert_eq!(t.expose(), "ddp_secret");
        assert_eq!(format!("{t:?} {t}"), "ApiToken(<redacted>) <redacted>");
        assert_eq!(redact("got ddp_secret back", &t), "got <redacted> back");
        assert!(ApiToken::new("  ").is_none());
    }
}
