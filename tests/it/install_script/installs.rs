//! What install-agent.sh installs, from where, and what it tells the user.

use super::*;

#[test]
fn fresh_install_of_the_latest_release() {
    // The real binary; it is large, so it is packaged once and every shell
    // installs it into its own directory.
    let fx = Fixture::new();
    fx.publish_binary(LATEST, host_target(), &real_binary());
    fx.set_latest(LATEST);
    for (i, shell) in shells().into_iter().enumerate() {
        let dir = fx.path(&format!("install-{i}"));
        let before = fx.server.requests().len();
        let run = Run::from(
            fx.command(&shell, &[])
                .env("BUILDD_INSTALL_DIR", &dir)
                .output()
                .expect("run"),
        );
        run.assert_ok(&shell);
        let installed = dir.join("buildd-agent");
        assert!(
            run.stdout.contains(&format!(
                "installed buildd-agent {LATEST} to {}",
                installed.display()
            )),
            "[{}]\n{run}",
            shell.name
        );
        let mode = fs::metadata(&installed)
            .expect("installed")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o755, "[{}] mode", shell.name);
        let reported = version_of(&installed);
        assert!(
            reported.starts_with(&format!("buildd-agent {LATEST} (")),
            "[{}] installed binary reports {reported:?}",
            shell.name
        );
        // Exactly: the API, the checksum, the tarball.
        let paths: Vec<String> = fx.server.requests()[before..]
            .iter()
            .map(|r| r.path.clone())
            .collect();
        let tarball = format!("/v{LATEST}/buildd-agent-{LATEST}-{}.tar.gz", host_target());
        assert_eq!(
            paths,
            vec![
                format!("/repos/{REPO}/releases/latest"),
                format!("{tarball}.sha256"),
                tarball,
            ],
            "[{}]",
            shell.name
        );
        // The install dir is not on PATH in this sandbox: the user is told.
        assert!(
            run.stdout.contains("is not on your PATH"),
            "[{}]\n{run}",
            shell.name
        );
        fx.assert_tmp_clean(&shell);
    }
}

#[test]
fn pinned_version_is_installed_without_asking_the_api() {
    for shell in shells() {
        for (how, pinned) in [("flag v-prefixed", "v0.0.9"), ("flag plain", "0.0.9")] {
            let fx = published_latest();
            let run = fx.run(&shell, &["--version", pinned]);
            run.assert_ok(&shell);
            assert_eq!(
                version_of(&fx.installed()),
                format!("buildd-agent {OLDER} (fake000)"),
                "[{}] {how}",
                shell.name
            );
            assert_eq!(fx.api_requests(), 0, "[{}] {how}", shell.name);
        }
        let fx = published_latest();
        let run = Run::from(
            fx.command(&shell, &[])
                .env("BUILDD_AGENT_VERSION", format!("v{OLDER}"))
                .output()
                .expect("run"),
        );
        run.assert_ok(&shell);
        assert_eq!(
            version_of(&fx.installed()),
            format!("buildd-agent {OLDER} (fake000)"),
            "[{}] env",
            shell.name
        );
    }
}

#[test]
fn piped_into_the_shell_like_the_readme_says() {
    // `curl -fsSL .../install-agent.sh | sh -s -- --version X`
    for shell in shells() {
        let fx = published_latest();
        let mut piped = fx.shell_command(&shell);
        piped
            .args(["-s", "--", "--version", OLDER])
            .stdin(fs::File::open(repo_root().join("install-agent.sh")).expect("open script"));
        let run = Run::from(piped.output().expect("run"));
        run.assert_ok(&shell);
        assert_eq!(
            version_of(&fx.installed()),
            format!("buildd-agent {OLDER} (fake000)"),
            "[{}]",
            shell.name
        );
    }
}

#[test]
fn rerun_of_the_same_version_downloads_nothing() {
    for shell in shells() {
        let fx = published_latest();
        fx.run(&shell, &[]).assert_ok(&shell);
        assert_eq!(fx.tarball_downloads(), 1, "[{}]", shell.name);
        let before = fs::metadata(fx.installed())
            .expect("installed")
            .modified()
            .ok();

        let run = fx.run(&shell, &[]);
        run.assert_ok(&shell);
        assert!(
            run.stdout
                .contains(&format!("buildd-agent {LATEST} is already installed")),
            "[{}]\n{run}",
            shell.name
        );
        assert_eq!(
            fx.tarball_downloads(),
            1,
            "[{}] second download",
            shell.name
        );
        let after = fs::metadata(fx.installed())
            .expect("installed")
            .modified()
            .ok();
        assert_eq!(before, after, "[{}] binary rewritten", shell.name);

        // A different version is an upgrade (here a downgrade), not a no-op.
        fx.run(&shell, &["--version", OLDER]).assert_ok(&shell);
        assert_eq!(fx.tarball_downloads(), 2, "[{}]", shell.name);
        assert_eq!(
            version_of(&fx.installed()),
            format!("buildd-agent {OLDER} (fake000)")
        );
    }
}

#[test]
fn macos_under_rosetta_gets_the_arm64_build() {
    let shell = bash();
    for (translated, target) in [("1", "aarch64-apple-darwin"), ("0", "x86_64-apple-darwin")] {
        let fx = Fixture::new();
        fx.publish(OLDER, "aarch64-apple-darwin");
        fx.publish(OLDER, "x86_64-apple-darwin");
        let mut cmd = fx.command(&shell, &["--version", OLDER]);
        let uname = "#!/bin/sh\ncase \"$1\" in -m) echo x86_64 ;; *) echo Darwin ;; esac\n";
        let sysctl = format!(
            "#!/bin/sh\n[ \"$*\" = '-n sysctl.proc_translated' ] || exit 1\necho {translated}\n"
        );
        fx.with_fake_tools(&mut cmd, &[("uname", uname), ("sysctl", &sysctl)]);
        let run = Run::from(cmd.output().expect("run"));
        run.assert_ok(&shell);
        let downloads: Vec<String> = fx
            .server
            .requests_ending_with(".tar.gz")
            .into_iter()
            .map(|r| r.path)
            .collect();
        assert_eq!(
            downloads,
            vec![format!("/v{OLDER}/buildd-agent-{OLDER}-{target}.tar.gz")],
            "proc_translated={translated}"
        );
    }
}

#[test]
fn github_token_goes_to_the_api_only() {
    let shell = bash();
    let fx = published_latest();
    let run = Run::from(
        fx.command(&shell, &[])
            .env("GITHUB_TOKEN", "ghs_test_token")
            .output()
            .expect("run"),
    );
    run.assert_ok(&shell);
    for request in fx.server.requests() {
        let expected = request
            .path
            .ends_with("/releases/latest")
            .then(|| "Bearer ghs_test_token".to_owned());
        assert_eq!(request.authorization, expected, "{}", request.path);
    }
    assert!(!run.stdout.contains("ghs_test_token") && !run.stderr.contains("ghs_test_token"));
}

#[test]
fn github_actions_path_is_appended() {
    let shell = bash();
    let fx = published_latest();
    let github_path = fx.path("github_path");
    fs::write(&github_path, "/already/there\n").expect("write GITHUB_PATH");
    for _ in 0..2 {
        // Fresh install and the no-op re-run both make the binary reachable.
        let run = Run::from(
            fx.command(&shell, &[])
                .env("GITHUB_PATH", &github_path)
                .output()
                .expect("run"),
        );
        run.assert_ok(&shell);
    }
    let dir = fx.install_dir();
    let expected = format!("/already/there\n{0}\n{0}\n", dir.display());
    assert_eq!(fs::read_to_string(&github_path).expect("read"), expected);
}

#[test]
fn non_root_default_is_home_local_bin() {
    let shell = bash();
    let fx = published_latest();
    let mut cmd = fx.command(&shell, &[]);
    cmd.env_remove("BUILDD_INSTALL_DIR");
    fx.with_fake_tools(
        &mut cmd,
        &[("id", "#!/bin/sh\n[ \"$1\" = -u ] && echo 1000\n")],
    );
    let run = Run::from(cmd.output().expect("run"));
    run.assert_ok(&shell);
    let local_bin = fx.path("home/.local/bin");
    assert!(
        version_of(&local_bin.join("buildd-agent"))
            .starts_with(&format!("buildd-agent {LATEST} (")),
        "{run}"
    );
    assert!(
        run.stdout.contains(&format!(
            "note: {} is not on your PATH",
            local_bin.display()
        )),
        "{run}"
    );
}

#[test]
fn release_tarball_layout() {
    let fx = Fixture::new();
    fx.publish(OLDER, host_target());
    let out = Command::new("tar")
        .arg("-tzf")
        .arg(fx.tarball(OLDER, host_target()))
        .output()
        .expect("tar -t");
    let mut listing: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.trim_end_matches('/').to_owned())
        .collect();
    listing.sort();
    let top = format!("buildd-agent-{OLDER}-{}", host_target());
    assert_eq!(
        listing,
        vec![
            top.clone(),
            format!("{top}/LICENSE"),
            format!("{top}/README.md"),
            format!("{top}/buildd-agent"),
        ]
    );
    let sums = fs::read_to_string(fx.path(&format!("www/v{OLDER}/SHA256SUMS"))).expect("sums");
    let sha = fs::read_to_string(fx.tarball(OLDER, host_target()).with_extension("gz.sha256"))
        .expect("sha");
    assert_eq!(sums, sha, "one tarball: SHA256SUMS is its .sha256 line");
    assert!(sha.ends_with(&format!("  {top}.tar.gz\n")), "{sha:?}");
}

#[test]
fn install_script_is_shellcheck_clean() {
    let Some(shellcheck) = which("shellcheck") else {
        eprintln!("note: shellcheck is not installed; skipping");
        return;
    };
    let root = repo_root();
    let out = Command::new(shellcheck)
        .args(["--shell=sh", "--severity=style"])
        .arg(root.join("install-agent.sh"))
        .args(
            ["package", "sha256", "checksums", "release", "release-notes"]
                .map(|s| root.join("scripts").join(s)),
        )
        .output()
        .expect("run shellcheck");
    let run = Run::from(out);
    assert_eq!(run.code, Some(0), "shellcheck findings\n{run}");
}
