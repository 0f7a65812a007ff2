//! `cargo xtask dashboard`: the dashboard crate with every feature, its
//! clippy, and its browser test in headless Chromium, which must run here
//! (`RATELIMIT_BROWSER_REQUIRED`): a machine without `chromium` and
//! `chromedriver` fails the job rather than skip the test (`.ci/run`
//! installs them).

use crate::cmd::Step;

/// The programs the browser test drives.
const BROWSER: [&str; 2] = ["chromium", "chromedriver"];

pub(crate) fn run() -> Result<(), String> {
    for program in BROWSER {
        Step::new(program, &["--version"]).output().map_err(|e| {
            format!(
                "{program} is required by the dashboard's browser test: {e}\n    \
                 (install with: apt-get install -y chromium chromium-driver)"
            )
        })?;
    }
    Step::cargo(&[
        "clippy",
        "-p",
        "ratelimit-dashboard",
        "--all-targets",
        "--all-features",
        "--locked",
        "--",
        "-D",
        "warnings",
    ])
    .run()?;
    Step::cargo(&[
        "test",
        "-p",
        "ratelimit-dashboard",
        "--all-features",
        "--locked",
    ])
    .env("RATELIMIT_BROWSER_REQUIRED", "1")
    .env("INSTA_UPDATE", "no")
    .run()
}
