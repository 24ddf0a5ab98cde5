//! `buildd-agent doctor`: check what a first deployment trips over, without claiming.
//!
//! Each check is one line (or one JSON object): the configuration, the server and the
//! key, the Claude credentials, `git` and `claude`, the work and state dirs, the sandbox
//! and, on GitHub Actions, the step's environment. Nothing is claimed and nothing is
//! written to the server; the Claude check costs one 1-token request. The exit code is
//! 0 when no check fails (warnings included), 1 when one does, 2 when the configuration
//! itself does not resolve.

mod checks;

use serde::Serialize;

use crate::config::{Config, ConfigError};
use crate::error::{EXIT_OK, EXIT_TASK_FAILED, EXIT_USAGE, Hint};
use crate::redact::Redactor;

/// How one check came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Ok,
    /// Works, but not as well as it could (e.g. no sandbox on this kernel).
    Warn,
    Fail,
    /// Does not apply here (e.g. the Actions check off Actions).
    Skip,
}

impl Status {
    fn label(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Warn => "warn",
            Status::Fail => "FAIL",
            Status::Skip => "skip",
        }
    }
}

/// One check's line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    pub check: &'static str,
    pub status: Status,
    pub detail: String,
    /// How to fix a failure or warning.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
}

impl Check {
    fn new(check: &'static str, status: Status, detail: impl Into<String>) -> Self {
        Self {
            check,
            status,
            detail: detail.into(),
            hint: None,
        }
    }

    fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }
}

/// Run every check against `config` and print them; returns the exit code.
pub async fn run(config: &Config, redactor: &Redactor, json: bool) -> u8 {
    redactor.add(config.api_key.expose());
    for secret in &config.env_secrets {
        redactor.add(secret);
    }
    let checks = checks::all(config).await;
    print(&checks, redactor, json);
    if checks.iter().any(|c| c.status == Status::Fail) {
        EXIT_TASK_FAILED
    } else {
        EXIT_OK
    }
}

/// The configuration did not resolve: that is the one check there is.
pub fn config_failed(err: &ConfigError, redactor: &Redactor, json: bool) -> u8 {
    let mut check = Check::new("config", Status::Fail, err.to_string());
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        check.detail.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    check.hint = err.hint();
    print(&[check], redactor, json);
    EXIT_USAGE
}

fn print(checks: &[Check], redactor: &Redactor, json: bool) {
    let text = if json {
        let ok = !checks.iter().any(|c| c.status == Status::Fail);
        let value = serde_json::json!({ "ok": ok, "checks": checks });
        format!("{value}\n")
    } else {
        render(checks)
    };
    let text = redactor.redact(&text).into_owned();
    crate::logging::print(&text);
}

/// The lines a person reads: status, check name, detail, and an indented hint.
fn render(checks: &[Check]) -> String {
    let mut out = String::new();
    for c in checks {
        let detail = one_line(&c.detail);
        out.push_str(&format!(
            "{:<4}  {:<10}  {detail}\n",
            c.status.label(),
            c.check
        ));
        if let Some(hint) = &c.hint {
            out.push_str(&format!(
                "{:<4}  {:<10}  hint: {}\n",
                "",
                "",
                one_line(hint)
            ));
        }
    }
    let failed = checks.iter().filter(|c| c.status == Status::Fail).count();
    out.push_str(&match failed {
        0 => "all checks passed\n".to_string(),
        1 => "1 check failed\n".to_string(),
        n => format!("{n} checks failed\n"),
    });
    out
}

/// Text from outside (server bodies, command output) kept to one line.
fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_aligned_hints_indented_and_failures_counted() {
        let checks = [
            Check::new("server", Status::Ok, "reachable"),
            Check::new("git", Status::Fail, "not found\non PATH").hint("install git"),
            Check::new("actions", Status::Skip, "not on GitHub Actions"),
        ];
        let want = [
            "ok    server      reachable",
            "FAIL  git         not found on PATH",
            "                  hint: install git",
            "skip  actions     not on GitHub Actions",
            "1 check failed",
            "",
        ];
        assert_eq!(render(&checks), want.join("\n"));
    }

    #[test]
    fn json_has_one_object_per_check() {
        let checks = [Check::new("git", Status::Warn, "old")];
        let value = serde_json::json!({ "ok": true, "checks": checks });
        assert_eq!(
            value.to_string(),
            r#"{"checks":[{"check":"git","detail":"old","status":"warn"}],"ok":true}"#
        );
    }
}
