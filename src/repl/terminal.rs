//! The REPL on the process's own standard input and output: what `minikv client` runs.
//!
//! Three ways in: one command given on the command line ([`run_command`]), an interactive
//! terminal with a prompt, line editing and history in `~/.minikv_history`, or any other
//! input (a pipe, a file) read one line at a time with no prompt ([`run`] picks between the
//! last two). Each line goes to [`Repl::execute`], which writes the spec's text blocks to
//! standard output; a block of lines pasted at the prompt runs line by line. This module only
//! moves lines in and decides when to stop. It must not interpret commands itself.

use std::io::Write as _;
use std::io::{BufRead, IsTerminal};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use rustyline::error::ReadlineError;
use tokio::runtime::Runtime;

use super::{Outcome, Repl};
use crate::client::ClientConfig;

/// Why the terminal loop stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum TerminalError {
    /// The tokio runtime could not be built (usually: no threads or file descriptors left).
    #[error("starting the tokio runtime")]
    Runtime(#[source] std::io::Error),
    /// Line editing could not be set up on the terminal.
    #[error("starting line editing")]
    Editor(#[source] ReadlineError),
    /// Reading a line from the terminal failed (other than Ctrl+C or Ctrl+D).
    #[error("reading the terminal")]
    Terminal(#[source] ReadlineError),
    /// Reading standard input failed, e.g. it is not valid UTF-8.
    #[error("reading standard input")]
    Input(#[source] std::io::Error),
}

/// The prompt of the interactive loop.
const PROMPT: &str = "kv> ";

/// Runs the command whose words are `words` (as the shell split them, e.g. `["set", "a b",
/// "1"]`) and returns its outcome; the output goes to standard output.
///
/// # Errors
/// [`TerminalError::Runtime`] when the runtime cannot be built.
pub fn run_command(config: ClientConfig, words: &[String]) -> Result<Outcome, TerminalError> {
    let rt = runtime()?;
    let repl = stdout_repl(config);
    let line = words.iter().map(|w| quote(w)).collect::<Vec<_>>().join(" ");
    Ok(rt.block_on(repl.execute(&line)))
}

/// Runs the REPL over standard input until `exit`, `quit` or the end of input: interactively
/// (banner, prompt, history) when standard input is a terminal, else one command per line.
///
/// # Errors
/// When the runtime cannot be built or standard input cannot be read. A history file that
/// cannot be read or written is not an error (the latter is reported on standard error).
pub fn run(config: ClientConfig) -> Result<(), TerminalError> {
    let rt = runtime()?;
    let repl = stdout_repl(config);
    if std::io::stdin().is_terminal() {
        interactive(&repl, &rt)
    } else {
        lines(&repl, &rt, std::io::stdin().lock())
    }
}

/// The interactive loop: banner, `kv> ` prompt, line editing and history.
fn interactive(repl: &Repl, rt: &Runtime) -> Result<(), TerminalError> {
    // A terminal whose output is gone (a closed pipe) must not panic the client: lost
    // output is all that can happen.
    let _ = writeln!(std::io::stdout(), "{}", repl.banner());
    let mut editor = rustyline::DefaultEditor::new().map_err(TerminalError::Editor)?;
    let history = std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".minikv_history"));
    if let Some(path) = &history {
        // No history yet is normal on first use.
        let _ = editor.load_history(path);
    }
    loop {
        match editor.readline(PROMPT) {
            Ok(text) => {
                let outcome = run_text(repl, rt, &text, |line| {
                    if !line.trim().is_empty() {
                        // A line that cannot enter the history is still run.
                        let _ = editor.add_history_entry(line);
                    }
                });
                if outcome == Outcome::Exit {
                    break;
                }
            }
            // Ctrl+C abandons the line being typed, as in a shell.
            Err(ReadlineError::Interrupted) => continue,
            Err(ReadlineError::Eof) => {
                let _ = writeln!(std::io::stdout(), "Goodbye!");
                break;
            }
            Err(e) => return Err(TerminalError::Terminal(e)),
        }
    }
    if let Some(path) = &history {
        if let Err(e) = editor.save_history(path) {
            let _ = writeln!(
                std::io::stderr(),
                "minikv: could not save history to {}: {e}",
                path.display()
            );
        }
    }
    Ok(())
}

/// Runs what one `readline` returned, line by line, until `exit` or `quit` (then returns
/// [`Outcome::Exit`]); `each` sees every line before it runs (for the history). A multi-line
/// paste arrives as one result holding newlines (with bracketed paste the terminal hands it
/// over whole, and the Enter that follows returns it), and a user who pastes the README's
/// session expects every line of it to run, in order, as a shell runs a pasted script.
fn run_text(repl: &Repl, rt: &Runtime, text: &str, mut each: impl FnMut(&str)) -> Outcome {
    for line in pasted_lines(text) {
        each(line);
        if rt.block_on(repl.execute(line)) == Outcome::Exit {
            return Outcome::Exit;
        }
    }
    Outcome::Ok
}

/// The lines of one `readline` result: split at each newline (rustyline turns a paste's `\r`
/// and `\r\n` into `\n`; a `\r` left before a newline is dropped too), without the empty
/// line a final newline would leave. A single typed line is one line, even when empty.
fn pasted_lines(text: &str) -> impl Iterator<Item = &str> {
    let text = text.strip_suffix('\n').unwrap_or(text);
    text.split('\n')
        .map(|line| line.strip_suffix('\r').unwrap_or(line))
}

/// Runs one command per line of `input`, with no prompt, until `exit`, `quit` or its end.
fn lines(repl: &Repl, rt: &Runtime, input: impl BufRead) -> Result<(), TerminalError> {
    for line in input.lines() {
        let line = line.map_err(TerminalError::Input)?;
        if rt.block_on(repl.execute(&line)) == Outcome::Exit {
            break;
        }
    }
    Ok(())
}

/// A REPL writing to standard output.
fn stdout_repl(config: ClientConfig) -> Repl {
    Repl::new(config, Arc::new(Mutex::new(std::io::stdout())))
}

/// The client's runtime: one thread is plenty for one user's commands.
fn runtime() -> Result<Runtime, TerminalError> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(TerminalError::Runtime)
}

/// Quotes one command-line word so the REPL's parser reads it back as one argument.
fn quote(word: &str) -> String {
    if !word.is_empty()
        && !word.contains(|c: char| c.is_whitespace() || c == '"' || c == '\'' || c == '\\')
    {
        return word.to_string();
    }
    let escaped = word.replace('\\', "\\\\").replace('"', "\\\"");
    format!("\"{escaped}\"")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::resp::split_args;

    #[test]
    fn quoted_words_split_back_into_the_same_words() {
        let words = [
            "set",
            "a b",
            "",
            "say \"hi\"",
            "back\\slash",
            "it's",
            "tab\there",
        ];
        let line = words.iter().map(|w| quote(w)).collect::<Vec<_>>().join(" ");
        let split = split_args(line.as_bytes()).expect("balanced quotes");
        let back: Vec<String> = split
            .into_iter()
            .map(|w| String::from_utf8_lossy(&w).into_owned())
            .collect();
        assert_eq!(back, words);
    }

    #[test]
    fn plain_words_are_not_quoted() {
        assert_eq!(quote("user:1"), "user:1");
        assert_eq!(quote("a b"), "\"a b\"");
    }

    #[test]
    fn a_paste_splits_into_its_lines() {
        fn split(text: &str) -> Vec<&str> {
            pasted_lines(text).collect()
        }
        assert_eq!(split("get a"), ["get a"], "a typed line");
        assert_eq!(split(""), [""], "Enter on an empty prompt");
        assert_eq!(split("set a 1\nget a"), ["set a 1", "get a"]);
        assert_eq!(
            split("set a 1\nget a\n"),
            ["set a 1", "get a"],
            "a final newline adds no line"
        );
        assert_eq!(split("set a 1\r\n\r\nget a\r\n"), ["set a 1", "", "get a"]);
        assert_eq!(
            split("set a \"x\ny\""),
            ["set a \"x", "y\""],
            "lines, not quotes"
        );
    }

    /// A REPL writing into a buffer, for lines that are answered without a server
    /// (`servers`, `help`, blank lines, `exit`).
    fn local_repl() -> (Repl, Arc<Mutex<Vec<u8>>>) {
        let out: Arc<Mutex<Vec<u8>>> = Arc::new(Mutex::new(Vec::new()));
        let config = ClientConfig {
            servers: vec!["127.0.0.1:1".into()],
            ..ClientConfig::default()
        };
        (Repl::new(config, out.clone()), out)
    }

    #[test]
    fn a_pasted_block_runs_every_line_until_exit() {
        let rt = runtime().expect("runtime");
        let (repl, out) = local_repl();
        let mut seen = Vec::new();
        let outcome = run_text(&repl, &rt, "servers\nhelp\n", |l| seen.push(l.to_string()));
        assert_eq!(outcome, Outcome::Ok);
        assert_eq!(seen, ["servers", "help"]);
        let text = String::from_utf8(out.lock().expect("sink lock").clone()).expect("utf-8");
        assert!(
            text.contains("SERVER CONFIGURATION") && text.contains("Commands:"),
            "{text}"
        );

        seen.clear();
        let outcome = run_text(&repl, &rt, "servers\nquit\nservers\n", |l| {
            seen.push(l.to_string())
        });
        assert_eq!(outcome, Outcome::Exit);
        assert_eq!(seen, ["servers", "quit"], "nothing runs after quit");
    }

    #[test]
    fn lines_run_until_exit() {
        let rt = runtime().expect("runtime");
        let (repl, out) = local_repl();
        lines(&repl, &rt, &b"servers\n\nexit\nservers\n"[..]).expect("in-memory input");
        let text = String::from_utf8(out.lock().expect("sink lock").clone()).expect("utf-8");
        assert_eq!(text.matches("127.0.0.1:1").count(), 1, "{text}");
        assert!(
            text.ends_with("Goodbye!\n"),
            "nothing runs after exit:\n{text}"
        );
    }
}
