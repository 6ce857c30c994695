//! History file formats: Stasis JSONL, Jepsen EDN, Porcupine's etcd logs and kv logs.
//! [`load`] detects the format unless told; every error is one line, `file:line: message`.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::history::{self, HistoryError, Op, TimeUnit};
use crate::model::ModelKind;

pub mod edn;
pub mod porcupine;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Jsonl,
    JepsenEdn,
    PorcupineEtcdLog,
    PorcupineKvEdn,
}

impl Format {
    pub const ALL: [Format; 4] = [
        Format::Jsonl,
        Format::JepsenEdn,
        Format::PorcupineEtcdLog,
        Format::PorcupineKvEdn,
    ];

    pub fn id(self) -> &'static str {
        match self {
            Format::Jsonl => "jsonl",
            Format::JepsenEdn => "jepsen-edn",
            Format::PorcupineEtcdLog => "porcupine-etcd-log",
            Format::PorcupineKvEdn => "porcupine-kv-edn",
        }
    }

    pub fn from_id(id: &str) -> Option<Format> {
        Format::ALL.into_iter().find(|f| f.id() == id)
    }

    /// The model a history in this format is checked against unless told otherwise.
    pub fn default_model(self) -> ModelKind {
        match self {
            Format::Jsonl => ModelKind::Kv,
            Format::JepsenEdn => ModelKind::CasRegister,
            Format::PorcupineEtcdLog => ModelKind::PorcupineEtcd,
            Format::PorcupineKvEdn => ModelKind::PorcupineKv,
        }
    }

    pub fn time_unit(self) -> TimeUnit {
        match self {
            Format::Jsonl => TimeUnit::Nanos,
            _ => TimeUnit::Events,
        }
    }
}

/// A history that could not be loaded: one line, `file[:line]: message`.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error(transparent)]
    History(#[from] HistoryError),
    #[error("{}: {message}", path.display())]
    File { path: PathBuf, message: String },
    #[error("{}:{line}: {message}", path.display())]
    Line {
        path: PathBuf,
        line: usize,
        message: String,
    },
}

/// A loaded history.
#[derive(Debug)]
pub struct Loaded {
    pub ops: Vec<Op>,
    pub format: Format,
    pub warnings: Vec<String>,
}

/// Guesses the format from the first meaningful text.
pub fn detect(text: &str) -> Option<Format> {
    let mut rest = text;
    loop {
        rest = rest.trim_start();
        if rest.starts_with(';') {
            rest = rest.split_once('\n').map_or("", |(_, r)| r);
        } else {
            break;
        }
    }
    let first_line = rest.lines().next().unwrap_or("");
    if first_line.starts_with("INFO") || first_line.contains("jepsen.util -") {
        return Some(Format::PorcupineEtcdLog);
    }
    if rest.starts_with("{\"") || rest.starts_with("{ \"") {
        return Some(Format::Jsonl);
    }
    if rest.starts_with('[') || rest.starts_with('(') {
        return Some(Format::JepsenEdn);
    }
    if rest.starts_with('{') || rest.starts_with('#') {
        let kv = [":f :get", ":f :put", ":f :append"]
            .iter()
            .any(|p| first_line.contains(p));
        return Some(if kv {
            Format::PorcupineKvEdn
        } else {
            Format::JepsenEdn
        });
    }
    None
}

/// Detects the format of a file from its first 4 KiB.
pub fn detect_file(path: &Path) -> Result<Format, LoadError> {
    let file_err = |message: String| LoadError::File {
        path: path.to_owned(),
        message,
    };
    let mut head = vec![0u8; 4096];
    let n = std::fs::File::open(path)
        .and_then(|mut f| std::io::Read::read(&mut f, &mut head))
        .map_err(|e| file_err(format!("{e} (check the path and permissions)")))?;
    let text = String::from_utf8_lossy(&head[..n]);
    detect(&text).ok_or_else(|| {
        file_err(
            "cannot tell the history's format (empty file, or not JSONL, EDN or a \
             Porcupine log); pass --format"
                .into(),
        )
    })
}

/// Loads a history file in `format`, or in the detected format.
pub fn load(path: &Path, format: Option<Format>) -> Result<Loaded, LoadError> {
    let file_err = |message: String| LoadError::File {
        path: path.to_owned(),
        message,
    };
    let format = match format {
        Some(f) => f,
        None => detect_file(path)?,
    };
    if format == Format::Jsonl {
        let h = history::read_jsonl(path)?;
        return Ok(Loaded {
            ops: h.ops,
            format,
            warnings: h.warnings,
        });
    }
    let text = std::fs::read_to_string(path).map_err(|e| {
        file_err(format!(
            "{e} (check the path and permissions; histories are UTF-8 text)"
        ))
    })?;
    let line_err = |line: usize, message: String| LoadError::Line {
        path: path.to_owned(),
        line,
        message,
    };
    let ops = match format {
        Format::JepsenEdn | Format::PorcupineKvEdn => {
            edn::read_history(&text).map_err(|e| line_err(e.line, e.message))?
        }
        Format::PorcupineEtcdLog => {
            porcupine::read_etcd_log(&text).map_err(|(l, m)| line_err(l, m))?
        }
        Format::Jsonl => unreachable!("handled above"),
    };
    Ok(Loaded {
        ops,
        format,
        warnings: Vec::new(),
    })
}

/// Loads a history straight into paired operations: JSONL is streamed (the events are
/// never held in memory together), other formats are read and then paired.
pub fn load_operations(
    path: &Path,
    format: Option<Format>,
) -> Result<(Vec<history::Operation>, Format, Vec<String>), LoadError> {
    load_operations_with(path, format, 0)
}

/// As [`load_operations`], with `threads` parser threads for big JSONL files (0: one per
/// core, 1: parse on the calling thread).
pub fn load_operations_with(
    path: &Path,
    format: Option<Format>,
    threads: usize,
) -> Result<(Vec<history::Operation>, Format, Vec<String>), LoadError> {
    let format = match format {
        Some(f) => f,
        None => detect_file(path)?,
    };
    if format == Format::Jsonl {
        let (ops, warnings) = history::read_jsonl_operations_with(path, threads)?;
        return Ok((ops, format, warnings));
    }
    let loaded = load(path, Some(format))?;
    Ok((history::pair(&loaded.ops), format, loaded.warnings))
}

/// Export formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExportFormat {
    Jsonl,
    Edn,
}

/// Writes events as JSONL or EDN.
pub fn export<W: Write>(ops: &[Op], format: ExportFormat, out: W) -> std::io::Result<()> {
    match format {
        ExportFormat::Jsonl => history::write_jsonl(ops, out),
        ExportFormat::Edn => edn::write_history(ops, out),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects_each_format() {
        assert_eq!(detect("{\"time\":1,\"process\":1}\n"), Some(Format::Jsonl));
        assert_eq!(
            detect("; comment\n[{:type :invoke}]"),
            Some(Format::JepsenEdn)
        );
        assert_eq!(detect("({:type :invoke})"), Some(Format::JepsenEdn));
        assert_eq!(
            detect("INFO  jepsen.util - 0\t:invoke\t:read\tnil"),
            Some(Format::PorcupineEtcdLog)
        );
        assert_eq!(
            detect("{:process 9, :type :invoke, :f :append, :key \"0\", :value \"x\"}"),
            Some(Format::PorcupineKvEdn)
        );
        assert_eq!(
            detect("{:process 9, :type :invoke, :f :read, :value nil}"),
            Some(Format::JepsenEdn)
        );
        assert_eq!(detect(""), None);
        assert_eq!(detect("hello"), None);
    }

    #[test]
    fn errors_are_one_line_with_file_and_line() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("h.edn");
        std::fs::write(
            &p,
            "[{:type :invoke, :f :read, :process 0}\n {:type :ok :f}]",
        )
        .unwrap();
        let e = load(&p, None).unwrap_err().to_string();
        assert!(e.starts_with(&format!("{}:2: ", p.display())), "{e}");
        assert!(!e.contains('\n'));
        let p = dir.path().join("empty");
        std::fs::write(&p, "").unwrap();
        let e = load(&p, None).unwrap_err().to_string();
        assert!(e.contains("pass --format"), "{e}");
        let e = load(Path::new("/nonexistent/h"), None)
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("/nonexistent/h: "), "{e}");
        let p = dir.path().join("x.log");
        std::fs::write(&p, "INFO  jepsen.util - 0\t:invoke\t:read\tnil\ngarbage\n").unwrap();
        let e = load(&p, Some(Format::PorcupineEtcdLog))
            .unwrap_err()
            .to_string();
        assert!(e.starts_with(&format!("{}:2: ", p.display())), "{e}");
    }

    #[test]
    fn export_round_trips() {
        let ops = edn::read_history(
            "[{:type :invoke, :f :write, :value 3, :process 0}\n {:type :ok, :f :write, :value 3, :process 0}]",
        )
        .unwrap();
        for f in [ExportFormat::Jsonl, ExportFormat::Edn] {
            let mut buf = Vec::new();
            export(&ops, f, &mut buf).unwrap();
            let dir = tempfile::tempdir().unwrap();
            let p = dir.path().join("h");
            std::fs::write(&p, &buf).unwrap();
            let back = load(&p, None).unwrap();
            assert_eq!(back.ops, ops, "{f:?}");
        }
    }
}
