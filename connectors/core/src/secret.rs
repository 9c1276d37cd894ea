//! Secrets in config are references (`env:NAME` or `file:PATH`), resolved when loaded and
//! wrapped so they never reach a log or a `Debug` print.

use std::fmt;
use std::path::PathBuf;

use secrecy::SecretString;
use serde::Deserialize;

/// Where a secret comes from. The value itself is never part of the config text.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub enum SecretRef {
    Env(String),
    File(PathBuf),
}

#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("a secret must be written `env:NAME` or `file:PATH`, not a literal value")]
    Form,
    #[error("environment variable {0} (named by a secret in config) is not set")]
    MissingEnv(String),
    #[error("cannot read secret file {path}: {source}")]
    File { path: PathBuf, source: std::io::Error },
}

impl TryFrom<String> for SecretRef {
    type Error = SecretError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        if let Some(name) = value.strip_prefix("env:").filter(|n| !n.is_empty()) {
            Ok(SecretRef::Env(name.to_string()))
        } else if let Some(path) = value.strip_prefix("file:").filter(|p| !p.is_empty()) {
            Ok(SecretRef::File(PathBuf::from(path)))
        } else {
            Err(SecretError::Form)
        }
    }
}

/// A `[processors.*]` section present in config is enabled unless it says `enabled = false`.
pub fn section_enabled() -> bool {
    true
}

impl SecretRef {
    /// Whether the secret can be read now; the error names the variable or file when not.
    pub fn check(&self) -> Result<(), SecretError> {
        self.resolve().map(|_| ())
    }

    pub fn resolve(&self) -> Result<SecretString, SecretError> {
        match self {
            SecretRef::Env(name) => std::env::var(name)
                .map(SecretString::from)
                .map_err(|_| SecretError::MissingEnv(name.clone())),
            SecretRef::File(path) => std::fs::read_to_string(path)
                .map(|s| SecretString::from(s.trim_end_matches(['\r', '\n']).to_string()))
                .map_err(|source| SecretError::File {
                    path: path.clone(),
                    source,
                }),
        }
    }
}

impl fmt::Debug for SecretRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SecretRef::Env(name) => write!(f, "env:{name}"),
            SecretRef::File(path) => write!(f, "file:{}", path.display()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;

    #[test]
    fn literal_secrets_are_refused_and_references_resolve() {
        assert!(SecretRef::try_from("hunter2".to_string()).is_err());
        let dir = std::env::temp_dir().join(format!("dsr-secret-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("key");
        std::fs::write(&file, "s3cret\n").unwrap();
        let secret = SecretRef::try_from(format!("file:{}", file.display())).unwrap();
        assert_eq!(secret.resolve().unwrap().expose_secret(), "s3cret");
        let missing = SecretRef::try_from("env:DSR_TEST_SURELY_UNSET".to_string()).unwrap();
        assert!(
            missing
                .resolve()
                .unwrap_err()
                .to_string()
                .contains("DSR_TEST_SURELY_UNSET")
        );
        std::fs::remove_dir_all(dir).unwrap();
    }
}
