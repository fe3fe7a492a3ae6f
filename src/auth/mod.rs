//! Authentication: JWTs for users, the admin key for the application backend, and the
//! `Caller` every resolver is handed. A signed token is not enough on its own: its user
//! must exist and its generation be current ([`generations`]).

pub mod generations;

use std::time::Duration;

use chrono::{DateTime, Utc};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use crate::error::{AppError, AppResult};
use crate::vocabulary::ids::UserId;

/// Who is making a request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Caller {
    /// No credentials.
    Anonymous,
    /// The application backend, holding the admin key.
    Admin,
    /// A user, by a valid token that expires at `expires_at`.
    User {
        /// The user acting.
        id: UserId,
        /// When the token stops being valid (subscriptions end then).
        expires_at: DateTime<Utc>,
        /// The user's token generation the token was issued in.
        generation: i64,
    },
}

impl Caller {
    /// Who calls, as the request log shows it: the user's global id, `admin` or
    /// `anonymous`.
    pub fn log_label(&self) -> String {
        match self {
            Caller::User { id, .. } => id.to_global(),
            Caller::Admin => "admin".to_owned(),
            Caller::Anonymous => "anonymous".to_owned(),
        }
    }

    /// The acting user, or `UNAUTHENTICATED` (the admin key acts as no user).
    pub fn user_id(&self) -> AppResult<UserId> {
        match self {
            Caller::User { id, .. } => Ok(*id),
            Caller::Admin => Err(AppError::Forbidden(
                "the admin key does not act as a user; use a user token".into(),
            )),
            Caller::Anonymous => Err(AppError::Unauthenticated(
                "authentication required: send `Authorization: Bearer <token>`".into(),
            )),
        }
    }

    /// Succeeds for the admin key only.
    pub fn require_admin(&self) -> AppResult<()> {
        match self {
            Caller::Admin => Ok(()),
            Caller::Anonymous => Err(AppError::Unauthenticated(
                "this operation needs the admin key (`X-Admin-Key`)".into(),
            )),
            Caller::User { .. } => Err(AppError::Forbidden(
                "this operation needs the admin key".into(),
            )),
        }
    }
}

/// The one clock rule for tokens, over HTTP and on the socket alike: a token is valid
/// strictly before its expiry instant.
pub fn expired(expires_at: DateTime<Utc>, now: DateTime<Utc>) -> bool {
    now >= expires_at
}

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    /// The user's public id.
    sub: String,
    iat: i64,
    exp: i64,
    /// The user's token generation at issue; tokens from before generations existed
    /// carry none and count as generation 0.
    #[serde(default)]
    generation: i64,
}

/// Signs and checks tokens and the admin key.
#[derive(Clone)]
pub struct Authenticator {
    encoding: EncodingKey,
    decoding: DecodingKey,
    admin_key: String,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Authenticator { .. }")
    }
}

impl Authenticator {
    /// An authenticator with the HS256 `jwt_secret` and the `admin_key`.
    pub fn new(jwt_secret: &str, admin_key: &str) -> Self {
        Self {
            encoding: EncodingKey::from_secret(jwt_secret.as_bytes()),
            decoding: DecodingKey::from_secret(jwt_secret.as_bytes()),
            admin_key: admin_key.to_owned(),
        }
    }

    /// Mints a token for `user`, in their token `generation`, valid for `ttl`.
    pub fn issue_token(&self, user: UserId, generation: i64, ttl: Duration) -> AppResult<String> {
        let now = Utc::now().timestamp();
        let ttl = i64::try_from(ttl.as_secs())
            .map_err(|_| AppError::BadInput("token lifetime too long".into()))?;
        let claims = Claims {
            sub: user.to_global(),
            iat: now,
            exp: now.saturating_add(ttl),
            generation,
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .map_err(|e| AppError::Internal(format!("signing token: {e}")))
    }

    /// Checks a token's signature and expiry (not yet whether its user exists: see
    /// [`generations::TokenGenerations::check`]).
    pub fn verify_token(&self, token: &str) -> AppResult<Caller> {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 0;
        // jsonwebtoken accepts a token during its whole `exp` second; the socket closes at
        // `exp` itself. The one rule for both is `expired()` below.
        validation.validate_exp = false;
        let data = jsonwebtoken::decode::<Claims>(token, &self.decoding, &validation)
            .map_err(|_| AppError::Unauthenticated("invalid token".into()))?;
        let id = UserId::from_global(&data.claims.sub)
            .map_err(|_| AppError::Unauthenticated("invalid token subject".into()))?;
        let expires_at = DateTime::from_timestamp(data.claims.exp, 0)
            .ok_or_else(|| AppError::Unauthenticated("invalid token expiry".into()))?;
        if expired(expires_at, Utc::now()) {
            return Err(AppError::Unauthenticated("token expired".into()));
        }
        Ok(Caller::User {
            id,
            expires_at,
            generation: data.claims.generation,
        })
    }

    /// True when `candidate` is the admin key (compared in constant time).
    pub fn is_admin_key(&self, candidate: &str) -> bool {
        let (a, b) = (self.admin_key.as_bytes(), candidate.as_bytes());
        a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
    }

    /// The caller from an `Authorization` header value and an `X-Admin-Key` value.
    /// A present but bad credential is an error, never silently anonymous.
    pub fn caller_from(
        &self,
        authorization: Option<&str>,
        admin_key: Option<&str>,
    ) -> AppResult<Caller> {
        if let Some(key) = admin_key {
            return if self.is_admin_key(key) {
                Ok(Caller::Admin)
            } else {
                Err(AppError::Unauthenticated("invalid admin key".into()))
            };
        }
        match authorization.map(str::trim) {
            None | Some("") => Ok(Caller::Anonymous),
            Some(value) => {
                let token = value
                    .strip_prefix("Bearer ")
                    .or_else(|| value.strip_prefix("bearer "))
                    .unwrap_or(value)
                    .trim();
                self.verify_token(token)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_verify_and_forgeries_do_not() -> AppResult<()> {
        let auth = Authenticator::new("0123456789abcdef0123", "admin");
        let token = auth.issue_token(UserId(5), 3, Duration::from_secs(60))?;
        assert!(matches!(
            auth.verify_token(&token)?,
            Caller::User {
                id: UserId(5),
                generation: 3,
                ..
            }
        ));
        let other = Authenticator::new("another-secret-entirely", "admin");
        assert!(other.verify_token(&token).is_err());
        assert!(auth.is_admin_key("admin") && !auth.is_admin_key("admin2"));
        Ok(())
    }

    #[test]
    fn a_token_is_expired_from_its_expiry_instant_on() -> AppResult<()> {
        let auth = Authenticator::new("0123456789abcdef0123", "admin");
        let now = Utc::now().timestamp();
        let sign = |exp: i64| {
            let claims = Claims {
                sub: UserId(5).to_global(),
                iat: now - 10,
                exp,
                generation: 0,
            };
            jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &auth.encoding)
                .map_err(|e| AppError::Internal(e.to_string()))
        };
        // jsonwebtoken alone accepts a token during its whole `exp` second; the socket
        // closes at `exp` itself. Both now say expired.
        assert!(auth.verify_token(&sign(now)?).is_err());
        assert!(auth.verify_token(&sign(now - 1)?).is_err());
        assert!(auth.verify_token(&sign(now + 60)?).is_ok());
        let at = DateTime::from_timestamp(now, 0).ok_or(AppError::Internal("time".into()))?;
        assert!(expired(at, at) && !expired(at, at - chrono::Duration::seconds(1)));
        Ok(())
    }
}
