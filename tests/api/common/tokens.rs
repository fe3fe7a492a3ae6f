//! Hand-made tokens: the forgeries and edge cases a client could send instead of one the
//! server issued.

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::json;

use super::TestResult;

/// An HS256 token for `sub` signed with `secret`, issued at `iat`, expiring at `exp`
/// (seconds since the epoch).
pub fn craft_token(secret: &str, sub: &str, iat: i64, exp: i64) -> TestResult<String> {
    craft_token_with(Algorithm::HS256, secret, sub, iat, exp)
}

/// Like [`craft_token`], signed with the HMAC algorithm `alg`.
pub fn craft_token_with(
    alg: Algorithm,
    secret: &str,
    sub: &str,
    iat: i64,
    exp: i64,
) -> TestResult<String> {
    Ok(jsonwebtoken::encode(
        &Header::new(alg),
        &json!({ "sub": sub, "iat": iat, "exp": exp }),
        &EncodingKey::from_secret(secret.as_bytes()),
    )?)
}

/// A token with `alg: none` and no signature for `sub`, valid from `iat` to `exp`.
pub fn unsigned_token(sub: &str, iat: i64, exp: i64) -> String {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let header = b64.encode(r#"{"alg":"none","typ":"JWT"}"#);
    let claims = b64.encode(json!({ "sub": sub, "iat": iat, "exp": exp }).to_string());
    format!("{header}.{claims}.")
}
