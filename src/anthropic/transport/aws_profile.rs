//! Static credentials and the region from the AWS shared files (`~/.aws/credentials`,
//! `~/.aws/config`), for the profile `AWS_PROFILE` names (or `default`).
//!
//! Only what can be read without running anything or calling AWS: `aws_access_key_id`,
//! `aws_secret_access_key`, `aws_session_token` and `region`. A profile that gets its
//! credentials another way (SSO, an assumed role, `credential_process`, web identity) is
//! refused with a hint, never half-used: export its keys instead.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::AwsCredentials;
use crate::secret::Secret;

/// Keys that mean "credentials come from somewhere this reader does not go".
const UNSUPPORTED: &[&str] = &[
    "sso_session",
    "sso_start_url",
    "role_arn",
    "credential_process",
    "web_identity_token_file",
    "credential_source",
];

/// A profile file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ProfileError {
    /// The file exists but could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The profile gets credentials in a way the API runner does not support.
    #[error(
        "AWS profile {profile:?} uses {key}, which the API runner does not support; export its \
         credentials instead (for example `eval \"$(aws configure export-credentials --profile \
         {profile} --format env)\"`) or set AWS_BEARER_TOKEN_BEDROCK"
    )]
    Unsupported {
        /// The profile.
        profile: String,
        /// The key that shows it.
        key: String,
    },
}

/// What the shared files say about one profile.
#[derive(Debug, Default, PartialEq)]
pub struct Profile {
    /// Static credentials, when both keys are present.
    pub credentials: Option<AwsCredentials>,
    /// `region`.
    pub region: Option<String>,
}

/// Read `profile` from the credentials file and the config file (either may be missing).
pub fn load(
    profile: &str,
    credentials_file: &Path,
    config_file: &Path,
) -> Result<Profile, ProfileError> {
    let creds = section(&read(credentials_file)?, profile, false);
    let config = section(&read(config_file)?, profile, true);
    for (key, _) in creds.iter().chain(config.iter()) {
        if UNSUPPORTED.contains(&key.as_str()) {
            return Err(ProfileError::Unsupported {
                profile: profile.to_string(),
                key: key.clone(),
            });
        }
    }
    // The credentials file wins over keys in the config file, as in the AWS CLI.
    let get = |k: &str| creds.get(k).or_else(|| config.get(k)).cloned();
    let credentials = match (get("aws_access_key_id"), get("aws_secret_access_key")) {
        (Some(id), Some(secret)) if !id.is_empty() && !secret.is_empty() => Some(AwsCredentials {
            access_key_id: id,
            secret_access_key: Secret::new(secret),
            session_token: get("aws_session_token")
                .filter(|t| !t.is_empty())
                .map(Secret::new),
        }),
        _ => None,
    };
    Ok(Profile {
        credentials,
        region: config.get("region").cloned().filter(|r| !r.is_empty()),
    })
}

/// `~/.aws/<name>` unless `override_path` is set.
pub fn default_path(
    home: Option<&str>,
    override_path: Option<String>,
    name: &str,
) -> Option<PathBuf> {
    override_path
        .map(PathBuf::from)
        .or_else(|| home.map(|h| Path::new(h).join(".aws").join(name)))
}

fn read(path: &Path) -> Result<String, ProfileError> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(text),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(String::new()),
        Err(source) => Err(ProfileError::Read {
            path: path.display().to_string(),
            source,
        }),
    }
}

/// The `key = value` pairs of one profile's section. The config file names sections
/// `[profile NAME]` (and `[default]`); the credentials file `[NAME]`.
fn section(text: &str, profile: &str, config_style: bool) -> BTreeMap<String, String> {
    let wanted = |header: &str| {
        let header = header.trim();
        if config_style && profile != "default" {
            header
                .strip_prefix("profile")
                .is_some_and(|rest| rest.starts_with(char::is_whitespace) && rest.trim() == profile)
        } else {
            header == profile
        }
    };
    let mut out = BTreeMap::new();
    let mut inside = false;
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(header) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            inside = wanted(header);
            continue;
        }
        if inside && let Some((k, v)) = line.split_once('=') {
            out.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files(creds: &str, config: &str) -> (tempfile::TempDir, PathBuf, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let c = dir.path().join("credentials");
        let f = dir.path().join("config");
        std::fs::write(&c, creds).unwrap();
        std::fs::write(&f, config).unwrap();
        (dir, c, f)
    }

    #[test]
    fn reads_static_keys_and_the_region_of_the_named_profile() {
        let (_d, c, f) = files(
            "[default]\naws_access_key_id = AKDEFAULT\naws_secret_access_key = s1\n\n\
             # work account\n[work]\naws_access_key_id=AKWORK\naws_secret_access_key=s2\n\
             aws_session_token = tok\n",
            "[default]\nregion = us-east-1\n[profile work]\nregion = eu-west-3\n",
        );
        let work = load("work", &c, &f).unwrap();
        let creds = work.credentials.unwrap();
        assert_eq!(creds.access_key_id, "AKWORK");
        assert_eq!(creds.secret_access_key.expose(), "s2");
        assert_eq!(
            creds.session_token.map(|t| t.expose().to_string()),
            Some("tok".into())
        );
        assert_eq!(work.region.as_deref(), Some("eu-west-3"));
        let default = load("default", &c, &f).unwrap();
        assert_eq!(default.credentials.unwrap().access_key_id, "AKDEFAULT");
        assert_eq!(default.region.as_deref(), Some("us-east-1"));
        let none = load("nobody", &c, &f).unwrap();
        assert_eq!(none, Profile::default());
    }

    #[test]
    fn missing_files_are_empty_and_sso_profiles_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let missing = load("default", &dir.path().join("a"), &dir.path().join("b")).unwrap();
        assert_eq!(missing, Profile::default());
        let (_d, c, f) = files(
            "",
            "[profile sso]\nsso_session = corp\nregion = us-west-2\n",
        );
        let err = load("sso", &c, &f).unwrap_err();
        assert!(err.to_string().contains("sso_session"), "{err}");
        assert!(err.to_string().contains("export-credentials"), "{err}");
        assert_eq!(
            default_path(Some("/home/u"), None, "config"),
            Some(PathBuf::from("/home/u/.aws/config"))
        );
        assert_eq!(
            default_path(Some("/home/u"), Some("/etc/aws".into()), "config"),
            Some(PathBuf::from("/etc/aws"))
        );
    }
}
