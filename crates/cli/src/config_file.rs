//! `aisle serve --config FILE`: the server's settings in a TOML file.
//!
//! Every key of the file is a flag of `aisle serve` (its long name, e.g.
//! `rate-limit = 50`, `cors-origin = ["https://shop.example"]`), so one
//! parser checks both and the reference (`aisle serve --print-config`,
//! kept in `crates/cli/SERVE.toml` by a test) is written from the flags
//! themselves. Layers, lowest first: the defaults, the file, the
//! environment (the `AISLE_*` variables a flag names), the flags. The file's
//! keys become flags placed before the ones given, which override them; a
//! key whose variable is set is left out, so the environment wins over it.

use std::ffi::OsString;
use std::path::Path;

use anyhow::{bail, Context, Result};
use clap::CommandFactory;

use crate::args::Cli;

/// Flags of `aisle serve` a file may not set.
const NOT_IN_FILE: [&str; 4] = ["config", "print-config", "help", "version"];

/// The command line with a `serve --config FILE`'s settings put in (the
/// arguments unchanged for any other command, or without `--config`).
pub(crate) fn expand(args: Vec<OsString>) -> Result<Vec<OsString>> {
    // The subcommand is the first argument that is not a flag (the only
    // global flag, -v, takes no value).
    let Some(at) = args
        .iter()
        .skip(1)
        .position(|a| !a.to_string_lossy().starts_with('-'))
        .map(|i| i + 1)
    else {
        return Ok(args);
    };
    if args[at] != "serve" {
        return Ok(args);
    }
    let mut file: Option<OsString> = std::env::var_os("AISLE_CONFIG");
    let mut it = args[at + 1..].iter();
    while let Some(a) = it.next() {
        let s = a.to_string_lossy();
        if s == "--config" {
            file = it.next().cloned();
        } else if let Some(v) = s.strip_prefix("--config=") {
            file = Some(v.into());
        }
    }
    let Some(file) = file else {
        return Ok(args);
    };
    let flags = flags_of(Path::new(&file))?;
    let mut out = args[..=at].to_vec();
    out.extend(flags);
    out.extend(args[at + 1..].iter().cloned());
    Ok(out)
}

/// The flags a file stands for.
fn flags_of(path: &Path) -> Result<Vec<OsString>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the config file {}", path.display()))?;
    let table: toml::Table =
        toml::from_str(&text).with_context(|| format!("{} is not valid TOML", path.display()))?;
    let cmd = Cli::command();
    let serve = cmd.find_subcommand("serve").context("the serve command")?;
    let mut out = Vec::new();
    for (key, value) in table {
        let arg = serve
            .get_arguments()
            .find(|a| a.get_long() == Some(key.as_str()) && !NOT_IN_FILE.contains(&key.as_str()))
            .with_context(|| {
                format!(
                    "unknown key `{key}` in {}: the keys are the flags of `aisle serve` (aisle serve --print-config lists them)",
                    path.display()
                )
            })?;
        if arg.get_env().is_some_and(|v| std::env::var_os(v).is_some()) {
            continue;
        }
        let flag = format!("--{key}");
        let switch = matches!(arg.get_action(), clap::ArgAction::SetTrue);
        let scalar = |v: &toml::Value| -> Result<String> {
            Ok(match v {
                toml::Value::String(s) => s.clone(),
                toml::Value::Integer(i) => i.to_string(),
                toml::Value::Float(f) => f.to_string(),
                toml::Value::Boolean(b) => b.to_string(),
                other => bail!(
                    "`{key}` in {}: expected a string, number or boolean, found {}",
                    path.display(),
                    other.type_str()
                ),
            })
        };
        match (&value, switch) {
            (toml::Value::Boolean(true), true) => out.push(flag.into()),
            (toml::Value::Boolean(false), true) => {}
            (_, true) => bail!("`{key}` in {}: expected true or false", path.display()),
            (toml::Value::Array(items), false) => {
                if !matches!(arg.get_action(), clap::ArgAction::Append) {
                    bail!("`{key}` in {} takes one value, not a list", path.display());
                }
                for v in items {
                    out.push(flag.clone().into());
                    out.push(scalar(v)?.into());
                }
            }
            (v, false) => {
                out.push(flag.into());
                out.push(scalar(v)?.into());
            }
        }
    }
    Ok(out)
}

/// The reference of every setting: each flag of `aisle serve` as a TOML
/// key, commented out at its default, under its help and environment
/// variable (what `aisle serve --print-config` prints).
pub(crate) fn reference() -> String {
    let cmd = Cli::command();
    let serve = cmd.find_subcommand("serve").expect("the serve command");
    let mut out = String::from(
        "# aisle serve --config FILE: every setting, at its default (commented out).\n\
         # Keys are the flags of `aisle serve`; layers, lowest first: defaults, this file,\n\
         # the environment (the AISLE_* variable named under a key), the flags.\n\
         # Generated by `aisle serve --print-config`; a test keeps it equal to the code.\n",
    );
    for a in serve.get_arguments() {
        let Some(long) = a.get_long() else { continue };
        if NOT_IN_FILE.contains(&long) || a.is_hide_set() {
            continue;
        }
        out.push('\n');
        let help = a
            .get_long_help()
            .or(a.get_help())
            .map(|h| h.to_string())
            .unwrap_or_default();
        for line in help.lines() {
            wrap(&mut out, line, 88);
        }
        let values: Vec<String> = a
            .get_possible_values()
            .iter()
            .filter(|v| !v.is_hide_set())
            .map(|v| v.get_name().to_string())
            .collect();
        if !values.is_empty() && !matches!(a.get_action(), clap::ArgAction::SetTrue) {
            out.push_str(&format!("# One of: {}\n", values.join(", ")));
        }
        if let Some(env) = a.get_env() {
            out.push_str(&format!("# Environment: {}\n", env.to_string_lossy()));
        }
        let defaults: Vec<String> = a
            .get_default_values()
            .iter()
            .map(|v| v.to_string_lossy().to_string())
            .collect();
        let value = match (a.get_action(), defaults.as_slice()) {
            (clap::ArgAction::SetTrue, _) => "false".to_string(),
            (clap::ArgAction::Append, _) => "[]".to_string(),
            (_, [d]) => toml_value(d),
            _ => {
                let name = a
                    .get_value_names()
                    .and_then(|n| n.first())
                    .map_or("VALUE".to_string(), |n| n.to_string());
                out.push_str(&format!("# (no default) {long} = {name}\n"));
                continue;
            }
        };
        out.push_str(&format!("# {long} = {value}\n"));
    }
    out
}

/// `text` as `# ` comment lines of at most `width` characters (a longer word
/// stays whole).
fn wrap(out: &mut String, text: &str, width: usize) {
    let mut line = String::from("#");
    for word in text.split_whitespace() {
        if line.len() > 1 && line.len() + 1 + word.len() > width {
            out.push_str(&line);
            out.push('\n');
            line = String::from("#");
        }
        line.push(' ');
        line.push_str(word);
    }
    out.push_str(&line);
    out.push('\n');
}

/// A default as TOML: a number or boolean as it is, anything else quoted.
fn toml_value(v: &str) -> String {
    if v.parse::<i64>().is_ok()
        || v.parse::<f64>().is_ok_and(f64::is_finite)
        || v == "true"
        || v == "false"
    {
        v.to_string()
    } else {
        format!("{v:?}")
    }
}
