//! The text editor tool (`str_replace_based_edit_tool`): view a file or a
//! directory, create a file, replace a unique string, insert lines.
//!
//! Input follows Anthropic's `text_editor_20250728` schema (the model is
//! trained on it). Every path goes through [`Confined`]; files are opened with
//! `O_NOFOLLOW` so a symlink swapped in after the check is not followed.
//! Errors are plain strings written for the model; `super` turns them into
//! `is_error` tool results.

use std::fs::OpenOptions;
use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use serde::Deserialize;

use super::capture::truncate_head;
use super::path::Confined;

/// Files larger than this are not read (the model gets a hint to use grep or
/// a ranged shell command instead).
pub const MAX_FILE_BYTES: u64 = 5 * 1024 * 1024;
/// Lines of context shown around an edit.
const SNIPPET_CONTEXT: usize = 4;
/// Entries shown when viewing a directory.
const MAX_DIR_ENTRIES: usize = 1000;

/// The editor's input, as the model sends it.
#[derive(Debug, Deserialize)]
pub struct EditorInput {
    /// `view`, `create`, `str_replace` or `insert`.
    pub command: String,
    /// File or directory, relative to the checkout (or absolute inside it).
    pub path: String,
    /// `view`: `[start, end]`, 1-based, `end` -1 for the end of the file.
    #[serde(default)]
    pub view_range: Option<Vec<i64>>,
    /// `create`: the whole file.
    #[serde(default)]
    pub file_text: Option<String>,
    /// `str_replace`: the text to replace, which must occur exactly once.
    #[serde(default)]
    pub old_str: Option<String>,
    /// `str_replace`: the replacement (empty when absent).
    #[serde(default)]
    pub new_str: Option<String>,
    /// `insert`: insert after this line (0 = at the top).
    #[serde(default)]
    pub insert_line: Option<u64>,
    /// `insert` text; older editor versions call it `new_str`, both are accepted.
    #[serde(default)]
    pub insert_text: Option<String>,
}

/// Run one editor command. `Ok` is the text for the model, `Err` the error
/// message for an `is_error` result.
pub fn run(confined: &Confined, input: EditorInput, output_cap: usize) -> Result<String, String> {
    match input.command.as_str() {
        "view" => view(
            confined,
            &input.path,
            input.view_range.as_deref(),
            output_cap,
        ),
        "create" => {
            let text = input
                .file_text
                .ok_or("`create` needs `file_text` (the whole content of the file)")?;
            create(confined, &input.path, &text)
        }
        "str_replace" => {
            let old = input.old_str.ok_or("`str_replace` needs `old_str`")?;
            let new = input.new_str.unwrap_or_default();
            str_replace(confined, &input.path, &old, &new)
        }
        "insert" => {
            let line = input
                .insert_line
                .ok_or("`insert` needs `insert_line` (0 inserts at the top)")?;
            let text = input
                .insert_text
                .or(input.new_str)
                .ok_or("`insert` needs `insert_text`")?;
            insert(confined, &input.path, line, &text)
        }
        "undo_edit" => {
            Err("`undo_edit` is not supported; make the reverse edit with `str_replace`".into())
        }
        other => Err(format!(
            "unknown command `{other}`; use one of: view, create, str_replace, insert"
        )),
    }
}

fn view(
    confined: &Confined,
    raw: &str,
    range: Option<&[i64]>,
    output_cap: usize,
) -> Result<String, String> {
    let path = confined.existing(raw).map_err(|e| e.to_string())?;
    if path.is_dir() {
        if range.is_some() {
            return Err("`view_range` only applies to files, not directories".into());
        }
        return list_dir(confined, &path, output_cap);
    }
    let shown = confined.display(&path);
    let text = read_text(&path, &shown)?;
    let lines: Vec<&str> = text.lines().collect();
    if lines.is_empty() {
        return Ok(format!("{shown} is empty."));
    }
    let total = lines.len();
    let (start, end) = match range {
        None => (1, total),
        Some([start, end]) => {
            let start = usize::try_from(*start)
                .ok()
                .filter(|s| (1..=total).contains(s))
                .ok_or(format!(
                    "`view_range` start {start} is out of range: {shown} has {total} lines (first line is 1)"
                ))?;
            let end = match *end {
                -1 => total,
                e => usize::try_from(e)
                    .ok()
                    .filter(|e| *e >= start)
                    .ok_or(format!(
                        "`view_range` end {e} is before start {start}; use -1 for the end of the file"
                    ))?
                    .min(total),
            };
            (start, end)
        }
        Some(other) => {
            return Err(format!(
                "`view_range` must be two numbers [start, end], got {} numbers",
                other.len()
            ));
        }
    };
    let body = numbered(&lines[start - 1..end], start);
    let note =
        format!("[output truncated; {shown} has {total} lines: use `view_range` to read the rest]");
    Ok(truncate_head(&body, output_cap, &note))
}

/// Lines numbered like `cat -n`, starting at `first`.
fn numbered(lines: &[&str], first: usize) -> String {
    use std::fmt::Write as _;
    // One buffer for the whole view: a `format!` per line was the editor's hottest path.
    let text: usize = lines.iter().map(|l| l.len()).sum();
    let mut out = String::with_capacity(text + lines.len() * 8);
    for (i, line) in lines.iter().enumerate() {
        // Writing to a String cannot fail.
        let _ = writeln!(out, "{:>6}\t{line}", first + i);
    }
    out
}

fn list_dir(confined: &Confined, dir: &Path, output_cap: usize) -> Result<String, String> {
    let walker = ignore::WalkBuilder::new(dir)
        .max_depth(Some(2))
        .hidden(true)
        .require_git(false)
        .follow_links(false)
        .sort_by_file_name(|a, b| a.cmp(b))
        .build();
    let mut entries = Vec::new();
    let mut more = 0usize;
    for entry in walker.flatten() {
        if entry.depth() == 0 {
            continue;
        }
        if entries.len() >= MAX_DIR_ENTRIES {
            more += 1;
            continue;
        }
        let mut shown = confined.display(entry.path());
        if entry.file_type().is_some_and(|t| t.is_dir()) {
            shown.push('/');
        }
        entries.push(shown);
    }
    let shown_dir = confined.display(dir);
    let mut out = format!(
        "Files and directories up to 2 levels deep in {shown_dir} (hidden and git-ignored entries left out):\n"
    );
    if entries.is_empty() {
        out.push_str("(empty)\n");
    }
    for e in &entries {
        out.push_str(e);
        out.push('\n');
    }
    if more > 0 {
        out.push_str(&format!(
            "[{more} more entries not shown; view a subdirectory or use glob]\n"
        ));
    }
    Ok(truncate_head(
        &out,
        output_cap,
        "[listing truncated; view a subdirectory or use glob]",
    ))
}

fn create(confined: &Confined, raw: &str, text: &str) -> Result<String, String> {
    let path = confined.for_write(raw).map_err(|e| e.to_string())?;
    if path.is_dir() {
        return Err(format!("{raw} is a directory"));
    }
    let existed = path.exists();
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .map_err(|e| format!("cannot create the directories for {raw}: {e}"))?;
        confined
            .recheck_dir(parent, raw)
            .map_err(|e| e.to_string())?;
    }
    write_file(&path, text.as_bytes(), true).map_err(|e| format!("cannot write {raw}: {e}"))?;
    let verb = if existed { "Overwrote" } else { "Created" };
    Ok(format!(
        "{verb} {} ({} lines).",
        confined.display(&path),
        text.lines().count()
    ))
}

fn str_replace(confined: &Confined, raw: &str, old: &str, new: &str) -> Result<String, String> {
    if old.is_empty() {
        return Err("`old_str` is empty; give the exact text to replace (use `insert` or `create` to add text)".into());
    }
    let path = confined.existing(raw).map_err(|e| e.to_string())?;
    let shown = confined.display(&path);
    let text = read_text(&path, &shown)?;

    // Models write `\n`; a file with Windows line endings would never match.
    let crlf = !text.contains(old) && text.contains("\r\n") && !old.contains('\r');
    let (old, new) = if crlf {
        (old.replace('\n', "\r\n"), new.replace('\n', "\r\n"))
    } else {
        (old.to_string(), new.to_string())
    };

    let starts: Vec<usize> = text.match_indices(old.as_str()).map(|(i, _)| i).collect();
    match starts.as_slice() {
        [] => Err(format!(
            "no match for `old_str` in {shown}; it must match the file exactly, including whitespace and indentation (view the file to check)"
        )),
        [at] => {
            let mut edited = String::with_capacity(text.len() + new.len());
            edited.push_str(&text[..*at]);
            edited.push_str(&new);
            edited.push_str(&text[at + old.len()..]);
            write_file(&path, edited.as_bytes(), false)
                .map_err(|e| format!("cannot write {shown}: {e}"))?;
            let first = line_of(&text, *at);
            let last = first + new.matches('\n').count();
            Ok(format!(
                "Edited {shown}. Around the change:\n{}",
                snippet(&edited, first, last)
            ))
        }
        many => {
            let lines: Vec<String> = many
                .iter()
                .map(|i| line_of(&text, *i).to_string())
                .collect();
            Err(format!(
                "`old_str` matched {} times in {shown} (at lines {}); include more surrounding text so it matches exactly once",
                many.len(),
                lines.join(", ")
            ))
        }
    }
}

fn insert(confined: &Confined, raw: &str, after: u64, text: &str) -> Result<String, String> {
    let path = confined.existing(raw).map_err(|e| e.to_string())?;
    let shown = confined.display(&path);
    let original = read_text(&path, &shown)?;
    let lines: Vec<&str> = original.split_inclusive('\n').collect();
    let after = usize::try_from(after)
        .ok()
        .filter(|a| *a <= lines.len())
        .ok_or(format!(
            "`insert_line` {after} is out of range: {shown} has {} lines (0 inserts at the top)",
            lines.len()
        ))?;
    let mut edited = String::with_capacity(original.len() + text.len() + 2);
    for line in &lines[..after] {
        edited.push_str(line);
    }
    if !edited.is_empty() && !edited.ends_with('\n') {
        edited.push('\n');
    }
    edited.push_str(text);
    if !text.ends_with('\n') {
        edited.push('\n');
    }
    for line in &lines[after..] {
        edited.push_str(line);
    }
    write_file(&path, edited.as_bytes(), false)
        .map_err(|e| format!("cannot write {shown}: {e}"))?;
    let first = after + 1;
    let last = after + text.lines().count().max(1);
    Ok(format!(
        "Inserted {} lines after line {after} of {shown}. Around the change:\n{}",
        text.lines().count().max(1),
        snippet(&edited, first, last)
    ))
}

/// The 1-based line number of byte offset `at`.
fn line_of(text: &str, at: usize) -> usize {
    text[..at].matches('\n').count() + 1
}

/// Lines `first..=last` (1-based) with some context, numbered.
fn snippet(text: &str, first: usize, last: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    if lines.is_empty() {
        return "(the file is now empty)\n".into();
    }
    let from = first.saturating_sub(SNIPPET_CONTEXT).max(1);
    let to = (last + SNIPPET_CONTEXT).min(lines.len());
    if from > to {
        return String::new();
    }
    numbered(&lines[from - 1..to], from)
}

/// Read a text file, refusing large and binary files with a useful message.
fn read_text(path: &Path, shown: &str) -> Result<String, String> {
    let mut file = OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NOFOLLOW)
        .open(path)
        .map_err(|e| format!("cannot open {shown}: {e}"))?;
    let meta = file
        .metadata()
        .map_err(|e| format!("cannot stat {shown}: {e}"))?;
    if !meta.is_file() {
        return Err(format!("{shown} is not a regular file"));
    }
    if meta.len() > MAX_FILE_BYTES {
        return Err(format!(
            "{shown} is {} bytes, over the {} byte limit for the editor; use grep, or `head`/`sed -n` in bash",
            meta.len(),
            MAX_FILE_BYTES
        ));
    }
    let mut bytes = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0));
    // `take` guards against a file that grows after the size check.
    (&mut file)
        .take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("cannot read {shown}: {e}"))?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(format!(
            "{shown} is over the {MAX_FILE_BYTES} byte limit for the editor"
        ));
    }
    if bytes.iter().take(8192).any(|b| *b == 0) {
        return Err(format!(
            "{shown} looks like a binary file; the editor only handles text"
        ));
    }
    String::from_utf8(bytes)
        .map_err(|_| format!("{shown} is not valid UTF-8 text; the editor only handles UTF-8"))
}

/// Write the whole file, never following a symlink at the last component.
fn write_file(path: &Path, bytes: &[u8], create: bool) -> std::io::Result<()> {
    let mut file = OpenOptions::new()
        .write(true)
        .truncate(true)
        .create(create)
        .custom_flags(nix::libc::O_NOFOLLOW)
        .open(path)?;
    file.write_all(bytes)?;
    file.flush()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    struct Fx {
        _dir: tempfile::TempDir,
        _outside: tempfile::TempDir,
        root: std::path::PathBuf,
        outside: std::path::PathBuf,
        confined: Confined,
    }

    fn fx() -> Fx {
        let dir = tempfile::tempdir().expect("tempdir");
        let outside_dir = tempfile::tempdir().expect("tempdir");
        let confined = Confined::new(dir.path().to_path_buf());
        let root = confined.root().to_path_buf();
        let outside = std::fs::canonicalize(outside_dir.path()).expect("canon");
        std::fs::write(outside.join("secret.txt"), "top secret\n").expect("write");
        Fx {
            _dir: dir,
            _outside: outside_dir,
            root,
            outside,
            confined,
        }
    }

    fn input(json: serde_json::Value) -> EditorInput {
        serde_json::from_value(json).expect("valid input")
    }

    fn ed(f: &Fx, json: serde_json::Value) -> Result<String, String> {
        run(&f.confined, input(json), 30_000)
    }

    #[test]
    fn view_numbers_lines_and_honours_the_range() {
        let f = fx();
        std::fs::write(f.root.join("a.txt"), "one\ntwo\nthree\nfour\n").expect("write");
        let all = ed(&f, serde_json::json!({"command": "view", "path": "a.txt"})).expect("view");
        assert_eq!(
            all,
            "     1\tone\n     2\ttwo\n     3\tthree\n     4\tfour\n"
        );
        let some = ed(
            &f,
            serde_json::json!({"command": "view", "path": "a.txt", "view_range": [2, 3]}),
        )
        .expect("range");
        assert_eq!(some, "     2\ttwo\n     3\tthree\n");
        let tail = ed(
            &f,
            serde_json::json!({"command": "view", "path": "a.txt", "view_range": [3, -1]}),
        )
        .expect("to end");
        assert_eq!(tail, "     3\tthree\n     4\tfour\n");
        let bad = ed(
            &f,
            serde_json::json!({"command": "view", "path": "a.txt", "view_range": [9, 10]}),
        )
        .expect_err("out of range");
        assert!(bad.contains("has 4 lines"), "{bad}");
    }

    #[test]
    fn view_caps_long_output() {
        let f = fx();
        let text: String = (1..=1000).map(|i| format!("line {i}\n")).collect();
        std::fs::write(f.root.join("big.txt"), text).expect("write");
        let out = run(
            &f.confined,
            input(serde_json::json!({"command": "view", "path": "big.txt"})),
            200,
        )
        .expect("view");
        assert!(out.starts_with("     1\tline 1\n"), "{out}");
        assert!(out.contains("has 1000 lines"), "{out}");
        assert!(!out.contains("line 1000"), "{out}");
    }

    #[test]
    fn view_refuses_binary_and_huge_files() {
        let f = fx();
        std::fs::write(f.root.join("bin"), b"\x7fELF\0\0\x01").expect("write");
        let err =
            ed(&f, serde_json::json!({"command": "view", "path": "bin"})).expect_err("binary");
        assert!(err.contains("binary"), "{err}");
        let big = std::fs::File::create(f.root.join("huge")).expect("create");
        big.set_len(MAX_FILE_BYTES + 1).expect("grow");
        let err = ed(&f, serde_json::json!({"command": "view", "path": "huge"})).expect_err("huge");
        assert!(err.contains("limit"), "{err}");
    }

    #[test]
    fn view_lists_a_directory_without_hidden_or_ignored_entries() {
        let f = fx();
        std::fs::create_dir_all(f.root.join("src/deep/deeper")).expect("mkdir");
        std::fs::create_dir_all(f.root.join("target")).expect("mkdir");
        std::fs::write(f.root.join("src/lib.rs"), "").expect("write");
        std::fs::write(f.root.join("src/deep/deeper/x.rs"), "").expect("write");
        std::fs::write(f.root.join(".gitignore"), "target/\n").expect("write");
        std::fs::write(f.root.join(".env"), "SECRET=1").expect("write");
        std::fs::write(f.root.join("target/out.bin"), "").expect("write");
        let out = ed(&f, serde_json::json!({"command": "view", "path": "."})).expect("list");
        let listed: Vec<&str> = out.lines().skip(1).collect();
        assert_eq!(listed, ["src/", "src/deep/", "src/lib.rs"]);
    }

    #[test]
    fn create_makes_parents_and_overwrites() {
        let f = fx();
        let out = ed(
            &f,
            serde_json::json!({"command": "create", "path": "new/dir/f.txt", "file_text": "hi\n"}),
        )
        .expect("create");
        assert!(out.starts_with("Created new/dir/f.txt"), "{out}");
        assert_eq!(
            std::fs::read_to_string(f.root.join("new/dir/f.txt")).expect("read"),
            "hi\n"
        );
        let out = ed(
            &f,
            serde_json::json!({"command": "create", "path": "new/dir/f.txt", "file_text": "bye\n"}),
        )
        .expect("overwrite");
        assert!(out.starts_with("Overwrote"), "{out}");
        assert_eq!(
            std::fs::read_to_string(f.root.join("new/dir/f.txt")).expect("read"),
            "bye\n"
        );
    }

    #[test]
    fn str_replace_replaces_exactly_one_match() {
        let f = fx();
        std::fs::write(f.root.join("a.rs"), "fn a() {}\nfn b() {}\n").expect("write");
        let out = ed(&f, serde_json::json!({"command": "str_replace", "path": "a.rs", "old_str": "fn b() {}", "new_str": "fn c() {}"}))
            .expect("replace");
        assert!(out.contains("     2\tfn c() {}"), "{out}");
        assert_eq!(
            std::fs::read_to_string(f.root.join("a.rs")).expect("read"),
            "fn a() {}\nfn c() {}\n"
        );
    }

    #[test]
    fn str_replace_with_no_match_or_two_matches_changes_nothing() {
        let f = fx();
        let original = "x = 1\ny = 2\nx = 1\n";
        std::fs::write(f.root.join("a.py"), original).expect("write");
        let err = ed(&f, serde_json::json!({"command": "str_replace", "path": "a.py", "old_str": "z = 3", "new_str": ""}))
            .expect_err("no match");
        assert!(err.contains("no match"), "{err}");
        let err = ed(&f, serde_json::json!({"command": "str_replace", "path": "a.py", "old_str": "x = 1", "new_str": "x = 9"}))
            .expect_err("two matches");
        assert!(err.contains("matched 2 times"), "{err}");
        assert!(err.contains("lines 1, 3"), "{err}");
        assert_eq!(
            std::fs::read_to_string(f.root.join("a.py")).expect("read"),
            original
        );
    }

    #[test]
    fn str_replace_handles_crlf_files() {
        let f = fx();
        std::fs::write(f.root.join("w.txt"), "a\r\nb\r\nc\r\n").expect("write");
        ed(&f, serde_json::json!({"command": "str_replace", "path": "w.txt", "old_str": "a\nb", "new_str": "a\nB"}))
            .expect("replace");
        assert_eq!(
            std::fs::read_to_string(f.root.join("w.txt")).expect("read"),
            "a\r\nB\r\nc\r\n"
        );
    }

    #[test]
    fn insert_at_top_middle_and_end() {
        let f = fx();
        std::fs::write(f.root.join("a.txt"), "one\ntwo").expect("write");
        ed(&f, serde_json::json!({"command": "insert", "path": "a.txt", "insert_line": 0, "insert_text": "zero"}))
            .expect("top");
        ed(&f, serde_json::json!({"command": "insert", "path": "a.txt", "insert_line": 2, "insert_text": "one and a half\n"}))
            .expect("middle");
        ed(&f, serde_json::json!({"command": "insert", "path": "a.txt", "insert_line": 4, "new_str": "three"}))
            .expect("end, old field name");
        assert_eq!(
            std::fs::read_to_string(f.root.join("a.txt")).expect("read"),
            "zero\none\none and a half\ntwo\nthree\n"
        );
        let err = ed(&f, serde_json::json!({"command": "insert", "path": "a.txt", "insert_line": 99, "insert_text": "x"}))
            .expect_err("out of range");
        assert!(err.contains("out of range"), "{err}");
    }

    #[test]
    fn paths_outside_are_refused_for_every_command() {
        let f = fx();
        symlink(f.outside.join("secret.txt"), f.root.join("link")).expect("symlink");
        symlink(&f.outside, f.root.join("outdir")).expect("symlink");
        let attempts = [
            serde_json::json!({"command": "view", "path": "../x"}),
            serde_json::json!({"command": "view", "path": "/etc/passwd"}),
            serde_json::json!({"command": "view", "path": "link"}),
            serde_json::json!({"command": "view", "path": "outdir"}),
            serde_json::json!({"command": "view", "path": "outdir/secret.txt"}),
            serde_json::json!({"command": "create", "path": "link", "file_text": "pwned"}),
            serde_json::json!({"command": "create", "path": "outdir/new.txt", "file_text": "pwned"}),
            serde_json::json!({"command": "create", "path": "outdir/sub/new.txt", "file_text": "pwned"}),
            serde_json::json!({"command": "create", "path": "../escape.txt", "file_text": "pwned"}),
            serde_json::json!({"command": "str_replace", "path": "link", "old_str": "top", "new_str": "pwned"}),
            serde_json::json!({"command": "insert", "path": "outdir/secret.txt", "insert_line": 0, "insert_text": "pwned"}),
        ];
        for attempt in attempts {
            let err = ed(&f, attempt.clone()).expect_err("refused");
            assert!(err.contains("outside the checkout"), "{attempt}: {err}");
        }
        assert_eq!(
            std::fs::read_to_string(f.outside.join("secret.txt")).expect("read"),
            "top secret\n"
        );
        assert!(!f.outside.join("new.txt").exists());
        assert!(!f.outside.join("sub").exists());
    }

    #[test]
    fn write_does_not_follow_a_symlink_swapped_in_late() {
        let f = fx();
        symlink(f.outside.join("secret.txt"), f.root.join("late")).expect("symlink");
        let err = write_file(&f.root.join("late"), b"pwned", true).expect_err("nofollow");
        assert_eq!(err.raw_os_error(), Some(nix::libc::ELOOP));
        assert_eq!(
            std::fs::read_to_string(f.outside.join("secret.txt")).expect("read"),
            "top secret\n"
        );
    }

    #[test]
    fn bad_input_is_an_error_not_a_panic() {
        let f = fx();
        assert!(ed(&f, serde_json::json!({"command": "create", "path": "x"})).is_err());
        assert!(
            ed(
                &f,
                serde_json::json!({"command": "str_replace", "path": "x", "old_str": ""})
            )
            .is_err()
        );
        assert!(
            ed(
                &f,
                serde_json::json!({"command": "frobnicate", "path": "x"})
            )
            .is_err()
        );
        assert!(
            ed(
                &f,
                serde_json::json!({"command": "view", "path": "missing"})
            )
            .is_err()
        );
    }

    proptest::proptest! {
        /// Arbitrary edits never panic; a successful `str_replace` changes
        /// exactly one occurrence and a successful `insert` keeps every
        /// original line.
        #[test]
        fn edits_are_exact_and_never_panic(
            text in "(?s)[ab\n\r]{0,40}",
            old in "[ab\n]{0,4}",
            new in "[xy\n]{0,4}",
            start in proptest::num::i64::ANY,
            end in proptest::num::i64::ANY,
            line in 0u64..50,
        ) {
            let f = fx();
            let file = f.root.join("p.txt");
            std::fs::write(&file, &text).expect("write");
            let _ = ed(&f, serde_json::json!({"command": "view", "path": "p.txt", "view_range": [start, end]}));
            let replaced = ed(&f, serde_json::json!({"command": "str_replace", "path": "p.txt", "old_str": old, "new_str": new}));
            let after = std::fs::read_to_string(&file).expect("read");
            match replaced {
                Ok(_) => {
                    // Without an exact match, the CRLF form is what was replaced.
                    let (o, n) = if text.contains(old.as_str()) {
                        (old.clone(), new.clone())
                    } else {
                        (old.replace('\n', "\r\n"), new.replace('\n', "\r\n"))
                    };
                    proptest::prop_assert_eq!(text.matches(o.as_str()).count(), 1);
                    proptest::prop_assert_eq!(after.len() + o.len(), text.len() + n.len());
                }
                Err(_) => proptest::prop_assert_eq!(&after, &text),
            }
            let before = after;
            let inserted = ed(&f, serde_json::json!({"command": "insert", "path": "p.txt", "insert_line": line, "insert_text": "zz"}));
            let after = std::fs::read_to_string(&file).expect("read");
            match inserted {
                Ok(_) => {
                    proptest::prop_assert!(after.lines().any(|l| l == "zz"));
                    let mut without: Vec<&str> = after.split_inclusive('\n').collect();
                    let at = usize::try_from(line).expect("small");
                    proptest::prop_assert_eq!(without.remove(at), "zz\n");
                    let rebuilt: String = without.concat();
                    proptest::prop_assert_eq!(rebuilt.trim_end_matches('\n'), before.trim_end_matches('\n'));
                }
                Err(_) => proptest::prop_assert_eq!(&after, &before),
            }
        }
    }
}
