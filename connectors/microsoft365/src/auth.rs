//! How dsr signs in to Graph: an app-only token from the client-credentials grant (RFC 6749
//! §4.4) at the tenant's Microsoft identity platform endpoint, for Graph's `.default` scope
//! (the application permissions an administrator consented to), cached and renewed ahead of
//! expiry, one renewal at a time.
//! - https://learn.microsoft.com/en-us/entra/identity-platform/v2-oauth2-client-creds-grant-flow
//! - https://learn.microsoft.com/en-us/graph/auth-v2-service

use std::sync::Arc;
use std::time::Duration;

use dsr_connector::ConfigError;
use dsr_connector::http::{ClientCredentials, TokenCache, TokenClient};

use crate::client::PROCESSOR;
use crate::config::Microsoft365Config;

/// Every application permission the app registration was granted on Graph.
const GRAPH_SCOPE: &str = "https://graph.microsoft.com/.default";

/// A token this close to expiry is renewed before the next call.
const RENEW_AHEAD: Duration = Duration::from_secs(300);

/// The token cache for `config`'s app registration. The client secret is read now, so a
/// missing one is reported when the connector is built, not in the middle of a request.
pub fn tokens(config: &Microsoft365Config) -> Result<Arc<TokenCache>, ConfigError> {
    let secret = config
        .client_secret
        .resolve()
        .map_err(|e| ConfigError::new(PROCESSOR, "client_secret", e.to_string()))?;
    // Token requests follow no redirect: the client secret goes to the token URL only.
    let http = TokenClient::new(Duration::from_secs(60))
        .map_err(|e| ConfigError::new(PROCESSOR, "", format!("no HTTP client for the token endpoint: {e}")))?;
    let source = ClientCredentials::new(
        PROCESSOR,
        http,
        config.token_url()?.as_str(),
        &config.client_id,
        secret,
        &[GRAPH_SCOPE],
    );
    Ok(Arc::new(TokenCache::new(source, RENEW_AHEAD)))
}
