//! The one command-line layer every `peerloop` command is built on
//! (getopts underneath): parsing with `--help`, how a mistake is said and
//! which exit code it gives ([`Failure`]), required options, number options
//! in words ([`crate::cli_words::number_in_range`]), addresses
//! ([`address`]) and the node start-up sequence ([`node`]).
//!
//! Exit codes: 0 done (or `--help`), 2 a mistake in the arguments
//! ([`Failure::Usage`]), 1 running failed ([`Failure::Runtime`]); a command
//! that has its own meaning for a code (`dht get`: 1 is "not found") returns
//! it as `Ok(code)`.

pub mod address;
pub mod node;

use crate::cli_words::number_in_range;
use getopts::{Matches, Options};
use std::fmt::Display;
use std::str::FromStr;

/// Why a command stops early.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// A mistake in the arguments: one line, exit 2.
    Usage(String),
    /// A mistake in the arguments, then a blank line and the command's
    /// usage: exit 2.
    UsageWithHelp(String),
    /// Running failed: one line, exit 1.
    Runtime(String),
}

impl Failure {
    pub fn code(&self) -> u8 {
        match self {
            Failure::Usage(_) | Failure::UsageWithHelp(_) => 2,
            Failure::Runtime(_) => 1,
        }
    }

    pub fn message(&self) -> &str {
        match self {
            Failure::Usage(m) | Failure::UsageWithHelp(m) | Failure::Runtime(m) => m,
        }
    }

    /// The same words as a usage mistake: for commands (BPCon's) that say
    /// every refusal to start with exit 2.
    pub fn as_usage(self) -> Failure {
        match self {
            Failure::Runtime(m) => Failure::Usage(m),
            other => other,
        }
    }
}

/// `Err(String)` from a parser as a [`Failure::Usage`] (`?` in a command).
pub fn usage_error<T>(result: Result<T, String>) -> Result<T, Failure> {
    result.map_err(Failure::Usage)
}

/// `Err(String)` as a [`Failure::Runtime`].
pub fn runtime_error<T>(result: Result<T, String>) -> Result<T, Failure> {
    result.map_err(Failure::Runtime)
}

/// How a getopts error (an unknown option, a missing value) is said. Each
/// command keeps the words its users and scripts have always seen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParseErrors {
    /// `peerloop gossip: Unrecognized option: 'x'`, blank line, usage.
    NamedWithUsage,
    /// `peerloop paxos: Unrecognized option: 'x'` alone (BPCon: one line).
    Named,
    /// `Unrecognized option: 'x'`, blank line, usage (CRC, `test`).
    BareWithUsage,
}

/// What a command does with words that are not options.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FreeWords {
    /// They are the command's own (`dht get KEY`, `propose OP...`).
    Taken,
    /// `unexpected argument 'x'` said as the parse errors are (CRC).
    RefusedAsParseErrors,
    /// `peerloop gossip: unexpected argument 'x'`, one line (gossip).
    Refused,
}

/// A command: its name in errors, its options, its usage text and how it
/// says a parse mistake.
pub struct Command {
    /// What every error line starts with: `peerloop gossip` (CRC's server
    /// and client say just `peerloop`).
    speaker: String,
    opts: Options,
    brief: String,
    parse_errors: ParseErrors,
    free: FreeWords,
}

impl Command {
    /// `speaker` as in [`Command::speaker`]; `brief` is the usage text
    /// above the options, and `opts` must have the `-h`/`--help` flag
    /// (each command places it, and words it, where its help always had it). Parse errors: [`ParseErrors::NamedWithUsage`];
    /// free words: taken.
    pub fn new(speaker: &str, opts: Options, brief: impl Into<String>) -> Command {
        Command {
            speaker: speaker.to_string(),
            opts,
            brief: brief.into(),
            parse_errors: ParseErrors::NamedWithUsage,
            free: FreeWords::Taken,
        }
    }

    /// A command whose parse mistakes and stray words are said bare, with
    /// the usage (CRC's server and client, the benches, the relay).
    pub fn bare(speaker: &str, opts: Options, brief: impl Into<String>) -> Command {
        Command::new(speaker, opts, brief)
            .parse_errors(ParseErrors::BareWithUsage)
            .free_words(FreeWords::RefusedAsParseErrors)
    }

    pub fn parse_errors(mut self, how: ParseErrors) -> Command {
        self.parse_errors = how;
        self
    }

    pub fn free_words(mut self, how: FreeWords) -> Command {
        self.free = how;
        self
    }

    /// The full `--help` text: the brief, then every option.
    pub fn usage(&self) -> String {
        self.opts.usage(&self.brief)
    }

    pub fn speaker(&self) -> &str {
        &self.speaker
    }

    /// `args` parsed. `--help` prints the usage and gives `Err(0)`; a
    /// mistake is said (see [`ParseErrors`], [`FreeWords`]) and gives
    /// `Err(2)`.
    pub fn parse(&self, args: &[String]) -> Result<Matches, u8> {
        let matches = match self.opts.parse(args) {
            Ok(m) => m,
            Err(e) => {
                eprint!("{}", self.parse_error_text(&e.to_string()));
                return Err(2);
            }
        };
        if matches.opt_present("help") {
            print!("{}", self.usage());
            return Err(0);
        }
        if let Some(extra) = matches.free.first() {
            let error = format!("unexpected argument '{extra}'");
            match self.free {
                FreeWords::Taken => {}
                FreeWords::RefusedAsParseErrors => {
                    eprint!("{}", self.parse_error_text(&error));
                    return Err(2);
                }
                FreeWords::Refused => {
                    eprintln!("{}: {error}", self.speaker);
                    return Err(2);
                }
            }
        }
        Ok(matches)
    }

    fn parse_error_text(&self, error: &str) -> String {
        match self.parse_errors {
            ParseErrors::NamedWithUsage => {
                format!("{}: {error}\n\n{}\n", self.speaker, self.usage())
            }
            ParseErrors::Named => format!("{}: {error}\n", self.speaker),
            ParseErrors::BareWithUsage => format!("{error}\n\n{}\n", self.usage()),
        }
    }

    /// Say `failure` (`speaker: message`) and give its exit code.
    pub fn fail(&self, failure: &Failure) -> u8 {
        eprint!("{}", self.failure_text(failure));
        failure.code()
    }

    fn failure_text(&self, failure: &Failure) -> String {
        match failure {
            Failure::UsageWithHelp(m) => format!("{}: {m}\n\n{}\n", self.speaker, self.usage()),
            other => format!("{}: {}\n", self.speaker, other.message()),
        }
    }

    /// The whole life of a command: parse `args` (help and mistakes as in
    /// [`Command::parse`]), then `body`, whose `Ok(code)` is the exit code
    /// and whose failure is said once.
    pub fn run(&self, args: &[String], body: impl FnOnce(&Matches) -> Result<u8, Failure>) -> u8 {
        match self.parse(args) {
            Ok(m) => match body(&m) {
                Ok(code) => code,
                Err(failure) => self.fail(&failure),
            },
            Err(code) => code,
        }
    }
}

/// The value of a required `--name`: "--name is required".
pub fn required(m: &Matches, name: &str) -> Result<String, String> {
    m.opt_str(name)
        .ok_or_else(|| format!("--{name} is required"))
}

/// `--name N` in `min..=max` if given, its error in words ("--degree 0 is
/// out of range (1–1000)", "--seeds 'x' is not a number").
pub fn number<T>(m: &Matches, name: &str, min: T, max: T) -> Result<Option<T>, String>
where
    T: FromStr + PartialOrd + Display + Copy + TryFrom<i128>,
{
    m.opt_str(name)
        .map(|text| number_in_range(&format!("--{name}"), &text, min, max))
        .transpose()
}

/// `--name N` in `min..=max`, or `default` when not given.
pub fn number_or<T>(m: &Matches, name: &str, default: T, min: T, max: T) -> Result<T, String>
where
    T: FromStr + PartialOrd + Display + Copy + TryFrom<i128>,
{
    Ok(number(m, name, min, max)?.unwrap_or(default))
}

/// `--log-file FILE` (if the command has it) installs the logger: every
/// command starts logging right after its arguments parse, so a warning
/// about a configuration file is already written.
pub fn start_logging(m: &Matches) -> Result<(), Failure> {
    let file = m.opt_str("log-file");
    runtime_error(crate::logging::init(file.as_deref()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn command(how: ParseErrors, free: FreeWords) -> Command {
        let mut opts = Options::new();
        opts.optopt("", "port", "a port", "PORT");
        opts.optflag("h", "help", "print this help");
        Command::new("peerloop x", opts, "usage: peerloop x --port PORT")
            .parse_errors(how)
            .free_words(free)
    }

    fn args(words: &[&str]) -> Vec<String> {
        words.iter().map(|w| w.to_string()).collect()
    }

    #[test]
    fn help_exits_0_and_mistakes_exit_2() {
        let c = command(ParseErrors::NamedWithUsage, FreeWords::Taken);
        assert_eq!(c.parse(&args(&["--help"])).unwrap_err(), 0);
        assert_eq!(c.parse(&args(&["-h", "--port", "1"])).unwrap_err(), 0);
        assert_eq!(c.parse(&args(&["--nosuch"])).unwrap_err(), 2);
        assert_eq!(c.parse(&args(&["--port"])).unwrap_err(), 2);
        let m = c.parse(&args(&["--port", "7", "word"])).unwrap();
        assert_eq!(m.free, ["word"]);
        let refused = command(ParseErrors::NamedWithUsage, FreeWords::Refused);
        assert_eq!(refused.parse(&args(&["word"])).unwrap_err(), 2);
        let crc = command(ParseErrors::BareWithUsage, FreeWords::RefusedAsParseErrors);
        assert_eq!(crc.parse(&args(&["word"])).unwrap_err(), 2);
    }

    #[test]
    fn parse_errors_are_said_in_the_commands_way() {
        let usage = command(ParseErrors::Named, FreeWords::Taken).usage();
        assert!(usage.starts_with("usage: peerloop x --port PORT\n\nOptions:"));
        let error = "Unrecognized option: 'q'";
        let text = |how| command(how, FreeWords::Taken).parse_error_text(error);
        assert_eq!(
            text(ParseErrors::NamedWithUsage),
            format!("peerloop x: {error}\n\n{usage}\n")
        );
        assert_eq!(text(ParseErrors::Named), format!("peerloop x: {error}\n"));
        assert_eq!(
            text(ParseErrors::BareWithUsage),
            format!("{error}\n\n{usage}\n")
        );
    }

    #[test]
    fn failures_say_who_speaks_and_give_their_code() {
        let c = command(ParseErrors::Named, FreeWords::Taken);
        let usage = Failure::Usage("--id is required".into());
        assert_eq!(usage.code(), 2);
        assert_eq!(c.failure_text(&usage), "peerloop x: --id is required\n");
        let runtime = Failure::Runtime("cannot listen on 1.2.3.4:5: no".into());
        assert_eq!(runtime.code(), 1);
        assert_eq!(runtime.clone().as_usage().code(), 2);
        let with_help = Failure::UsageWithHelp("which one?".into());
        assert_eq!(with_help.code(), 2);
        assert_eq!(
            c.failure_text(&with_help),
            format!("peerloop x: which one?\n\n{}\n", c.usage())
        );
        assert_eq!(c.run(&args(&["--port", "1"]), |_| Ok(5)), 5);
        assert_eq!(c.run(&args(&[]), |_| Err(runtime)), 1);
        assert_eq!(c.run(&args(&["--help"]), |_| unreachable!()), 0);
    }

    #[test]
    fn required_and_number_options_are_said_in_words() {
        let c = command(ParseErrors::Named, FreeWords::Taken);
        let m = c.parse(&args(&["--port", "99999"])).unwrap();
        assert_eq!(required(&m, "port").unwrap(), "99999");
        assert_eq!(
            number(&m, "port", 1u16, u16::MAX).unwrap_err(),
            "--port 99999 is out of range (1–65535)"
        );
        assert_eq!(number_or(&m, "port", 7u32, 1, 100_000), Ok(99999));
        let none = c.parse(&args(&[])).unwrap();
        assert_eq!(required(&none, "port").unwrap_err(), "--port is required");
        assert_eq!(number(&none, "port", 1u16, 9), Ok(None));
        assert_eq!(number_or(&none, "port", 7u16, 1, 9), Ok(7));
        let bad = c.parse(&args(&["--port", "x"])).unwrap();
        assert_eq!(
            number_or(&bad, "port", 7u16, 1, 9).unwrap_err(),
            "--port 'x' is not a number"
        );
    }
}
