//! Access tokens, cached and refreshed ahead of expiry, one refresh at a time however many
//! tasks wait. Generic over how a token is obtained: OAuth2 grants through the `oauth2`
//! crate, Google's signed JWT, Wix's JSON body, SuperOffice tickets.

use std::time::{Duration, Instant};

use secrecy::{ExposeSecret, SecretString};
use tokio::sync::Mutex;

use crate::ConnectorError;

/// The longest a token is trusted without asking again.
pub const MAX_LIFETIME: Duration = Duration::from_secs(24 * 3600);

/// A credential for the `Authorization` header, and when it stops working.
#[derive(Clone)]
pub struct AccessToken {
    /// The whole header value (`Bearer …`, `SOTicket …`).
    pub authorization: SecretString,
    pub expires_at: Instant,
}

impl AccessToken {
    pub fn bearer(token: &str, expires_in: Duration) -> AccessToken {
        AccessToken::new(format!("Bearer {token}"), expires_in)
    }

    /// `authorization` as the whole header value, valid for `lifetime` — at most a day, so
    /// an absurd lifetime from a vendor (`expires_in: 18446744073709551615`) cannot overflow
    /// the clock or keep a revoked token for good.
    pub fn new(authorization: String, lifetime: Duration) -> AccessToken {
        AccessToken {
            authorization: SecretString::from(authorization),
            expires_at: Instant::now() + lifetime.min(MAX_LIFETIME),
        }
    }
}

impl std::fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccessToken")
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

/// How a connector obtains a fresh token.
#[async_trait::async_trait]
pub trait TokenSource: Send + Sync {
    async fn fetch(&self) -> Result<AccessToken, ConnectorError>;
}

/// Holds the current token; refreshes it when it is within `ahead` of expiring or when a
/// vendor refused it.
pub struct TokenCache {
    source: Box<dyn TokenSource>,
    current: Mutex<Option<AccessToken>>,
    ahead: Duration,
}

impl TokenCache {
    pub fn new(source: impl TokenSource + 'static, ahead: Duration) -> TokenCache {
        TokenCache {
            source: Box::new(source),
            current: Mutex::new(None),
            ahead,
        }
    }

    /// A token valid for at least `ahead`. Callers that arrive during a refresh wait for it
    /// (the lock is held across the fetch) rather than starting their own.
    pub async fn token(&self) -> Result<AccessToken, ConnectorError> {
        let mut current = self.current.lock().await;
        if let Some(token) = current.as_ref()
            && token.expires_at > Instant::now() + self.ahead
        {
            return Ok(token.clone());
        }
        let fresh = self.source.fetch().await?;
        *current = Some(fresh.clone());
        Ok(fresh)
    }

    /// Forgets `refused` if it is still the current token (after a 401). Many tasks refused
    /// at once cause one refresh, not many.
    pub async fn invalidate(&self, refused: &AccessToken) {
        let mut current = self.current.lock().await;
        if current
            .as_ref()
            .is_some_and(|t| t.authorization.expose_secret() == refused.authorization.expose_secret())
        {
            *current = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU32, Ordering};

    struct Counting(Arc<AtomicU32>, Duration);

    #[async_trait::async_trait]
    impl TokenSource for Counting {
        async fn fetch(&self) -> Result<AccessToken, ConnectorError> {
            let n = self.0.fetch_add(1, Ordering::SeqCst) + 1;
            tokio::time::sleep(Duration::from_millis(20)).await;
            Ok(AccessToken::bearer(&format!("t{n}"), self.1))
        }
    }

    #[tokio::test]
    async fn many_waiters_cause_one_fetch_and_a_refusal_one_refresh() {
        let fetches = Arc::new(AtomicU32::new(0));
        let cache = Arc::new(TokenCache::new(
            Counting(fetches.clone(), Duration::from_secs(3600)),
            Duration::from_secs(60),
        ));
        let handles: Vec<_> = (0..20)
            .map(|_| {
                let cache = cache.clone();
                tokio::spawn(async move { cache.token().await.unwrap() })
            })
            .collect();
        let mut tokens = Vec::new();
        for h in handles {
            tokens.push(h.await.unwrap());
        }
        assert_eq!(fetches.load(Ordering::SeqCst), 1);
        assert!(tokens.iter().all(|t| t.authorization.expose_secret() == "Bearer t1"));

        for t in &tokens {
            cache.invalidate(t).await;
        }
        assert_eq!(cache.token().await.unwrap().authorization.expose_secret(), "Bearer t2");
        cache.invalidate(&tokens[0]).await; // stale: already replaced
        assert_eq!(cache.token().await.unwrap().authorization.expose_secret(), "Bearer t2");
        assert_eq!(fetches.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn an_absurd_lifetime_is_capped_not_overflowed() {
        let token = AccessToken::bearer("t", Duration::from_secs(u64::MAX));
        assert!(token.expires_at <= Instant::now() + MAX_LIFETIME);
    }

    #[tokio::test]
    async fn tokens_are_refreshed_ahead_of_expiry() {
        let fetches = Arc::new(AtomicU32::new(0));
        // Expires in 30 s, refreshed when within 60 s: every call refreshes.
        let cache = TokenCache::new(
            Counting(fetches.clone(), Duration::from_secs(30)),
            Duration::from_secs(60),
        );
        cache.token().await.unwrap();
        cache.token().await.unwrap();
        assert_eq!(fetches.load(Ordering::SeqCst), 2);
    }
}
