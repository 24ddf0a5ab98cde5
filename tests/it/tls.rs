//! HTTPS end to end: the agent's own TLS (rustls with the ring provider and the
//! platform verifier) against a TLS front on 127.0.0.1 that forwards to the fake
//! buildd server. The front's certificate comes from a throw-away CA that the
//! agent trusts only through `SSL_CERT_FILE`, as a user behind a corporate CA would.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use buildd_fakes::harness::*;
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

use crate::AGENT;

/// A CA (written as PEM for `SSL_CERT_FILE`) and a server certificate for 127.0.0.1.
struct Pki {
    ca_pem: String,
    server_cert: CertificateDer<'static>,
    server_key: PrivateKeyDer<'static>,
}

fn pki() -> Pki {
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
    let server_key = KeyPair::generate().unwrap();
    let server_cert = CertificateParams::new(vec!["127.0.0.1".to_string()])
        .unwrap()
        .signed_by(&server_key, &ca)
        .unwrap();
    Pki {
        ca_pem: ca.pem(),
        server_cert: server_cert.der().clone(),
        server_key: PrivatePkcs8KeyDer::from(server_key.serialize_der()).into(),
    }
}

/// Accept TLS on an ephemeral port and pipe each connection to `backend`, on a
/// runtime of its own that lives as long as the test process.
fn tls_front(pki: &Pki, backend: SocketAddr) -> SocketAddr {
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(vec![pki.server_cert.clone()], pki.server_key.clone_key())
    .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    continue;
                };
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    // A refused handshake (the untrusted case) just ends here.
                    let Ok(mut tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let Ok(mut upstream) = tokio::net::TcpStream::connect(backend).await else {
                        return;
                    };
                    let _ = tokio::io::copy_bidirectional(&mut tls, &mut upstream).await;
                });
            }
        });
    });
    addr
}

fn backend_addr(server: &FakeBuildd) -> SocketAddr {
    server
        .url()
        .trim_start_matches("http://")
        .parse()
        .expect("the fake listens on an IP address")
}

fn write_ca(env: &Env, pem: &str) -> PathBuf {
    let path = env.path("ca.pem");
    std::fs::write(&path, pem).unwrap();
    path
}

#[test]
fn an_https_server_with_a_trusted_certificate_is_used() {
    let env = Env::new(AGENT).with_task(TaskSeed {
        title: "Succeeds over https".into(),
        ..Default::default()
    });
    let pki = pki();
    let front = tls_front(&pki, backend_addr(env.server()));
    let ca = write_ca(&env, &pki.ca_pem);
    let out = env
        .agent(["--once"])
        .env("BUILDD_SERVER", format!("https://{front}"))
        .env("SSL_CERT_FILE", &ca)
        .run();
    assert_eq!(out.code(), 0, "{}", out.stderr);
    let ws = env.server().workers();
    assert_eq!(ws.len(), 1);
    assert_eq!(statuses(&ws[0]), ["running", "completed"]);
}

#[test]
fn an_untrusted_certificate_is_refused_with_a_clear_error() {
    let env = Env::new(AGENT);
    let pki = pki();
    let front = tls_front(&pki, backend_addr(env.server()));
    // A different CA than the one that signed the server's certificate.
    let other = write_ca(&env, &self::pki().ca_pem);
    let out = env
        .agent(["--until-idle"])
        .env("BUILDD_SERVER", format!("https://{front}"))
        .env("SSL_CERT_FILE", &other)
        .env("BUILDD_RETRY_BUDGET", "300ms")
        .run();
    assert_eq!(out.code(), 3, "{}", out.stderr);
    let err = &out.stderr;
    assert!(
        err.lines()
            .any(|l| l.starts_with("error:") && l.contains("certificate")),
        "the error names the certificate problem: {err}"
    );
    assert!(
        err.lines()
            .any(|l| l.starts_with("hint:") && l.contains("SSL_CERT_FILE")),
        "the hint says what to do: {err}"
    );
    assert!(
        env.server().claims().is_empty(),
        "nothing reached the server"
    );
}
