//! The `glob` and `grep` tools: find files by name and lines by regex, the way
//! ripgrep does (its `ignore` walker and `grep` searcher crates).
//!
//! Both respect `.gitignore` (even outside a git repository), skip `.git`,
//! never follow symlinks (so a link cannot lead the search outside the
//! checkout), sort their results, and cap them so one call cannot flood the
//! model's context. The starting path goes through [`Confined`].

use std::path::Path;

use grep_regex::RegexMatcherBuilder;
use grep_searcher::{BinaryDetection, SearcherBuilder, sinks};
use ignore::WalkBuilder;
use ignore::overrides::OverrideBuilder;
use serde::Deserialize;
use tokio_util::sync::CancellationToken;

use super::capture::truncate_head;
use super::editor::MAX_FILE_BYTES;
use super::path::Confined;

/// Most file names `glob` returns.
const MAX_GLOB_RESULTS: usize = 500;
/// Most matching lines `grep` returns.
const MAX_GREP_MATCHES: usize = 500;
/// Longest line `grep` shows (in characters) before cutting it.
const MAX_LINE_CHARS: usize = 300;

/// `glob` input.
#[derive(Debug, Deserialize)]
pub struct GlobInput {
    /// The glob, relative to `path`.
    pub pattern: String,
    /// Directory to search; the checkout when absent.
    #[serde(default)]
    pub path: Option<String>,
}

/// `grep` input.
#[derive(Debug, Deserialize)]
pub struct GrepInput {
    /// The regex.
    pub pattern: String,
    /// File or directory to search; the checkout when absent.
    #[serde(default)]
    pub path: Option<String>,
    /// Only files matching this ripgrep-style glob.
    #[serde(default)]
    pub glob: Option<String>,
    /// Case-insensitive matching.
    #[serde(default)]
    pub case_insensitive: Option<bool>,
}

/// The `input_schema` of `glob`.
pub fn glob_schema() -> serde_json::Value {
    serde_json::json!({
        "type": "object",
        "properties": {
            "pattern": {
                "type": "string",
                "description": "Glob matched against paths relative to `path`, e.g. `**/*.rs`, `src/*.ts`, `**/Cargo.toml`. `*` does not cross `/`; `**` does."
            },
            "path": {
                "type": "string",
                "description": "Directory to search in, relative to the checkout. Default: the checkout."
            }
        },
        "required": ["pattern"]
    })
}

/// The `input_schema` of `grep`.
pub fn grep_schema() -> serde_json::Value {
    serde_json::json!({
        "type": "object",
        "properties": {
            "pattern": {
                "type": "string",
                "description": "Regular expression (Rust/ripgrep syntax) to search file contents for."
            },
            "path": {
                "type": "string",
                "description": "File or directory to search, relative to the checkout. Default: the checkout."
            },
            "glob": {
                "type": "string",
                "description": "Only search files matching this glob, ripgrep `-g` style, e.g. `*.rs` or `src/**/*.ts`."
            },
            "case_insensitive": {
                "type": "boolean",
                "description": "Match case-insensitively. Default: false."
            }
        },
        "required": ["pattern"]
    })
}

/// A walker over `dir` with the shared rules: gitignore respected, hidden
/// files included (`.github/` matters) but `.git/` skipped, symlinks not
/// followed, sorted.
fn walker(dir: &Path) -> WalkBuilder {
    let mut builder = WalkBuilder::new(dir);
    builder
        .hidden(false)
        .require_git(false)
        .follow_links(false)
        .sort_by_file_name(|a, b| a.cmp(b))
        .filter_entry(|entry| entry.file_name() != ".git");
    builder
}

/// Find files whose path relative to the search directory matches `pattern`.
pub fn glob(
    confined: &Confined,
    input: &GlobInput,
    output_cap: usize,
    cancel: &CancellationToken,
) -> Result<String, String> {
    let dir = confined
        .existing(input.path.as_deref().unwrap_or("."))
        .map_err(|e| e.to_string())?;
    if !dir.is_dir() {
        return Err(format!("{} is not a directory", confined.display(&dir)));
    }
    // Models sometimes write the pattern as an absolute path in the checkout.
    let dir_prefix = format!("{}/", dir.to_string_lossy());
    let pattern = input
        .pattern
        .strip_prefix(&dir_prefix)
        .unwrap_or(&input.pattern);
    let matcher = globset::GlobBuilder::new(pattern.trim_start_matches("./"))
        .literal_separator(true)
        .build()
        .map_err(|e| format!("invalid glob `{}`: {e}", input.pattern))?
        .compile_matcher();

    let mut found = Vec::new();
    let mut more = 0usize;
    for entry in walker(&dir).build().flatten() {
        if cancel.is_cancelled() {
            return Err("cancelled".into());
        }
        if !entry.file_type().is_some_and(|t| t.is_file()) {
            continue;
        }
        let Ok(rel) = entry.path().strip_prefix(&dir) else {
            continue;
        };
        if matcher.is_match(rel) {
            if found.len() < MAX_GLOB_RESULTS {
                found.push(confined.display(entry.path()));
            } else {
                more += 1;
            }
        }
    }
    if found.is_empty() {
        return Ok(format!(
            "No files match `{}` in {}.",
            input.pattern,
            confined.display(&dir)
        ));
    }
    found.sort();
    let mut out = found.join("\n");
    out.push('\n');
    if more > 0 {
        out.push_str(&format!(
            "[{more} more files match; narrow the pattern or the path]\n"
        ));
    }
    Ok(truncate_head(
        &out,
        output_cap,
        "[results truncated; narrow the pattern or the path]",
    ))
}

/// Search file contents for a regex; one `path:line:text` per matching line.
pub fn grep(
    confined: &Confined,
    input: &GrepInput,
    output_cap: usize,
    cancel: &CancellationToken,
) -> Result<String, String> {
    let start = confined
        .existing(input.path.as_deref().unwrap_or("."))
        .map_err(|e| e.to_string())?;
    let matcher = RegexMatcherBuilder::new()
        .case_insensitive(input.case_insensitive.unwrap_or(false))
        .build(&input.pattern)
        .map_err(|e| format!("invalid regex `{}`: {e}", input.pattern))?;
    let mut builder = walker(&start);
    builder.max_filesize(Some(MAX_FILE_BYTES));
    if let Some(glob) = &input.glob {
        let mut overrides = OverrideBuilder::new(&start);
        overrides
            .add(glob)
            .map_err(|e| format!("invalid glob `{glob}`: {e}"))?;
        builder.overrides(
            overrides
                .build()
                .map_err(|e| format!("invalid glob `{glob}`: {e}"))?,
        );
    }
    let mut searcher = SearcherBuilder::new()
        .line_number(true)
        .binary_detection(BinaryDetection::quit(0))
        .build();

    let mut lines: Vec<String> = Vec::new();
    let mut truncated = false;
    for entry in builder.build().flatten() {
        if cancel.is_cancelled() {
            return Err("cancelled".into());
        }
        if truncated {
            break;
        }
        // A symlink's own type is not "file", so links are never searched.
        if !entry.file_type().is_some_and(|t| t.is_file()) {
            continue;
        }
        let shown = confined.display(entry.path());
        let sink = sinks::Lossy(|number, line| {
            if lines.len() >= MAX_GREP_MATCHES {
                truncated = true;
                return Ok(false);
            }
            lines.push(format!("{shown}:{number}:{}", clip_line(line)));
            Ok(true)
        });
        // An unreadable file is skipped, as ripgrep does (it only warns).
        let _ = searcher.search_path(&matcher, entry.path(), sink);
    }
    if lines.is_empty() {
        return Ok(format!(
            "No matches for `{}` in {}.",
            input.pattern,
            confined.display(&start)
        ));
    }
    let mut out = lines.join("\n");
    out.push('\n');
    if truncated {
        out.push_str(&format!(
            "[stopped after {MAX_GREP_MATCHES} matching lines; narrow the pattern, path or glob]\n"
        ));
    }
    Ok(truncate_head(
        &out,
        output_cap,
        "[results truncated; narrow the pattern, path or glob]",
    ))
}

/// One matched line without its line ending, cut to a readable length.
fn clip_line(line: &str) -> String {
    let line = line.trim_end_matches(['\n', '\r']);
    match line.char_indices().nth(MAX_LINE_CHARS) {
        None => line.to_string(),
        Some((cut, _)) => format!("{}… [line cut]", &line[..cut]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    struct Fx {
        _dir: tempfile::TempDir,
        _outside: tempfile::TempDir,
        root: std::path::PathBuf,
        confined: Confined,
    }

    /// A small tree with an ignored directory, a hidden directory, `.git`,
    /// and a symlink to a directory outside that also contains matches.
    fn fx() -> Fx {
        let dir = tempfile::tempdir().expect("tempdir");
        let outside = tempfile::tempdir().expect("tempdir");
        let confined = Confined::new(dir.path().to_path_buf());
        let root = confined.root().to_path_buf();
        let files = [
            ("src/lib.rs", "pub fn needle() {}\nfn other() {}\n"),
            ("src/main.rs", "fn main() { Needle(); }\n"),
            ("src/deep/mod.rs", "// needle in a deep place\n"),
            ("README.md", "a needle in the readme\n"),
            ("target/debug/gen.rs", "fn needle_generated() {}\n"),
            ("ignored.log", "needle in a log\n"),
            (".github/workflows/ci.yml", "run: needle\n"),
            (".git/config", "needle = in git internals\n"),
            (".gitignore", "target/\n*.log\n"),
        ];
        for (path, text) in files {
            let full = root.join(path);
            std::fs::create_dir_all(full.parent().expect("parent")).expect("mkdir");
            std::fs::write(full, text).expect("write");
        }
        std::fs::write(outside.path().join("secret.rs"), "needle outside\n").expect("write");
        symlink(outside.path(), root.join("out")).expect("symlink");
        symlink(outside.path().join("secret.rs"), root.join("src/link.rs")).expect("symlink");
        Fx {
            _dir: dir,
            _outside: outside,
            root,
            confined,
        }
    }

    fn glob_in(f: &Fx, pattern: &str, path: Option<&str>) -> Result<String, String> {
        let input = GlobInput {
            pattern: pattern.into(),
            path: path.map(Into::into),
        };
        glob(&f.confined, &input, 30_000, &CancellationToken::new())
    }

    fn grep_in(f: &Fx, json: serde_json::Value) -> Result<String, String> {
        let input: GrepInput = serde_json::from_value(json).expect("input");
        grep(&f.confined, &input, 30_000, &CancellationToken::new())
    }

    #[test]
    fn glob_finds_files_sorted_and_respects_gitignore() {
        let f = fx();
        let out = glob_in(&f, "**/*.rs", None).expect("glob");
        assert_eq!(out, "src/deep/mod.rs\nsrc/lib.rs\nsrc/main.rs\n");
        let out = glob_in(&f, "*.rs", Some("src")).expect("glob in dir");
        assert_eq!(out, "src/lib.rs\nsrc/main.rs\n");
        let absolute = format!("{}/src/*.rs", f.root.display());
        let out = glob_in(&f, &absolute, None).expect("absolute pattern");
        assert_eq!(out, "src/lib.rs\nsrc/main.rs\n");
        let out = glob_in(&f, "**/*.yml", None).expect("hidden dirs");
        assert_eq!(out, ".github/workflows/ci.yml\n");
        let out = glob_in(&f, "**/*.log", None).expect("ignored");
        assert!(out.starts_with("No files match"), "{out}");
        let out = glob_in(&f, "**/config", None).expect(".git skipped");
        assert!(out.starts_with("No files match"), "{out}");
    }

    #[test]
    fn glob_caps_results() {
        let f = fx();
        for i in 0..(MAX_GLOB_RESULTS + 7) {
            std::fs::write(f.root.join(format!("f{i:04}.txt")), "").expect("write");
        }
        let out = glob_in(&f, "*.txt", None).expect("glob");
        assert_eq!(
            out.lines().filter(|l| l.ends_with(".txt")).count(),
            MAX_GLOB_RESULTS
        );
        assert!(out.contains("[7 more files match"), "{out}");
    }

    #[test]
    fn glob_refuses_paths_outside() {
        let f = fx();
        for path in ["..", "/etc", "out"] {
            let err = glob_in(&f, "*", Some(path)).expect_err(path);
            assert!(err.contains("outside the checkout"), "{path}: {err}");
        }
        assert!(
            glob_in(&f, "a[", None)
                .expect_err("bad glob")
                .contains("invalid glob")
        );
    }

    #[test]
    fn grep_prints_path_line_text_and_respects_gitignore() {
        let f = fx();
        let out = grep_in(&f, serde_json::json!({"pattern": "needle"})).expect("grep");
        assert_eq!(
            out,
            ".github/workflows/ci.yml:1:run: needle\n\
             README.md:1:a needle in the readme\n\
             src/deep/mod.rs:1:// needle in a deep place\n\
             src/lib.rs:1:pub fn needle() {}\n"
        );
    }

    #[test]
    fn grep_options_narrow_the_search() {
        let f = fx();
        let out = grep_in(
            &f,
            serde_json::json!({"pattern": "needle", "case_insensitive": true, "glob": "*.rs"}),
        )
        .expect("grep");
        assert_eq!(
            out,
            "src/deep/mod.rs:1:// needle in a deep place\n\
             src/lib.rs:1:pub fn needle() {}\n\
             src/main.rs:1:fn main() { Needle(); }\n"
        );
        let out = grep_in(
            &f,
            serde_json::json!({"pattern": "fn \\w+\\(", "path": "src/lib.rs"}),
        )
        .expect("one file");
        assert_eq!(
            out,
            "src/lib.rs:1:pub fn needle() {}\nsrc/lib.rs:2:fn other() {}\n"
        );
        let out = grep_in(&f, serde_json::json!({"pattern": "zzz"})).expect("none");
        assert!(out.starts_with("No matches"), "{out}");
    }

    #[test]
    fn grep_errors_are_errors() {
        let f = fx();
        let err = grep_in(&f, serde_json::json!({"pattern": "("})).expect_err("bad regex");
        assert!(err.contains("invalid regex"), "{err}");
        let err =
            grep_in(&f, serde_json::json!({"pattern": "x", "path": "../"})).expect_err("outside");
        assert!(err.contains("outside the checkout"), "{err}");
        let err =
            grep_in(&f, serde_json::json!({"pattern": "x", "path": "out"})).expect_err("link out");
        assert!(err.contains("outside the checkout"), "{err}");
    }

    #[test]
    fn grep_caps_matches_and_clips_long_lines() {
        let f = fx();
        let text: String = (0..MAX_GREP_MATCHES + 50)
            .map(|i| format!("hay {i}\n"))
            .collect();
        std::fs::write(f.root.join("hay.txt"), text).expect("write");
        std::fs::write(
            f.root.join("long.txt"),
            format!("hay{}\n", "x".repeat(5000)),
        )
        .expect("write");
        let out = grep_in(&f, serde_json::json!({"pattern": "hay"})).expect("grep");
        assert_eq!(
            out.lines().filter(|l| l.starts_with("hay.txt:")).count(),
            MAX_GREP_MATCHES
        );
        assert!(out.contains("stopped after"), "{out}");
        let out = grep_in(
            &f,
            serde_json::json!({"pattern": "hay", "path": "long.txt"}),
        )
        .expect("grep");
        assert!(out.contains("[line cut]"), "{out}");
        assert!(out.len() < 400, "{}", out.len());
    }
}
