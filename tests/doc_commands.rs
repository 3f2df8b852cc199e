//! The docs' commands must not rot. Every shell command quoted in README.md,
//! docs/*.md and testcases/README.md (```sh blocks, and inline `peerloop …` /
//! `cargo …` spans) is checked against this checkout and this binary:
//!
//! - `peerloop <cmd> …` names a real subcommand (`bench <benchmark>` a real
//!   benchmark), and each of its options is listed by that command's `--help`;
//! - `cargo test --test NAME` names tests/NAME.rs or tests/NAME/main.rs, and
//!   `cargo bench --bench NAME` a bench of Cargo.toml;
//! - every backticked repo path (src/…, tests/…, docs/…, testcases/…,
//!   benches/…) exists, and so does every such path in a command;
//! - what runs offline in seconds does run: each command's `--help`, and
//!   `peerloop keygen` (into a temporary folder).
//!
//! A failure names the file, the line and the command.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};

/// A command or path quoted in a doc, and where.
#[derive(Debug, Clone, PartialEq)]
struct Quote {
    file: String,
    line: usize,
    /// As written (continuations joined, comment dropped).
    text: String,
    /// From a ```sh block (true) or an inline `span` (false).
    in_block: bool,
}

impl Quote {
    fn at(&self) -> String {
        format!("{}:{}: `{}`", self.file, self.line, self.text)
    }
}

/// The docs this test reads, relative to the crate root.
fn doc_files(root: &Path) -> Vec<PathBuf> {
    let mut files = vec![root.join("README.md"), root.join("testcases/README.md")];
    let mut docs: Vec<PathBuf> = std::fs::read_dir(root.join("docs"))
        .map(|d| {
            d.filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "md"))
                .collect()
        })
        .unwrap_or_default();
    docs.sort();
    files.extend(docs);
    files.retain(|f| f.exists());
    files
}

/// Split shell text into words: white space separates, quotes group (and
/// are removed), as a shell would for the plain commands docs show.
fn shell_words(text: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut started = false;
    let mut quote: Option<char> = None;
    for c in text.chars() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), c) => word.push(c),
            (None, '"' | '\'') => {
                quote = Some(c);
                started = true;
            }
            (None, c) if c.is_whitespace() => {
                if started {
                    words.push(std::mem::take(&mut word));
                    started = false;
                }
            }
            (None, c) => {
                word.push(c);
                started = true;
            }
        }
    }
    if started {
        words.push(word);
    }
    words
}

/// Cut a shell line at `#` comments and into its commands at `&&`, `||`,
/// `;` and `|`, outside quotes.
fn shell_commands(line: &str) -> Vec<String> {
    let mut commands = Vec::new();
    let mut current = String::new();
    let mut quote: Option<char> = None;
    let chars: Vec<char> = line.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        match quote {
            Some(q) => {
                if c == q {
                    quote = None;
                }
                current.push(c);
            }
            None => match c {
                '"' | '\'' => {
                    quote = Some(c);
                    current.push(c);
                }
                '#' if current.is_empty() || current.ends_with(char::is_whitespace) => break,
                ';' => commands.push(std::mem::take(&mut current)),
                '&' | '|' => {
                    if chars.get(i + 1) == Some(&c) {
                        i += 1;
                    }
                    commands.push(std::mem::take(&mut current));
                }
                c => current.push(c),
            },
        }
        i += 1;
    }
    commands.push(current);
    commands
        .into_iter()
        .map(|c| {
            let c = c.trim();
            // `for n in …; do CMD; done`: the command is what follows `do`.
            let c = ["do ", "then ", "else "]
                .iter()
                .find_map(|k| c.strip_prefix(k))
                .unwrap_or(c);
            c.trim().to_string()
        })
        .filter(|c| {
            let first = c.split_whitespace().next().unwrap_or("");
            !c.is_empty() && !matches!(first, "for" | "done" | "if" | "fi" | "while" | "then")
        })
        .collect()
}

/// The words of a command without leading `VAR=value` assignments; empty
/// for a bare assignment.
fn command_words(text: &str) -> Vec<String> {
    let mut words = shell_words(text);
    let assignments = words
        .iter()
        .take_while(|w| {
            w.split_once('=').is_some_and(|(name, _)| {
                !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            })
        })
        .count();
    words.drain(..assignments);
    words
}

/// Every ```sh command and every inline span of `doc` (named `file`).
/// Returns (commands, inline spans that are not commands).
fn quotes(file: &str, doc: &str) -> (Vec<Quote>, Vec<Quote>) {
    let mut commands = Vec::new();
    let mut spans = Vec::new();
    let mut fence: Option<bool> = None; // Some(is_shell) inside a fenced block
    let mut pending: Option<(usize, String)> = None; // a line continued with `\`
    let mut prose = String::new();
    let mut prose_lines = Vec::new(); // line number of each char of `prose`
    for (index, line) in doc.lines().enumerate() {
        let number = index + 1;
        if let Some(lang) = line.trim_start().strip_prefix("```") {
            fence = match fence {
                None => Some(matches!(lang.trim(), "sh" | "bash" | "shell" | "console")),
                Some(_) => None,
            };
            continue;
        }
        match fence {
            Some(true) => {
                let (start, mut text) = match pending.take() {
                    Some((start, text)) => (start, text),
                    None => (number, String::new()),
                };
                let line = if text.is_empty() {
                    line
                } else {
                    line.trim_start()
                };
                match line.trim_end().strip_suffix('\\') {
                    Some(head) => {
                        text.push_str(head.trim_end());
                        text.push(' ');
                        pending = Some((start, text));
                    }
                    None => {
                        text.push_str(line);
                        for command in shell_commands(&text) {
                            commands.push(Quote {
                                file: file.into(),
                                line: start,
                                text: command,
                                in_block: true,
                            });
                        }
                    }
                }
            }
            Some(false) => {}
            None => {
                for c in line.chars().chain(std::iter::once('\n')) {
                    prose.push(c);
                    prose_lines.push(number);
                }
            }
        }
    }
    // Inline spans may wrap across lines: scan the prose as one text.
    let chars: Vec<char> = prose.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        if chars[i] != '`' {
            i += 1;
            continue;
        }
        let Some(len) = chars[i + 1..].iter().position(|&c| c == '`') else {
            break;
        };
        let span: String = chars[i + 1..i + 1 + len].iter().collect();
        let span = span.split_whitespace().collect::<Vec<_>>().join(" ");
        let quote = Quote {
            file: file.into(),
            line: prose_lines[i],
            text: span.clone(),
            in_block: false,
        };
        let words = command_words(&span);
        let first = words.first().map(String::as_str).unwrap_or("");
        if (is_peerloop(first) || first == "cargo") && words.len() > 1 {
            commands.push(quote);
        } else {
            spans.push(quote);
        }
        i += len + 2;
    }
    (commands, spans)
}

fn is_peerloop(word: &str) -> bool {
    word == "peerloop" || word.ends_with("/peerloop")
}

/// Does the span look like a path in this repository?
fn repo_path(text: &str) -> Option<&str> {
    let prefixes = ["src/", "tests/", "docs/", "testcases/", "benches/"];
    let text = text.trim_end_matches([',', '.', ':', ')']);
    (prefixes.iter().any(|p| text.starts_with(p))
        && !text.contains(char::is_whitespace)
        && !text.contains(['<', '>', '{', '$']))
    .then_some(text)
}

/// Does `path` (maybe with one `*` in its last part) exist under `root`?
fn path_exists(root: &Path, path: &str) -> bool {
    let Some((dir, pattern)) = path.rsplit_once('/').filter(|_| path.contains('*')) else {
        return root.join(path).exists();
    };
    let (head, tail) = pattern.split_once('*').unwrap_or((pattern, ""));
    std::fs::read_dir(root.join(dir))
        .map(|entries| {
            entries.filter_map(|e| e.ok()).any(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                name.starts_with(head)
                    && name.ends_with(tail)
                    && name.len() >= head.len() + tail.len()
            })
        })
        .unwrap_or(false)
}

/// Is `option` (`--jobs`, `-c`) listed in `help` as a whole word?
fn help_lists(help: &str, option: &str) -> bool {
    let part = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_';
    help.match_indices(option).any(|(at, _)| {
        let before = help[..at].chars().next_back();
        let after = help[at + option.len()..].chars().next();
        !before.is_some_and(part) && !after.is_some_and(part)
    })
}

/// The option a doc word stands for: `[--jobs` → `--jobs`, `--ttl=5` → `--ttl`.
fn option_of(word: &str) -> Option<&str> {
    let word = word
        .trim_start_matches('[')
        .trim_end_matches([']', ',', '.']);
    let word = word.split_once('=').map_or(word, |(name, _)| name);
    let is_option = word.starts_with('-')
        && word.len() > 1
        && word != "--"
        && word[1..]
            .chars()
            .next()
            .is_some_and(|c| c == '-' || c.is_ascii_alphabetic());
    is_option.then_some(word)
}

/// The binary under test, run with `args` (stdin empty): (exit code, stdout, stderr).
fn peerloop(args: &[&str]) -> (Option<i32>, String, String) {
    let output = Command::new(common::BIN)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run peerloop");
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// The first word of each entry listed under `heading` in a help text.
fn listed(help: &str, heading: &str) -> BTreeSet<String> {
    help.lines()
        .skip_while(|l| l.trim() != heading)
        .skip(1)
        .take_while(|l| l.starts_with("  ") || l.trim().is_empty())
        .filter(|l| l.starts_with("  ") && !l.starts_with("     "))
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .collect()
}

/// Names of `[[bench]]` targets in Cargo.toml, and files in benches/.
fn bench_names(root: &Path) -> BTreeSet<String> {
    let toml = std::fs::read_to_string(root.join("Cargo.toml")).unwrap_or_default();
    let mut names = BTreeSet::new();
    let mut in_bench = false;
    for line in toml.lines() {
        let line = line.trim();
        if line.starts_with('[') {
            in_bench = line == "[[bench]]";
        } else if in_bench {
            if let Some(name) = line.strip_prefix("name").map(str::trim) {
                if let Some(name) = name.strip_prefix('=') {
                    names.insert(name.trim().trim_matches('"').to_string());
                }
            }
        }
    }
    if let Ok(entries) = std::fs::read_dir(root.join("benches")) {
        for entry in entries.filter_map(|e| e.ok()) {
            if let Some(stem) = entry.path().file_stem() {
                names.insert(stem.to_string_lossy().into_owned());
            }
        }
    }
    names
}

/// Checks commands against the binary; caches each `--help`.
struct Checker {
    root: PathBuf,
    commands: BTreeSet<String>,
    benches: BTreeSet<String>,
    helps: BTreeMap<String, Result<String, String>>,
    keygen_dir: PathBuf,
    keygens_run: BTreeSet<String>,
}

impl Checker {
    fn new(root: &Path) -> Checker {
        let (_, top, _) = peerloop(&["--help"]);
        let (_, bench, _) = peerloop(&["bench", "--help"]);
        // One folder per checker: tests run side by side, and each removes its own.
        static CHECKERS: AtomicUsize = AtomicUsize::new(0);
        let keygen_dir = std::env::temp_dir().join(format!(
            "peerloop-doc-keys-{}-{}",
            std::process::id(),
            CHECKERS.fetch_add(1, Ordering::Relaxed)
        ));
        Checker {
            root: root.to_path_buf(),
            commands: listed(&top, "commands:"),
            benches: listed(&bench, "benchmarks:"),
            helps: BTreeMap::new(),
            keygen_dir,
            keygens_run: BTreeSet::new(),
        }
    }

    /// `peerloop <command...> --help`: its output, or why it failed.
    fn help(&mut self, command: &[&str]) -> Result<String, String> {
        let key = command.join(" ");
        if let Some(help) = self.helps.get(&key) {
            return help.clone();
        }
        let mut args = command.to_vec();
        args.push("--help");
        let (code, out, err) = peerloop(&args);
        let help = match code {
            Some(0) if !out.is_empty() => Ok(out),
            _ => Err(format!(
                "`peerloop {key} --help` exits {code:?} (stderr: {})",
                err.trim()
            )),
        };
        self.helps.insert(key, help.clone());
        help
    }

    /// Problems with one quoted command, each naming where it is.
    fn check(&mut self, quote: &Quote) -> Vec<String> {
        let words = command_words(&quote.text);
        let Some(first) = words.first() else {
            return Vec::new();
        };
        let mut problems = Vec::new();
        for word in &words[1..] {
            if let Some(path) = repo_path(word) {
                if !path_exists(&self.root, path) {
                    problems.push(format!("{}: {path} does not exist", quote.at()));
                }
            }
        }
        if is_peerloop(first) {
            problems.extend(self.check_peerloop(quote, &words));
        } else if first == "cargo" {
            problems.extend(self.check_cargo(quote, &words));
        }
        problems
    }

    fn check_peerloop(&mut self, quote: &Quote, words: &[String]) -> Vec<String> {
        let Some(sub) = words.get(1).map(String::as_str) else {
            return Vec::new();
        };
        if sub.starts_with('<') || sub.starts_with('[') {
            return Vec::new(); // `peerloop <command> --help`: a placeholder
        }
        if sub.ends_with(':') || sub == "/" {
            // A message the binary prints (`peerloop gossip: cannot listen …`)
            // or prose (`peerloop / ceiling`), not a command line.
            return Vec::new();
        }
        if let Some(option) = option_of(sub) {
            let top = self.help(&[]);
            return match top {
                Ok(help) if help_lists(&help, option) || option == "--help" => Vec::new(),
                _ => vec![format!(
                    "{}: `peerloop --help` does not list {option}",
                    quote.at()
                )],
            };
        }
        if !self.commands.contains(sub) {
            return vec![format!(
                "{}: `{sub}` is not a peerloop command (commands: {})",
                quote.at(),
                self.commands.iter().cloned().collect::<Vec<_>>().join(", ")
            )];
        }
        let mut command = vec![sub.to_string()];
        let mut rest = &words[2..];
        if sub == "bench" {
            match rest.first().map(String::as_str) {
                Some(p) if self.benches.contains(p) => {
                    command.push(p.to_string());
                    rest = &rest[1..];
                }
                Some(p) if !p.starts_with('-') && !p.starts_with('<') => {
                    return vec![format!(
                        "{}: `{p}` is not a benchmark (benchmarks: {})",
                        quote.at(),
                        self.benches.iter().cloned().collect::<Vec<_>>().join(", ")
                    )];
                }
                _ => {}
            }
        }
        let command: Vec<&str> = command.iter().map(String::as_str).collect();
        let help = match self.help(&command) {
            Ok(help) => help,
            Err(e) => return vec![format!("{}: {e}", quote.at())],
        };
        let mut problems = Vec::new();
        for word in rest {
            if word == "--" {
                break;
            }
            if let Some(option) = option_of(word) {
                if !help_lists(&help, option) {
                    problems.push(format!(
                        "{}: {option} is not an option of `peerloop {}` (not in its --help)",
                        quote.at(),
                        command.join(" ")
                    ));
                }
            }
        }
        if sub == "keygen" && quote.in_block && problems.is_empty() {
            problems.extend(self.run_keygen(quote, rest));
        }
        problems
    }

    /// Run a quoted `peerloop keygen` for real, its --out in a temporary
    /// folder and shell variables given a value.
    fn run_keygen(&mut self, quote: &Quote, rest: &[String]) -> Vec<String> {
        if !self.keygens_run.insert(quote.text.clone()) {
            return Vec::new();
        }
        // A fresh folder for each, as `keys` is in a fresh checkout (keygen makes it).
        let _ = std::fs::create_dir_all(&self.keygen_dir);
        let out_dir = self.keygen_dir.join(self.keygens_run.len().to_string());
        let mut args = vec!["keygen".to_string()];
        let mut name = None;
        let mut words = rest.iter();
        while let Some(word) = words.next() {
            let word = if word.starts_with('$') { "A" } else { word };
            args.push(word.to_string());
            match word {
                "--out" => {
                    words.next();
                    args.push(out_dir.to_string_lossy().into_owned());
                }
                "--name" => {
                    let value = words
                        .next()
                        .map(|v| if v.starts_with('$') { "A" } else { v });
                    name = value.map(str::to_string);
                    args.push(name.clone().unwrap_or_default());
                }
                _ => {}
            }
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let (code, _, err) = peerloop(&args);
        let key = out_dir.join(format!("{}.pem", name.unwrap_or_default()));
        if code != Some(0) {
            vec![format!(
                "{}: run as `peerloop {}` it exits {code:?}: {}",
                quote.at(),
                args.join(" "),
                err.trim()
            )]
        } else if !key.exists() {
            vec![format!(
                "{}: run as `peerloop {}` it wrote no {}",
                quote.at(),
                args.join(" "),
                key.display()
            )]
        } else {
            Vec::new()
        }
    }

    fn check_cargo(&mut self, quote: &Quote, words: &[String]) -> Vec<String> {
        let known = [
            "build", "test", "bench", "run", "install", "fmt", "clippy", "doc", "check",
        ];
        let Some(sub) = words.get(1).map(String::as_str) else {
            return Vec::new();
        };
        if !known.contains(&sub) {
            return vec![format!(
                "{}: `cargo {sub}` is not a cargo command",
                quote.at()
            )];
        }
        let mut problems = Vec::new();
        let target = |flag: &str| {
            words
                .iter()
                .position(|w| w == flag)
                .and_then(|i| words.get(i + 1))
                .cloned()
        };
        if let Some(name) = target("--test") {
            let root = &self.root;
            if !root.join(format!("tests/{name}.rs")).exists()
                && !root.join(format!("tests/{name}/main.rs")).exists()
            {
                problems.push(format!(
                    "{}: there is no test target {name} (tests/{name}.rs or tests/{name}/main.rs)",
                    quote.at()
                ));
            }
        }
        if let Some(name) = target("--bench") {
            if !self.benches_of_cargo().contains(&name) {
                problems.push(format!(
                    "{}: there is no bench target {name} in Cargo.toml",
                    quote.at()
                ));
            }
        }
        problems
    }

    fn benches_of_cargo(&self) -> BTreeSet<String> {
        bench_names(&self.root)
    }
}

impl Drop for Checker {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.keygen_dir);
    }
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn every_command_and_path_the_docs_quote_is_real() {
    let root = root();
    let mut checker = Checker::new(&root);
    assert!(
        checker.commands.contains("server"),
        "{:?}",
        checker.commands
    );
    let mut problems = Vec::new();
    let mut checked = 0;
    for path in doc_files(&root) {
        let name = path
            .strip_prefix(&root)
            .unwrap_or(&path)
            .display()
            .to_string();
        let doc = std::fs::read_to_string(&path).unwrap();
        let (commands, spans) = quotes(&name, &doc);
        for quote in &commands {
            checked += 1;
            problems.extend(checker.check(quote));
        }
        for span in &spans {
            if let Some(p) = repo_path(&span.text) {
                checked += 1;
                if !path_exists(&root, p) {
                    problems.push(format!("{}: {p} does not exist", span.at()));
                }
            }
        }
    }
    assert!(checked > 50, "only {checked} commands and paths found");
    assert!(
        problems.is_empty(),
        "{} stale command(s) or path(s) in the docs:\n{}",
        problems.len(),
        problems.join("\n")
    );
}

#[test]
fn the_help_of_every_command_the_docs_name_runs() {
    // Every subcommand, and every benchmark: `--help` exits 0 with text.
    let mut checker = Checker::new(&root());
    let commands: Vec<String> = checker.commands.iter().cloned().collect();
    let benches: Vec<String> = checker.benches.iter().cloned().collect();
    assert!(commands.len() >= 12 && benches.len() >= 4);
    let mut problems = Vec::new();
    for command in &commands {
        if let Err(e) = checker.help(&[command]) {
            problems.push(e);
        }
    }
    for bench in &benches {
        if let Err(e) = checker.help(&["bench", bench]) {
            problems.push(e);
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

// The checker itself: it finds what the docs hold, and it can fail.

const SAMPLE: &str = "# Title

Run `peerloop chord --listen ADDR --bogus` or `cargo test --test nosuch`;
see `src/nosuch.rs` and `tests/common/mod.rs`, a span
`peerloop test
--jobs 2` across lines.

```sh
for n in A B; do peerloop keygen --name $n --out keys; done   # keys/N.pem
P=A=1,B=2
RUST_LOG=debug peerloop server --id 1 --servername a --port 0 \\
    --info \"x y\" --frob   # comment --notchecked
cargo build --release && ./target/release/peerloop test --jobs 2 testcases/nosuch
```

```json
{\"peerloop\": \"not a command\"}
```
";

#[test]
fn the_extractor_finds_block_and_inline_commands_with_their_lines() {
    let (commands, spans) = quotes("X.md", SAMPLE);
    let found: Vec<(usize, &str, bool)> = commands
        .iter()
        .map(|q| (q.line, q.text.as_str(), q.in_block))
        .collect();
    assert_eq!(
        found,
        [
            (9, "peerloop keygen --name $n --out keys", true),
            (10, "P=A=1,B=2", true),
            (
                11,
                "RUST_LOG=debug peerloop server --id 1 --servername a --port 0 --info \"x y\" --frob",
                true
            ),
            (13, "cargo build --release", true),
            (13, "./target/release/peerloop test --jobs 2 testcases/nosuch", true),
            (3, "peerloop chord --listen ADDR --bogus", false),
            (3, "cargo test --test nosuch", false),
            (5, "peerloop test --jobs 2", false),
        ]
    );
    let paths: Vec<&str> = spans.iter().filter_map(|s| repo_path(&s.text)).collect();
    assert_eq!(paths, ["src/nosuch.rs", "tests/common/mod.rs"]);
    assert_eq!(spans[0].line, 4);
    assert_eq!(command_words(found[2].1), {
        let w: Vec<String> = [
            "peerloop",
            "server",
            "--id",
            "1",
            "--servername",
            "a",
            "--port",
            "0",
            "--info",
            "x y",
            "--frob",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        w
    });
    assert!(command_words("P=A=1,B=2").is_empty());
}

#[test]
fn the_checker_names_file_line_and_command_of_each_stale_quote() {
    let root = root();
    let mut checker = Checker::new(&root);
    let (commands, spans) = quotes("X.md", SAMPLE);
    let mut problems: Vec<String> = commands.iter().flat_map(|q| checker.check(q)).collect();
    problems.extend(
        spans
            .iter()
            .filter_map(|s| repo_path(&s.text).map(|p| (s, p)))
            .filter(|(_, p)| !path_exists(&root, p))
            .map(|(s, p)| format!("{}: {p} does not exist", s.at())),
    );
    assert_eq!(
        problems,
        [
            "X.md:11: `RUST_LOG=debug peerloop server --id 1 --servername a --port 0 --info \"x y\" --frob`: --frob is not an option of `peerloop server` (not in its --help)",
            "X.md:13: `./target/release/peerloop test --jobs 2 testcases/nosuch`: testcases/nosuch does not exist",
            "X.md:3: `peerloop chord --listen ADDR --bogus`: --bogus is not an option of `peerloop chord` (not in its --help)",
            "X.md:3: `cargo test --test nosuch`: there is no test target nosuch (tests/nosuch.rs or tests/nosuch/main.rs)",
            "X.md:4: `src/nosuch.rs`: src/nosuch.rs does not exist",
        ]
    );
    // The keygen line ran for real, into a temporary folder.
    assert_eq!(checker.keygens_run.len(), 1);
    let (commands, _) = quotes(
        "Y.md",
        "`peerloop chrod --join X` and `peerloop bench nosuch`\n",
    );
    let problems: Vec<String> = commands.iter().flat_map(|q| checker.check(q)).collect();
    assert_eq!(problems.len(), 2, "{problems:?}");
    assert!(problems[0].starts_with(
        "Y.md:1: `peerloop chrod --join X`: `chrod` is not a peerloop command (commands: "
    ));
    assert!(problems[1].starts_with("Y.md:1: `peerloop bench nosuch`: `nosuch` is not a benchmark"));
    assert!(path_exists(&root, "testcases/crc/*.cfg"));
    assert!(!path_exists(&root, "testcases/crc/*.nope"));
}
