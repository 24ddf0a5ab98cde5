//! What install-agent.sh refuses: one error line each, and nothing left behind.

use super::*;

#[test]
fn checksum_mismatch_is_refused_and_nothing_installed() {
    for shell in shells() {
        let fx = published_latest();
        let tarball = fx.tarball(LATEST, host_target());
        let sha = tarball.with_extension("gz.sha256");
        let name = tarball.file_name().and_then(|n| n.to_str()).expect("name");
        fs::write(&sha, format!("{}  {name}\n", "0".repeat(64))).expect("corrupt checksum");

        let run = fx.run(&shell, &[]);
        run.assert_error(&shell, "checksum mismatch");
        fx.assert_nothing_installed(&shell);
    }
}

#[test]
fn tampered_tarball_is_refused() {
    let shell = bash();
    let fx = published_latest();
    let tarball = fx.tarball(LATEST, host_target());
    let mut bytes = fs::read(&tarball).expect("read tarball");
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    fs::write(&tarball, bytes).expect("tamper");
    fx.run(&shell, &[])
        .assert_error(&shell, "checksum mismatch");
    fx.assert_nothing_installed(&shell);
}

#[test]
fn unsupported_platforms_are_refused_before_any_download() {
    for shell in shells() {
        for (os, arch, needle) in [
            ("Linux", "riscv64", "unsupported architecture: riscv64"),
            ("FreeBSD", "amd64", "unsupported operating system: FreeBSD"),
        ] {
            let fx = published_latest();
            let mut cmd = fx.command(&shell, &[]);
            let uname =
                format!("#!/bin/sh\ncase \"$1\" in -m) echo {arch} ;; *) echo {os} ;; esac\n");
            fx.with_fake_tools(&mut cmd, &[("uname", &uname)]);
            let run = Run::from(cmd.output().expect("run"));
            run.assert_error(&shell, needle);
            assert!(
                fx.server.requests().is_empty(),
                "[{}] {os}/{arch}",
                shell.name
            );
            fx.assert_nothing_installed(&shell);
        }
    }
}

#[test]
fn unwritable_install_dir_fails_cleanly() {
    for shell in shells() {
        let fx = published_latest();
        // Tests run as root, so permissions prove nothing: a directory whose
        // parent is a regular file cannot be created by anyone.
        let blocker = fx.path("not-a-dir");
        fs::write(&blocker, "").expect("write blocker");
        let run = Run::from(
            fx.command(&shell, &[])
                .env("BUILDD_INSTALL_DIR", blocker.join("bin"))
                .output()
                .expect("run"),
        );
        run.assert_error(&shell, "cannot create install directory");
        fx.assert_tmp_clean(&shell);

        // The install "directory" is itself a file.
        let run = Run::from(
            fx.command(&shell, &[])
                .env("BUILDD_INSTALL_DIR", &blocker)
                .output()
                .expect("run"),
        );
        run.assert_error(&shell, "is not a directory");
        assert_eq!(fs::read(&blocker).expect("blocker"), b"", "file untouched");
        fx.assert_tmp_clean(&shell);
    }
}

#[test]
fn unknown_version_is_a_404() {
    for shell in shells() {
        let fx = published_latest();
        let run = fx.run(&shell, &["--version", "9.9.9"]);
        run.assert_error(&shell, "not found (HTTP 404)");
        assert!(run.stderr.contains("/v9.9.9/"), "[{}]\n{run}", shell.name);
        fx.assert_nothing_installed(&shell);
    }
}

#[test]
fn invalid_version_is_refused_before_any_request() {
    let shell = bash();
    let fx = published_latest();
    for bad in ["../../etc", "1.0/x", "latest", ""] {
        let run = fx.run(&shell, &["--version", bad]);
        run.assert_error(&shell, "invalid version");
    }
    assert!(fx.server.requests().is_empty());
}

#[test]
fn unreachable_server_is_one_clear_error() {
    for shell in shells() {
        let fx = published_latest();
        // A port that was just free: nothing listens there.
        let closed = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("probe port");
        let run = Run::from(
            fx.command(&shell, &[])
                .env("BUILDD_AGENT_API_URL", format!("http://{closed}"))
                .output()
                .expect("run"),
        );
        run.assert_error(&shell, "cannot reach");
        fx.assert_nothing_installed(&shell);
    }
}

#[test]
fn help_and_bad_arguments() {
    for shell in shells() {
        let fx = Fixture::new();
        let run = fx.run(&shell, &["--help"]);
        run.assert_ok(&shell);
        assert!(run.stdout.contains("Usage: install-agent.sh"), "{run}");
        assert!(run.stdout.contains("BUILDD_AGENT_DOWNLOAD_URL"), "{run}");
        fx.run(&shell, &["--frobnicate"])
            .assert_error(&shell, "unknown argument '--frobnicate'");
        fx.run(&shell, &["--version"])
            .assert_error(&shell, "--version needs a value");
        assert!(fx.server.requests().is_empty());
    }
}
