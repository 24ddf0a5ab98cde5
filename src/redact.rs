//! One place that knows what a secret looks like.
//!
//! Everything that leaves the process as text (logs, error messages, reports to
//! the server, the job summary) can pass through [`Redactor::redact`]: known
//! secret values and the usual token shapes become `***`.

use std::borrow::Cow;
use std::sync::{Arc, OnceLock, RwLock};

use aho_corasick::AhoCorasick;
use regex::Regex;

/// Shortest value treated as a secret; shorter ones would redact ordinary words.
const MIN_SECRET_LEN: usize = 8;

/// Called once for each newly learned secret (GitHub Actions masks it).
pub type SecretHook = Arc<dyn Fn(&str) + Send + Sync>;

/// Replaces secrets in text. Cheap to clone; clones share the known values.
#[derive(Clone, Default)]
pub struct Redactor {
    known: Arc<RwLock<Vec<String>>>,
    on_new: Arc<RwLock<Option<SecretHook>>>,
}

impl std::fmt::Debug for Redactor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Redactor(***)")
    }
}

/// Literals that every token shape starts with (ASCII case is ignored, a superset of the
/// shapes' own rules). Compiling [`token_shapes`] costs about 2.5 million instructions, a
/// millisecond or more — most of the agent's start-up work when the first log line paid
/// for it — while almost no text contains one of these, so the regex is built only for
/// text that does.
const TOKEN_PREFIXES: &[&str] = &[
    "sk-ant-",
    "ghp_",
    "gho_",
    "ghu_",
    "ghs_",
    "ghr_",
    "github_pat_",
    "bld_",
    "buildd_",
    "bearer",
    "token",
];

fn may_hold_token(text: &str) -> bool {
    static PREFIXES: OnceLock<Option<AhoCorasick>> = OnceLock::new();
    match PREFIXES.get_or_init(|| {
        AhoCorasick::builder()
            .ascii_case_insensitive(true)
            .build(TOKEN_PREFIXES)
            .ok()
    }) {
        Some(ac) => ac.is_match(text),
        // Cannot happen for these few literals; if it did, scan everything.
        None => true,
    }
}

/// Token shapes, in ASCII terms (`(?-u)`): tokens and HTTP headers are ASCII, and
/// Unicode case folding would let `token` match text [`TOKEN_PREFIXES`] does not.
fn token_shapes() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| {
        Regex::new(concat!(
            r"(?-u)(?:sk-ant-[A-Za-z0-9_\-]{8,})",
            r"|(?:gh[pousr]_[A-Za-z0-9]{20,})",
            r"|(?:github_pat_[A-Za-z0-9_]{20,})",
            r"|(?:bld_[A-Za-z0-9_\-]{8,})",
            r"|(?:buildd_[A-Za-z0-9]{16,})",
            r"|(?i:(?:bearer|token)\s+[A-Za-z0-9._~+/=\-]{12,})",
        ))
        .expect("static regex")
    })
}

fn url_credentials() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    // scheme://user:password@host → scheme://***@host
    RE.get_or_init(|| {
        Regex::new(r"([a-zA-Z][a-zA-Z0-9+.\-]*://)[^/@\s:]+(?::[^/@\s]*)?@").expect("static regex")
    })
}

impl Redactor {
    /// A redactor that knows no values yet (token shapes are always redacted).
    pub fn new() -> Self {
        Self::default()
    }

    /// Call `hook` for every secret learned from now on (and none before:
    /// set it first).
    pub fn on_new_secret(&self, hook: SecretHook) {
        if let Ok(mut h) = self.on_new.write() {
            *h = Some(hook);
        }
    }

    /// Remember a secret value so every later `redact` hides it.
    pub fn add(&self, secret: &str) {
        let secret = secret.trim();
        if secret.len() < MIN_SECRET_LEN {
            return;
        }
        let is_new = match self.known.write() {
            Ok(mut known) if !known.iter().any(|k| k == secret) => {
                known.push(secret.to_string());
                // Longest first, so a secret containing another is hidden whole.
                known.sort_by_key(|k| std::cmp::Reverse(k.len()));
                true
            }
            _ => false,
        };
        if is_new
            && let Ok(hook) = self.on_new.read()
            && let Some(hook) = hook.as_ref()
        {
            hook(secret);
        }
    }

    /// The known secret values (for `::add-mask::`).
    pub fn known(&self) -> Vec<String> {
        self.known.read().map(|k| k.clone()).unwrap_or_default()
    }

    /// `text` with every secret replaced by `***`.
    pub fn redact<'a>(&self, text: &'a str) -> Cow<'a, str> {
        let mut out: Cow<'a, str> = Cow::Borrowed(text);
        if let Ok(known) = self.known.read() {
            for k in known.iter() {
                if out.contains(k.as_str()) {
                    out = Cow::Owned(out.replace(k.as_str(), "***"));
                }
            }
        }
        if may_hold_token(&out) && token_shapes().is_match(&out) {
            out = Cow::Owned(token_shapes().replace_all(&out, "***").into_owned());
        }
        // Credentials in a URL need `://` and `@`; most text has neither.
        if out.contains("://") && out.contains('@') && url_credentials().is_match(&out) {
            out = Cow::Owned(url_credentials().replace_all(&out, "${1}***@").into_owned());
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hides_known_values_and_token_shapes() {
        let r = Redactor::new();
        r.add("my-very-private-value");
        r.add("short");
        let text = "key=my-very-private-value a=sk-ant-api03-abcdefghijkl b=ghp_abcdefghijklmnopqrstuvwxyz0123 \
                    c=github_pat_11ABCDEFGHIJKLMNOPQRSTUV d=bld_4f3e2d1c0b9a e=Authorization: Bearer abcdefghijklmnop short";
        let out = r.redact(text);
        for needle in [
            "my-very-private-value",
            "sk-ant-api03",
            "ghp_abc",
            "github_pat_11",
            "bld_4f3e",
            "abcdefghijklmnop",
        ] {
            assert!(!out.contains(needle), "{needle} leaked in {out}");
        }
        assert!(
            out.contains("short"),
            "short values are not treated as secrets"
        );
    }

    #[test]
    fn the_hook_sees_each_new_secret_once() {
        let r = Redactor::new();
        let seen = Arc::new(RwLock::new(Vec::new()));
        let sink = seen.clone();
        r.on_new_secret(Arc::new(move |s| sink.write().unwrap().push(s.to_string())));
        r.add("first-secret-value");
        r.add("first-secret-value");
        r.add("tiny");
        r.add("second-secret-value");
        assert_eq!(
            *seen.read().unwrap(),
            ["first-secret-value", "second-secret-value"]
        );
    }

    #[test]
    fn hides_credentials_in_urls() {
        let r = Redactor::new();
        assert_eq!(
            r.redact("fetch https://x-access-token:abc123@github.com/a/b.git failed"),
            "fetch https://***@github.com/a/b.git failed"
        );
    }

    #[test]
    fn every_token_shape_passes_the_prefix_check() {
        // The prefilter must never skip text the regex would redact: each
        // alternative's sample, in any ASCII case the regex accepts.
        for sample in [
            "sk-ant-api03-abcdefgh",
            "ghp_abcdefghijklmnopqrst",
            "gho_abcdefghijklmnopqrst",
            "ghu_abcdefghijklmnopqrst",
            "ghs_abcdefghijklmnopqrst",
            "ghr_abcdefghijklmnopqrst",
            "github_pat_abcdefghijklmnopqrst",
            "bld_abcdefgh",
            "buildd_abcdefghijklmnop",
            "Authorization: BEARER abcdefghijklmnop",
            "ToKeN\tabcdefghijklmnop",
        ] {
            assert!(token_shapes().is_match(sample), "{sample}");
            assert!(may_hold_token(sample), "{sample}");
            assert_eq!(Redactor::new().redact(sample).matches("***").count(), 1);
        }
        assert!(!may_hold_token("Fixed the login redirect in src/auth.rs"));
    }

    proptest::proptest! {
        /// The prefilters change how fast redaction is, never what it hides.
        #[test]
        fn prefilters_never_change_the_result(
            text in "((sk-ant-|gh[pousr]_|github_pat_|bld_|buildd_|[Bb]earer |TOKEN |https://u:p@h|[a-z0-9_ :/@.-]){0,12})"
        ) {
            let unfiltered = token_shapes().replace_all(&text, "***").into_owned();
            let unfiltered = url_credentials().replace_all(&unfiltered, "${1}***@").into_owned();
            proptest::prop_assert_eq!(Redactor::new().redact(&text).into_owned(), unfiltered);
        }
    }

    #[test]
    fn leaves_ordinary_text_alone() {
        let r = Redactor::new();
        let text = "Fixed the login redirect in src/auth.rs (3 files)";
        assert!(matches!(r.redact(text), Cow::Borrowed(_)));
    }
}
