//! Logging for every node: `RUST_LOG` filters what reaches standard error
//! (env_logger), and `--log-file` keeps the node's own transcript: every
//! info-or-higher line with a wall-clock timestamp, which `peerloop test
//! --logs` merges across machines into one transcript per scenario.

use log::{Level, LevelFilter, Log, Metadata, Record};
use std::fs::File;
use std::io::{BufWriter, Write};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

struct NodeLogger {
    stderr: env_logger::Logger,
    file: Option<Mutex<BufWriter<File>>>,
}

impl Log for NodeLogger {
    fn enabled(&self, metadata: &Metadata) -> bool {
        self.stderr.enabled(metadata) || (self.file.is_some() && metadata.level() <= Level::Info)
    }

    fn log(&self, record: &Record) {
        if self.stderr.matches(record) {
            self.stderr.log(record);
        }
        if let Some(file) = &self.file {
            if record.level() <= Level::Info {
                let micros = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map(|d| d.as_micros())
                    .unwrap_or(0);
                if let Ok(mut file) = file.lock() {
                    // One line per record; the timestamp lets transcripts interleave machines.
                    let text = record.args().to_string().replace('\n', "\\n");
                    let _ = writeln!(file, "{micros} {text}");
                    let _ = file.flush();
                }
            }
        }
    }

    fn flush(&self) {
        if let Some(file) = &self.file {
            if let Ok(mut file) = file.lock() {
                let _ = file.flush();
            }
        }
    }
}

/// Install the logger. A log file that can't be created is an error the
/// caller reports; logging twice in one process is ignored (tests).
pub fn init(log_file: Option<&str>) -> Result<(), String> {
    let stderr =
        env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).build();
    let file = match log_file {
        Some(path) => Some(Mutex::new(BufWriter::new(File::create(path).map_err(
            |e| {
                format!(
                    "cannot create log file {path}: {}",
                    crate::cli_words::io_error(&e)
                )
            },
        )?))),
        None => None,
    };
    let mut max = stderr.filter();
    if file.is_some() && max < LevelFilter::Info {
        max = LevelFilter::Info;
    }
    if log::set_boxed_logger(Box::new(NodeLogger { stderr, file })).is_ok() {
        log::set_max_level(max);
    }
    Ok(())
}

/// Split a transcript line written by this logger into (micros, text).
pub fn parse_line(line: &str) -> Option<(u128, &str)> {
    let (stamp, text) = line.split_once(' ')?;
    Some((stamp.parse().ok()?, text))
}

mod repeat;
pub use repeat::RepeatedWarning;
