//! A terminal for interactive programs: a tmux server of our own, one session running the
//! program, keys typed and text pasted into it, and its screen read back. Every wait is bounded.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::process::{require, run, Run};
use super::WAIT;

/// A tmux server of our own (its socket in a temporary directory), killed when dropped.
pub struct Tmux {
    socket: String,
    _dir: tempfile::TempDir,
}

impl Tmux {
    /// Starts `command` (a shell command line) in a detached session `width` columns wide and
    /// 40 lines high.
    pub fn start(width: u16, command: &str) -> Tmux {
        require("tmux", "tmux", &["-V"]);
        let dir = tempfile::tempdir().expect("create a directory for the tmux socket");
        let tmux = Tmux {
            socket: dir.path().join("tmux.sock").display().to_string(),
            _dir: dir,
        };
        let started = tmux.run(&[
            "new-session",
            "-d",
            "-s",
            "main",
            "-x",
            &width.to_string(),
            "-y",
            "40",
            command,
        ]);
        started.assert_success();
        tmux
    }

    /// Runs `tmux args...` against our server.
    pub fn run(&self, args: &[&str]) -> Run {
        run(
            Command::new("tmux")
                .args(["-S", &self.socket])
                .args(args)
                .env("TERM", "xterm-256color"),
            None,
            WAIT,
        )
    }

    /// Keeps the pane, and so its last screen, after the program exits.
    pub fn keep_pane_on_exit(&self) {
        self.run(&["set-option", "-t", "main", "remain-on-exit", "on"])
            .assert_success();
    }

    /// Types `keys` (tmux key names, e.g. "Enter").
    pub fn send(&self, keys: &[&str]) {
        let mut args = vec!["send-keys", "-t", "main"];
        args.extend_from_slice(keys);
        self.run(&args).assert_success();
    }

    /// Pastes `text` as a terminal does (newlines become carriage returns). `bracketed`: wrap
    /// it in the bracketed-paste markers, as terminals do for programs that asked for them
    /// (tmux adds them only if the program did ask).
    pub fn paste(&self, text: &str, bracketed: bool) {
        self.run(&["set-buffer", "-b", "paste", "--", text])
            .assert_success();
        let mut args = vec!["paste-buffer", "-b", "paste", "-t", "main"];
        if bracketed {
            args.push("-p");
        }
        self.run(&args).assert_success();
    }

    /// The visible screen, as text.
    pub fn screen(&self) -> String {
        self.run(&["capture-pane", "-p", "-t", "main"])
            .assert_success()
            .stdout
            .clone()
    }

    /// Polls the screen until `check` holds, within [`WAIT`].
    pub fn wait_for(&self, what: &str, check: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            let screen = self.screen();
            if check(&screen) {
                return screen;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; screen:\n{screen}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        // Stops only our own tmux server (our socket) and the program inside it.
        let _ = Command::new("tmux")
            .args(["-S", &self.socket, "kill-server"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}
