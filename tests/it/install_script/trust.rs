//! What install-agent.sh trusts beyond the `.sha256` beside the tarball: a checksum list
//! pinned elsewhere (the action's own source, `BUILDD_AGENT_SHA256SUMS`) and the release's
//! GitHub build provenance (`gh attestation verify`, `BUILDD_AGENT_PROVENANCE`); and
//! `scripts/pin-release`, which writes the pinned list the release workflow commits.

use super::*;

/// A `gh` that is logged in and answers `attestation verify` with `verify_code`,
/// recording its arguments in `gh.log` beside it.
fn fake_gh(fx: &Fixture, verify_code: i32) -> String {
    let log = fx.path("gh.log");
    format!(
        "#!/bin/sh\necho \"$@\" >> '{}'\ncase \"$1 $2\" in\n  'auth status') exit 0 ;;\n  'attestation verify') exit {verify_code} ;;\nesac\nexit 64\n",
        log.display()
    )
}

/// The published `.sha256` line of the latest tarball, as a pinned list would carry it.
fn published_line(fx: &Fixture) -> String {
    let sha = fx
        .tarball(LATEST, host_target())
        .with_extension("gz.sha256");
    fs::read_to_string(sha).expect("read .sha256")
}

#[test]
fn a_pinned_list_that_matches_lets_the_install_through() {
    let shell = bash();
    let fx = published_latest();
    let pins = fx.path("pins.sha256sums");
    fs::write(&pins, format!("{}\n", published_line(&fx).trim())).expect("write pins");
    let run = Run::from(
        fx.command(&shell, &[])
            .env("BUILDD_AGENT_SHA256SUMS", &pins)
            .output()
            .expect("run"),
    );
    run.assert_ok(&shell);
    assert!(
        run.stdout.contains("checksum matches the pinned list"),
        "{run}"
    );
    assert!(fx.installed().is_file());
}

#[test]
fn a_release_swapped_with_its_sha256_is_refused_by_the_pinned_list() {
    for shell in shells() {
        let fx = published_latest();
        let name = format!("buildd-agent-{LATEST}-{}.tar.gz", host_target());
        // What the action's source pinned at release time...
        let pins = fx.path("pins.sha256sums");
        fs::write(&pins, format!("{}  {name}\n", "a".repeat(64))).expect("write pins");
        // ...no longer matches the tarball and .sha256 now on the release page.
        let run = Run::from(
            fx.command(&shell, &[])
                .env("BUILDD_AGENT_SHA256SUMS", &pins)
                .output()
                .expect("run"),
        );
        run.assert_error(&shell, "against");
        run.assert_error(&shell, "refusing to install");
        fx.assert_nothing_installed(&shell);
    }
}

#[test]
fn a_tarball_missing_from_the_pinned_list_is_refused() {
    let shell = bash();
    let fx = published_latest();
    let pins = fx.path("pins.sha256sums");
    fs::write(&pins, format!("{}  other.tar.gz\n", "b".repeat(64))).expect("write pins");
    let run = Run::from(
        fx.command(&shell, &[])
            .env("BUILDD_AGENT_SHA256SUMS", &pins)
            .output()
            .expect("run"),
    );
    run.assert_error(&shell, "is not listed in");
    fx.assert_nothing_installed(&shell);
}

#[test]
fn build_provenance_is_verified_with_an_authenticated_gh() {
    let shell = bash();
    let fx = published_latest();
    let gh = fake_gh(&fx, 0);
    let mut cmd = fx.command(&shell, &[]);
    fx.with_fake_tools(&mut cmd, &[("gh", &gh)]);
    let run = Run::from(cmd.output().expect("run"));
    run.assert_ok(&shell);
    assert!(
        run.stdout.contains("verified the build provenance"),
        "{run}"
    );
    let log = fs::read_to_string(fx.path("gh.log")).expect("gh was run");
    let name = format!("buildd-agent-{LATEST}-{}.tar.gz", host_target());
    let verify = log
        .lines()
        .find(|l| l.starts_with("attestation verify"))
        .unwrap_or_else(|| panic!("no attestation verify in {log}"));
    assert!(
        verify.contains(&name) && verify.ends_with(&format!("--repo {REPO}")),
        "{verify}"
    );
}

#[test]
fn a_download_without_valid_provenance_is_refused() {
    let shell = bash();
    let fx = published_latest();
    let gh = fake_gh(&fx, 1);
    let mut cmd = fx.command(&shell, &[]);
    fx.with_fake_tools(&mut cmd, &[("gh", &gh)]);
    let run = Run::from(cmd.output().expect("run"));
    run.assert_error(&shell, "no valid build provenance");
    fx.assert_nothing_installed(&shell);
}

#[test]
fn without_gh_the_install_says_how_to_check_provenance_unless_it_is_required() {
    let shell = bash();
    let fx = published_latest();
    // A `gh` that is not logged in counts as none.
    let logged_out = "#!/bin/sh\nexit 1\n";
    let mut cmd = fx.command(&shell, &[]);
    fx.with_fake_tools(&mut cmd, &[("gh", logged_out)]);
    let run = Run::from(cmd.output().expect("run"));
    run.assert_ok(&shell);
    assert!(
        run.stdout.contains(&format!(
            "to check by hand: gh attestation verify buildd-agent-{LATEST}"
        )),
        "{run}"
    );

    let fx = published_latest();
    let mut cmd = fx.command(&shell, &[]);
    fx.with_fake_tools(&mut cmd, &[("gh", logged_out)]);
    cmd.env("BUILDD_AGENT_PROVENANCE", "require");
    let run = Run::from(cmd.output().expect("run"));
    run.assert_error(
        &shell,
        "BUILDD_AGENT_PROVENANCE=require needs an authenticated gh",
    );
    fx.assert_nothing_installed(&shell);

    let fx = published_latest();
    let run = Run::from(
        fx.command(&shell, &[])
            .env("BUILDD_AGENT_PROVENANCE", "sometimes")
            .output()
            .expect("run"),
    );
    run.assert_error(&shell, "must be auto, require or off");
}

/// The version action.yml installs by default (the literal the release bumps).
fn action_default_version() -> String {
    let text = fs::read_to_string(repo_root().join("action.yml")).expect("read action.yml");
    let mut lines = text.lines();
    lines
        .find(|l| l.contains("Bumped by the release process"))
        .and_then(|_| lines.next())
        .and_then(|l| l.split('"').nth(1))
        .expect("action.yml has the default version literal")
        .to_string()
}

#[test]
fn pin_release_writes_the_list_install_agent_checks() {
    let shell = bash();
    let version = action_default_version();
    let fx = Fixture::new();
    fx.publish(&version, host_target());
    let pins = fx.path("pins");
    let run = Run::from(
        Command::new(repo_root().join("scripts/pin-release"))
            .arg(format!("v{version}"))
            .arg(fx.path(&format!("www/v{version}")))
            .env("BUILDD_PIN_DIR", &pins)
            .output()
            .expect("run pin-release"),
    );
    assert_eq!(run.code, Some(0), "{run}");
    let list = pins.join(format!("{version}.sha256sums"));
    let pinned = fs::read_to_string(&list).expect("pinned list written");
    assert_eq!(pinned.lines().count(), 1, "{pinned}");
    assert!(pinned.ends_with(".tar.gz\n"), "{pinned}");

    // install-agent.sh accepts exactly that list.
    let run = Run::from(
        fx.command(&shell, &["--version", &version])
            .env("BUILDD_AGENT_SHA256SUMS", &list)
            .output()
            .expect("run"),
    );
    run.assert_ok(&shell);
    assert!(
        run.stdout.contains("checksum matches the pinned list"),
        "{run}"
    );

    // A version action.yml does not install by default is refused.
    let run = Run::from(
        Command::new(repo_root().join("scripts/pin-release"))
            .args(["9.9.9"])
            .arg(fx.path(&format!("www/v{version}")))
            .env("BUILDD_PIN_DIR", &pins)
            .output()
            .expect("run pin-release"),
    );
    assert_eq!(run.code, Some(1), "{run}");
    assert!(run.stderr.contains("bump its literal first"), "{run}");
}
