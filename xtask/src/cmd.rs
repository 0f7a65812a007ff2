//! Running commands: each one is echoed, and a failure names the command
//! that reproduces it.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The workspace root (the parent of `xtask/`).
pub(crate) fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace")
        .to_path_buf()
}

/// A command to run from the workspace root, with extra environment.
pub(crate) struct Step<'a> {
    program: &'a str,
    args: Vec<&'a str>,
    env: Vec<(&'a str, String)>,
}

impl<'a> Step<'a> {
    pub(crate) fn new(program: &'a str, args: &[&'a str]) -> Self {
        Self {
            program,
            args: args.to_vec(),
            env: Vec::new(),
        }
    }

    pub(crate) fn cargo(args: &[&'a str]) -> Self {
        Self::new("cargo", args)
    }

    pub(crate) fn env(mut self, key: &'a str, value: impl Into<String>) -> Self {
        self.env.push((key, value.into()));
        self
    }

    /// The command as a person would type it.
    pub(crate) fn display(&self) -> String {
        let mut line: Vec<String> = self.env.iter().map(|(k, v)| format!("{k}={v:?}")).collect();
        line.push(self.program.to_owned());
        line.extend(self.args.iter().map(|a| (*a).to_owned()));
        line.join(" ")
    }

    /// Runs the command; on failure the error says how to reproduce it.
    pub(crate) fn run(&self) -> Result<(), String> {
        eprintln!("$ {}", self.display());
        let status = Command::new(self.program)
            .args(&self.args)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .current_dir(root())
            .status()
            .map_err(|e| format!("could not start `{}`: {e}", self.display()))?;
        if status.success() {
            Ok(())
        } else {
            Err(format!(
                "failed ({status}); reproduce with:\n    {}",
                self.display()
            ))
        }
    }

    /// Runs the command and returns its standard output.
    pub(crate) fn output(&self) -> Result<String, String> {
        let out = Command::new(self.program)
            .args(&self.args)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .current_dir(root())
            .output()
            .map_err(|e| format!("could not start `{}`: {e}", self.display()))?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(format!(
                "failed ({}); reproduce with:\n    {}\n{}",
                out.status,
                self.display(),
                String::from_utf8_lossy(&out.stderr)
            ))
        }
    }
}
