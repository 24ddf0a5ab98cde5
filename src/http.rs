//! The one place HTTP clients are built, so both servers' clients set up TLS the same way.
//!
//! Building a reqwest client with the platform verifier reads every trust root the system
//! has (on Debian the bundle plus ~150 files under `/etc/ssl/certs`) and parses them: about
//! 10 ms of CPU, measured in BENCHMARKS.md. That is most of the agent's startup, and it was
//! paid again for every task when each task built its own Messages API client. So: a plain
//! `http://` base URL (the local fakes, a server on a private network) gets a client with no
//! trust roots at all, which cannot be tricked into trusting anything (a redirect to https
//! fails verification); an `https://` one gets the platform verifier as before. Callers build
//! a client once and share it (reqwest clients are cheap to clone and pool connections).
//!
//! TLS uses rustls with *ring* as its crypto provider (installed here, once, before any
//! client is built): it is far smaller than aws-lc-rs, which reqwest and octocrab would
//! otherwise each pull in, and it builds for static musl targets with a plain C compiler.
//! GitHub's client (octocrab) runs over a client from here too, so there is one HTTP stack.

use std::sync::Once;

/// A client builder for talking to `base_url`, with the trust roots it needs and no more.
pub fn client_builder(base_url: &str) -> reqwest::ClientBuilder {
    install_crypto_provider();
    let builder = reqwest::Client::builder();
    if is_plain_http(base_url) {
        builder.tls_certs_only(std::iter::empty())
    } else {
        builder
    }
}

/// Make *ring* the process's rustls provider. reqwest is built without one of its own
/// and would panic at the first https client otherwise. Another provider already
/// installed (none is, in this binary) would do just as well, so that error is ignored.
fn install_crypto_provider() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

/// `e` and every error under it, joined with `: `. reqwest's own message is only
/// "error sending request"; the cause a user can act on (connection refused, a
/// certificate not trusted) is further down the chain.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        s.push_str(": ");
        s.push_str(&cause.to_string());
        source = cause.source();
    }
    s
}

/// Whether `base_url` is plain `http://` (case-insensitive, as URL schemes are).
fn is_plain_http(base_url: &str) -> bool {
    base_url
        .trim_start()
        .get(..7)
        .is_some_and(|s| s.eq_ignore_ascii_case("http://"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_http_skips_the_trust_roots() {
        assert!(is_plain_http("http://127.0.0.1:3000"));
        assert!(is_plain_http("HTTP://buildd.internal"));
        assert!(!is_plain_http("https://buildd.dev"));
        assert!(!is_plain_http("httpx://odd"));
        assert!(!is_plain_http("http"));
    }

    #[test]
    fn https_clients_build_with_the_ring_provider() {
        // Building loads the platform verifier and the installed provider; a missing
        // provider would panic here rather than at the first real https request.
        client_builder("https://api.github.com")
            .build()
            .expect("an https client builds");
        assert!(rustls::crypto::CryptoProvider::get_default().is_some());
    }
}
