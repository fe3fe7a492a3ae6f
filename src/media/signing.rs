//! Short-lived signed media URLs: `<path>?expires=<unix seconds>&signature=<HMAC>`, so an
//! `<img src>` or a download link works without a bearer header. The signature covers the
//! path and the expiry; its key is derived from the server's JWT secret (rotating that
//! secret ends every URL, as it ends every token).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// Signs and checks media URLs.
#[derive(Clone)]
pub struct UrlSigner {
    /// The MAC keyed for media URLs, cloned for each signature.
    keyed: HmacSha256,
    /// How long a URL is valid at least.
    ttl_secs: i64,
}

impl UrlSigner {
    /// A signer whose key is derived from `secret`; URLs last `ttl_secs` (at least 60).
    pub fn new(secret: &str, ttl_secs: u64) -> Result<Self, String> {
        // HMAC takes keys of any length: these cannot fail, but stay total.
        let invalid = |e: hmac::digest::InvalidLength| format!("media URL key: {e}");
        let mut derive = HmacSha256::new_from_slice(secret.as_bytes()).map_err(invalid)?;
        derive.update(b"chatql media URLs");
        let key = derive.finalize().into_bytes();
        Ok(Self {
            keyed: HmacSha256::new_from_slice(&key).map_err(invalid)?,
            ttl_secs: i64::try_from(ttl_secs.max(60)).unwrap_or(i64::MAX / 2),
        })
    }

    fn mac(&self, path: &str, expires: i64) -> HmacSha256 {
        let mut mac = self.keyed.clone();
        mac.update(path.as_bytes());
        mac.update(b"\n");
        mac.update(expires.to_string().as_bytes());
        mac
    }

    /// The expiry of a URL signed at `now`: at least the TTL ahead, rounded up to a
    /// quarter of it, so every viewer asking within that quarter gets the same URL (one
    /// rendering of a live event serves them all, and browsers cache one URL).
    pub fn expiry(&self, now: i64) -> i64 {
        let step = (self.ttl_secs / 4).max(1);
        (now + self.ttl_secs).div_euclid(step) * step + step
    }

    /// `path` with its signed query.
    pub fn sign(&self, path: &str, now: i64) -> String {
        let expires = self.expiry(now);
        let signature = URL_SAFE_NO_PAD.encode(self.mac(path, expires).finalize().into_bytes());
        format!("{path}?expires={expires}&signature={signature}")
    }

    /// Whether `signature` signs `path` until `expires`, and that is not past at `now`.
    pub fn verify(&self, path: &str, expires: i64, signature: &str, now: i64) -> bool {
        if expires < now {
            return false;
        }
        let Ok(given) = URL_SAFE_NO_PAD.decode(signature) else {
            return false;
        };
        // Constant-time comparison.
        self.mac(path, expires).verify_slice(&given).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::UrlSigner;

    fn query(url: &str) -> (i64, String) {
        let (_, query) = url.split_once('?').unwrap_or_default();
        let mut expires = 0;
        let mut signature = String::new();
        for pair in query.split('&') {
            match pair.split_once('=') {
                Some(("expires", v)) => expires = v.parse().unwrap_or_default(),
                Some(("signature", v)) => signature = v.to_owned(),
                _ => {}
            }
        }
        (expires, signature)
    }

    #[test]
    fn a_signed_url_verifies_until_it_expires_and_only_for_its_path() {
        let Ok(signer) = UrlSigner::new("a secret of sixteen+", 3600) else {
            panic!("no signer");
        };
        let url = signer.sign("/media/QXR0YWNobWVudDox", 1_000_000);
        let (expires, signature) = query(&url);
        assert!((1_000_000 + 3600..=1_000_000 + 3600 + 900).contains(&expires));
        assert!(signer.verify("/media/QXR0YWNobWVudDox", expires, &signature, 1_000_000));
        assert!(!signer.verify("/media/QXR0YWNobWVudDoy", expires, &signature, 1_000_000));
        assert!(!signer.verify(
            "/media/QXR0YWNobWVudDox",
            expires + 1,
            &signature,
            1_000_000
        ));
        assert!(!signer.verify("/media/QXR0YWNobWVudDox", expires, &signature, expires + 1));
        let Ok(other) = UrlSigner::new("another secret, 16+", 3600) else {
            panic!("no signer");
        };
        assert!(!other.verify("/media/QXR0YWNobWVudDox", expires, &signature, 1_000_000));
    }

    #[test]
    fn viewers_in_one_quarter_of_the_ttl_get_one_url() {
        let Ok(signer) = UrlSigner::new("a secret of sixteen+", 3600) else {
            panic!("no signer");
        };
        assert_eq!(signer.sign("/m", 900), signer.sign("/m", 1000));
        assert_ne!(signer.sign("/m", 900), signer.sign("/m", 1800));
    }
}
