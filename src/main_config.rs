//! `--config FILE` of `minikv server` and `minikv cluster`: the file's directives become
//! flags placed before the user's own arguments, so that a flag given on the command line
//! wins over the file's (the subcommands let a later flag override an earlier one), and the
//! run-time parameters that are not flags (`slowlog-max-len 256`, ...) are set at start
//! through CONFIG SET's setter.
//!
//! A directive is a Redis name mapped to a minikv flag (`bind` is `--host`, `dir` is
//! `--data-dir`, `tls-cert-file` is `--tls-cert`, ...; `port` is the server's PORT or the
//! cluster's `--base-port`), a minikv long flag by its own name (`cleanup-interval 5`), or a
//! run-time parameter of CONFIG SET. Every value is checked here, so a bad one is reported
//! with the file and line. An environment variable a flag reads (`MINIKV_REQUIREPASS`) wins
//! over the file too.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::CommandFactory;
use minikv::cmd::config::{self as params, InFile};
use minikv::config::file::{self, Directive};
use minikv::config::StartParam;

/// What `--config FILE` gives besides flags.
#[derive(Debug, Default)]
pub(crate) struct FromFile {
    /// The file, absolute (CONFIG REWRITE writes it).
    pub(crate) path: Option<PathBuf>,
    /// Run-time parameters to set at start, in file order.
    pub(crate) params: Vec<StartParam>,
    /// `minikv server`'s port when the file gives it: the value and its `FILE:LINE`.
    pub(crate) port: Option<(u16, String)>,
}

/// Finds `--config FILE` in the arguments of `minikv server` or `minikv cluster` and returns
/// the arguments with the file's flags inserted after the subcommand's name, and the rest of
/// what the file says. Other arguments come back as they are (clap reports their mistakes).
///
/// # Errors
/// The file cannot be read, or a line is unknown or has a bad value (named `FILE:LINE`).
pub(crate) fn expand(argv: Vec<OsString>) -> anyhow::Result<(Vec<OsString>, FromFile)> {
    let sub = match argv.get(1).and_then(|s| s.to_str()) {
        Some(s @ ("server" | "cluster")) => s.to_string(),
        _ => return Ok((argv, FromFile::default())),
    };
    let Some(path) = config_path(&argv[2..]) else {
        return Ok((argv, FromFile::default()));
    };
    let directives = file::read(&path)?;
    let absolute =
        std::path::absolute(&path).with_context(|| format!("config file '{}'", path.display()))?;
    let (flags, from_file) = translate(&sub, &path, &directives)?;
    let mut out = argv[..2].to_vec();
    out.extend(flags.into_iter().map(OsString::from));
    out.extend_from_slice(&argv[2..]);
    Ok((
        out,
        FromFile {
            path: Some(absolute),
            ..from_file
        },
    ))
}

/// The value of the last `--config FILE` or `--config=FILE` before `--`.
fn config_path(args: &[OsString]) -> Option<PathBuf> {
    let mut found = None;
    let mut iter = args.iter();
    while let Some(arg) = iter.next() {
        let Some(text) = arg.to_str() else { continue };
        if text == "--" {
            break;
        } else if text == "--config" {
            found = iter.next().map(PathBuf::from);
        } else if let Some(value) = text.strip_prefix("--config=") {
            found = Some(PathBuf::from(value));
        }
    }
    found
}

/// The flags and parameters of the directives of `sub`'s config file `path`.
fn translate(
    sub: &str,
    path: &Path,
    directives: &[Directive],
) -> anyhow::Result<(Vec<String>, FromFile)> {
    let command = crate::Cli::command();
    let sub_command = command
        .find_subcommand(sub)
        .with_context(|| format!("no subcommand {sub}"))?;
    let mut flags = Vec::new();
    let mut from_file = FromFile::default();
    // Every `save` line adds pairs, as in Redis; one `--save` carries them all.
    let mut save: Option<Vec<String>> = None;
    for d in directives {
        let at = format!("{}:{}", path.display(), d.line);
        let fail = |reason: String| anyhow::anyhow!("{at}: {reason}");
        let one = || match d.args.as_slice() {
            [value] => Ok(value.clone()),
            _ => Err(fail(format!(
                "'{}' takes one value, found {}",
                d.name,
                d.args.len()
            ))),
        };
        let row = params::lookup(d.name.as_bytes()).map(|(p, _)| p);
        let flag_name = match row.map(|p| p.file) {
            Some(InFile::Flag("port")) if sub == "server" => {
                let value = one()?;
                let port = crate::args::whole::<u16>(0, 65535)(&value)
                    .map_err(|e| fail(format!("port: invalid value '{value}': {e}")))?;
                from_file.port = Some((port, at.clone()));
                continue;
            }
            Some(InFile::Flag("port")) => "base-port",
            Some(InFile::Flag("save")) => {
                let pairs = save.get_or_insert_with(Vec::new);
                pairs.extend(d.args.iter().filter(|a| !a.is_empty()).cloned());
                params::check("save", &pairs.join(" ")).map_err(|e| fail(format!("save: {e}")))?;
                continue;
            }
            Some(InFile::Flag(flag)) => flag,
            Some(InFile::Setter) => {
                let (name, value) = (row.map_or("", |p| p.name), d.args.join(" "));
                params::check(name, &value).map_err(|e| fail(format!("{name}: {e}")))?;
                from_file.params.push(StartParam {
                    name: name.to_string(),
                    value,
                    origin: at.clone(),
                });
                continue;
            }
            Some(InFile::No) => {
                return Err(fail(format!(
                    "'{}' cannot be set in minikv (CONFIG GET {} shows its fixed value)",
                    d.name, d.name
                )))
            }
            None => d.name.as_str(),
        };
        let arg = sub_command
            .get_arguments()
            .find(|a| a.get_long() == Some(flag_name))
            .filter(|_| !matches!(flag_name, "config" | "help" | "version"))
            .ok_or_else(|| fail(format!("unknown directive '{}'", d.name)))?;
        // The environment wins over the file, as the command line does.
        if arg
            .get_env()
            .is_some_and(|var| std::env::var_os(var).is_some())
        {
            continue;
        }
        let value = one()?;
        if matches!(arg.get_action(), clap::ArgAction::SetTrue) {
            if crate::args::yes_no(&value).map_err(|e| fail(format!("{}: {e}", d.name)))? {
                flags.push(format!("--{flag_name}"));
            }
            continue;
        }
        check_value(arg, &value).map_err(|e| fail(format!("{}: {e}", d.name)))?;
        flags.push(format!("--{flag_name}={value}"));
    }
    if let Some(pairs) = save {
        flags.push(format!("--save={}", pairs.join(" ")));
    }
    Ok((flags, from_file))
}

/// Runs `arg`'s own value parser on `value`: the reason it refuses it.
fn check_value(arg: &clap::Arg, value: &str) -> Result<(), String> {
    let probe = clap::Command::new("minikv").no_binary_name(true).arg(
        clap::Arg::new("value")
            .long("value")
            .value_parser(arg.get_value_parser().clone())
            .allow_negative_numbers(true)
            .allow_hyphen_values(true),
    );
    match probe.try_get_matches_from([format!("--value={value}")]) {
        Ok(_) => Ok(()),
        Err(e) => {
            let why = std::error::Error::source(&e)
                .map(ToString::to_string)
                .unwrap_or_else(|| e.kind().to_string());
            Err(format!("invalid value '{value}': {why}"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser as _;

    fn expand_with(
        sub: &str,
        text: &str,
        user: &[&str],
    ) -> anyhow::Result<(Vec<String>, FromFile)> {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("node.conf");
        std::fs::write(&path, text).expect("write");
        let mut argv: Vec<OsString> = vec!["minikv".into(), sub.into()];
        argv.extend(user.iter().map(OsString::from));
        argv.push("--config".into());
        argv.push(path.clone().into());
        let (out, from) = expand(argv)?;
        let out = out
            .into_iter()
            .map(|a| a.into_string().expect("UTF-8"))
            .collect();
        Ok((out, from))
    }

    #[test]
    fn directives_become_flags_before_the_users_own() {
        let text = "# node\nbind 0.0.0.0\ndir /tmp/x\ntimeout 5\nappendonly yes\n\
                    cleanup-interval 2\nsave 900 1\nsave 60 10\nslowlog-max-len 7\nport 7005\n";
        let (argv, from) = expand_with("server", text, &["1", "--timeout", "9"]).expect("valid");
        assert_eq!(
            argv[..9],
            [
                "minikv",
                "server",
                "--host=0.0.0.0",
                "--data-dir=/tmp/x",
                "--timeout=5",
                "--appendonly=yes",
                "--cleanup-interval=2",
                "--save=900 1 60 10",
                "1"
            ]
        );
        assert_eq!(from.port.as_ref().map(|p| p.0), Some(7005));
        assert_eq!(from.params.len(), 1);
        assert_eq!(
            (from.params[0].name.as_str(), from.params[0].value.as_str()),
            ("slowlog-max-len", "7")
        );
        assert!(from.params[0].origin.ends_with("node.conf:9"));
        // The user's flag comes later and wins.
        let cli = crate::Cli::try_parse_from(&argv).expect("parses");
        match cli.command {
            crate::Command::Server { node, .. } => assert_eq!(node.timeout, 9),
            _ => unreachable!("a server command"),
        }
    }

    #[test]
    fn cluster_port_is_the_base_port() {
        let (argv, _) = expand_with("cluster", "port 7100\nno-http yes\n", &[]).expect("valid");
        assert_eq!(argv[2..4], ["--base-port=7100", "--no-http"]);
    }

    #[test]
    fn bad_lines_are_named_with_file_and_line() {
        let message = |text: &str| {
            format!(
                "{:#}",
                expand_with("server", text, &["1", "7001"]).unwrap_err()
            )
        };
        let unknown = message("port 1\n\ndaemonize yes\n");
        assert!(
            unknown.ends_with("node.conf:3: unknown directive 'daemonize'"),
            "{unknown}"
        );
        let bad = message("timeout -5\n");
        assert!(
            bad.contains("node.conf:1: timeout: invalid value '-5'"),
            "{bad}"
        );
        let bad = message("slowlog-max-len x\n");
        assert!(
            bad.contains("node.conf:1: slowlog-max-len: argument couldn't be parsed"),
            "{bad}"
        );
        let bad = message("bind 127.0.0.1 ::1\n");
        assert!(bad.contains("node.conf:1: 'bind' takes one value"), "{bad}");
        let bad = message("save 1 2 3\n");
        assert!(bad.contains("Invalid save parameters"), "{bad}");
        let bad = message("hz 20\n");
        assert!(bad.contains("'hz' cannot be set"), "{bad}");
        let bad = message("config other.conf\n");
        assert!(bad.contains("unknown directive 'config'"), "{bad}");
    }

    #[test]
    fn without_config_the_arguments_are_untouched() {
        let argv: Vec<OsString> = ["minikv", "server", "1", "7001"]
            .map(OsString::from)
            .to_vec();
        let (out, from) = expand(argv.clone()).expect("nothing to read");
        assert_eq!(out, argv);
        assert!(from.path.is_none());
    }
}
