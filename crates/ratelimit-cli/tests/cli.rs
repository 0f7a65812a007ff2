//! The `ratelimit` binary, run as a user runs it: replay output and errors,
//! the command line (help, version, usage errors), shell completions.

mod common;

use common::{ratelimit, replay_args, text};
use ratelimit_replay::{BUCKET_FILES, load_scenarios};

#[test]
fn replay_passes_every_conformance_scenario() {
    let mut checked = 0;
    for file in BUCKET_FILES {
        for s in load_scenarios(file).unwrap() {
            let capacity = s.capacity.to_string();
            let [rate_flag, rate] = s.limit_args();
            assert_eq!(rate_flag, "--rate");
            let out = ratelimit(&replay_args(&s.algorithm, &capacity, &rate), &s.input());
            assert!(
                out.status.success(),
                "scenario {}: {}",
                s.id,
                text(&out.stderr)
            );
            let lines: Vec<serde_json::Value> = text(&out.stdout)
                .lines()
                .map(|l| serde_json::from_str(l).unwrap())
                .collect();
            assert_eq!(lines, s.expected, "{file} scenario {}", s.id);
            checked += 1;
        }
    }
    assert_eq!(checked, 180);
}

#[test]
fn output_has_the_documented_field_order() {
    let input = concat!(
        r#"{"t_ns": 1000000000, "key": "user1", "op": "check", "cost": 1}"#,
        "\n",
        r#"{"t_ns": 1000000500, "key": "user1", "op": "reserve", "cost": 2, "max_wait_ns": 5000000}"#,
        "\n",
        r#"{"t_ns": 1000000500, "key": "user1", "op": "check", "cost": 11}"#,
        "\n",
    );
    let out = ratelimit(&replay_args("token-bucket", "10", "2"), input);
    assert!(out.status.success());
    insta::assert_snapshot!(text(&out.stdout), @r#"
    {"allowed": true, "remaining": 9, "retry_after_ns": null, "reset_after_ns": 500000000}
    {"allowed": true, "wait_ns": 0}
    {"allowed": false, "remaining": 7, "retry_after_ns": null, "reset_after_ns": 1499999500}
    "#);
}

#[test]
fn malformed_line_names_its_number_and_fails() {
    let input = concat!(
        r#"{"t_ns": 1, "key": "a", "op": "check"}"#,
        "\n",
        r#"{"t_ns": 2, "key": "a", "op": "check"}"#,
        "\n",
        r#"{"t_ns": 3, "key": "a", "op": "chek"}"#,
        "\n",
        r#"{"t_ns": 4, "key": "a", "op": "check"}"#,
        "\n",
    );
    let out = ratelimit(&replay_args("leaky-bucket", "5", "1"), input);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stdout).lines().count(),
        2,
        "the lines before the error are answered"
    );
    insta::assert_snapshot!(text(&out.stderr), @"error: line 3: malformed event: unknown variant `chek`, expected one of `check`, `reserve`, `reconfigure` (column 36)");
}

#[test]
fn time_going_backwards_is_an_input_error() {
    let input = "{\"t_ns\": 9, \"key\": \"a\", \"op\": \"check\"}\n{\"t_ns\": 8, \"key\": \"a\", \"op\": \"check\"}\n";
    let out = ratelimit(&replay_args("token-bucket", "5", "1"), input);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("line 2: t_ns 8 is before the previous event's 9"));
}

/// Every malformed command line: exit status 2 and clap's message, naming
/// the option and what is wrong with it.
#[test]
fn bad_options_get_clear_errors() {
    let cases: [&[&str]; 11] = [
        &[
            "--algorithm",
            "token-bucket",
            "--capacity",
            "0",
            "--rate",
            "1",
        ],
        &[
            "--algorithm",
            "token-bucket",
            "--capacity",
            "-3",
            "--rate",
            "1",
        ],
        &[
            "--algorithm",
            "token-bucket",
            "--capacity",
            "3",
            "--rate",
            "0",
        ],
        &[
            "--algorithm",
            "token-bucket",
            "--capacity",
            "3",
            "--rate",
            "NaN",
        ],
        &[
            "--algorithm",
            "token-bucket",
            "--capacity",
            "3",
            "--rate",
            "2e9",
        ],
        &["--algorithm", "gcra", "--capacity", "3", "--rate", "1"],
        &["--capacity", "3", "--rate", "1"],
        &["--algorithm", "token-bucket", "--capacity", "3", "--rate"],
        &[
            "--algorithm",
            "token-bucket",
            "--capacity",
            "3",
            "--rate",
            "1",
            "--backend",
            "redis",
        ],
        &[
            "--algorithm",
            "token-bucket",
            "--capacity",
            "3",
            "--rate",
            "1",
            "--prefix",
            "p",
        ],
        &[
            "--algorithm",
            "token-bucket",
            "--capacity",
            "3",
            "--rate",
            "1",
            "--summry",
        ],
    ];
    let mut all = String::new();
    for args in cases {
        let mut argv = vec!["replay"];
        argv.extend_from_slice(args);
        let out = ratelimit(&argv, "");
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(out.stdout.is_empty());
        all += &format!("$ ratelimit {}\n{}\n", argv.join(" "), text(&out.stderr));
    }
    insta::assert_snapshot!(all, @r"
    $ ratelimit replay --algorithm token-bucket --capacity 0 --rate 1
    error: invalid limit: capacity must be at least 1

    Usage: ratelimit replay [OPTIONS] --algorithm <ALGORITHM> --capacity <C> --rate <R>

    For more information, try '--help'.

    $ ratelimit replay --algorithm token-bucket --capacity -3 --rate 1
    error: invalid value '-3' for '--capacity <C>': must be a whole number, such as 10

    For more information, try '--help'.

    $ ratelimit replay --algorithm token-bucket --capacity 3 --rate 0
    error: invalid value '0' for '--rate <R>': rate must be a finite number greater than zero

    For more information, try '--help'.

    $ ratelimit replay --algorithm token-bucket --capacity 3 --rate NaN
    error: invalid value 'NaN' for '--rate <R>': rate must be a decimal number such as 2, 0.5 or 2.5e6 (at most 19 significant digits)

    For more information, try '--help'.

    $ ratelimit replay --algorithm token-bucket --capacity 3 --rate 2e9
    error: invalid value '2e9' for '--rate <R>': rate is above one unit per nanosecond

    For more information, try '--help'.

    $ ratelimit replay --algorithm gcra --capacity 3 --rate 1
    error: invalid value 'gcra' for '--algorithm <ALGORITHM>'
      [possible values: token-bucket, leaky-bucket]

    For more information, try '--help'.

    $ ratelimit replay --capacity 3 --rate 1
    error: the following required arguments were not provided:
      --algorithm <ALGORITHM>

    Usage: ratelimit replay --algorithm <ALGORITHM> --capacity <C> --rate <R>

    For more information, try '--help'.

    $ ratelimit replay --algorithm token-bucket --capacity 3 --rate
    error: a value is required for '--rate <R>' but none was supplied

    For more information, try '--help'.

    $ ratelimit replay --algorithm token-bucket --capacity 3 --rate 1 --backend redis
    error: --backend redis needs --redis-url

    Usage: ratelimit replay [OPTIONS] --algorithm <ALGORITHM> --capacity <C> --rate <R>

    For more information, try '--help'.

    $ ratelimit replay --algorithm token-bucket --capacity 3 --rate 1 --prefix p
    error: --redis-url and --prefix need --backend redis

    Usage: ratelimit replay [OPTIONS] --algorithm <ALGORITHM> --capacity <C> --rate <R>

    For more information, try '--help'.

    $ ratelimit replay --algorithm token-bucket --capacity 3 --rate 1 --summry
    error: unexpected argument '--summry' found

      tip: a similar argument exists: '--summary'

    Usage: ratelimit replay --algorithm <ALGORITHM> --capacity <C> --rate <R> --summary

    For more information, try '--help'.
    ");
}

#[test]
fn summary_counts_per_key() {
    // alice: 20 checks 100 ms apart against 3 tokens refilled every 500 ms:
    // the burst of 3, then one at 0.5 s, 1.0 s and 1.5 s. bob: 5 checks 400 ms apart.
    let mut input = String::new();
    for i in 0..20u64 {
        for key in ["alice", "bob"] {
            if key == "bob" && i % 4 != 0 {
                continue;
            }
            input += &format!(
                "{{\"t_ns\": {}, \"key\": \"{key}\", \"op\": \"check\"}}\n",
                i * 100_000_000
            );
        }
    }
    let mut args = replay_args("token-bucket", "3", "2");
    args.push("--summary");
    let out = ratelimit(&args, &input);
    assert!(out.status.success());
    assert_eq!(text(&out.stdout).lines().count(), 25);
    // The histogram spans 0 to 1.9 s: 10 buckets of 200 ms. alice is
    // denied at 0.3, 0.4, then every 100 ms but 1.0 and 1.5 s (and 0.5 s,
    // allowed); bob never.
    insta::assert_snapshot!(text(&out.stderr), @r"
    key       allowed      denied   denied%
    alice           6          14     70.0%
    bob             5           0      0.0%
    ---------------------------------------
    total          11          14     56.0%

    denials over time (200 ms buckets from the first event; # = 1 denial)
       +0 ms  0
     +200 ms  1  #
     +400 ms  1  #
     +600 ms  2  ##
     +800 ms  2  ##
    +1000 ms  1  #
    +1200 ms  2  ##
    +1400 ms  1  #
    +1600 ms  2  ##
    +1800 ms  2  ##
    ");
}

/// `--help` on every subcommand (and `-h`, and `help <command>`) prints
/// the help on stdout with exit status 0.
#[test]
fn every_subcommand_has_help() {
    for args in [
        &["--help"][..],
        &["-h"],
        &["help"],
        &["replay", "--help"],
        &["replay", "-h"],
        &["help", "replay"],
        &["inspect", "--help"],
        &["inspect", "-h"],
        &["dashboard", "--help"],
        &["completions", "--help"],
        &["help", "completions"],
    ] {
        let out = ratelimit(args, "");
        assert_eq!(out.status.code(), Some(0), "{args:?}");
        assert!(text(&out.stdout).contains("Usage: ratelimit"), "{args:?}");
        assert!(out.stderr.is_empty(), "{args:?}");
    }
    insta::assert_snapshot!(text(&ratelimit(&["--help"], "").stdout), @r"
    Replay traffic through a rate limiter (a policy simulator: what would this limit have done to this traffic?), and inspect limits kept in Redis.

    Usage: ratelimit <COMMAND>

    Commands:
      replay       Replay JSON Lines of events from stdin through a limiter and print each decision
      inspect      Print one Redis key's rate-limit state as one JSON line
      dashboard    Serve the dashboard of every process publishing under a Redis prefix
      completions  Print a completion script for a shell
      help         Print this message or the help of the given subcommand(s)

    Options:
      -h, --help
              Print help (see a summary with '-h')

      -V, --version
              Print version
    ");
    insta::assert_snapshot!(text(&ratelimit(&["inspect", "-h"], "").stdout), @r"
    Print one Redis key's rate-limit state as one JSON line

    Usage: ratelimit inspect [OPTIONS] --redis-url <URL> <KEY>

    Arguments:
      <KEY>  The key, as the application passes it to the limiter (without the prefix)

    Options:
          --redis-url <URL>        The Redis the limiter uses, e.g. redis://127.0.0.1:6379/0
          --prefix <P>             The limiter's key prefix [default: ratelimit]
          --algorithm <ALGORITHM>  The limiter's algorithm (to show tokens or level) [default: token-bucket] [possible values: token-bucket, leaky-bucket]
          --capacity <C>           The limiter's capacity (with --rate: shows tokens or level)
          --rate <R>               The limiter's rate in units per second (with --capacity)
      -h, --help                   Print help

    Prints the stored tat, the server's time, the TTL, the time until reset and,
    given the limit, the tokens (token bucket) or level (leaky bucket) now, on
    the server's clock. Put -- before a KEY that starts with -.

    Exit status: 0 when the state was printed; 1 when Redis could not be
    reached or failed; 2 for a malformed command line.
    ");
}

#[test]
fn version_and_no_command() {
    let out = ratelimit(&["--version"], "");
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(
        text(&out.stdout),
        format!("ratelimit {}\n", env!("CARGO_PKG_VERSION"))
    );
    // No command: the help, on stderr, as a usage error.
    let out = ratelimit(&[], "");
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("Usage: ratelimit <COMMAND>"));
    let out = ratelimit(&["frobnicate"], "");
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).starts_with("error: unrecognized subcommand 'frobnicate'"));
}

#[test]
fn completions_for_every_shell() {
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let out = ratelimit(&["completions", shell], "");
        assert_eq!(out.status.code(), Some(0), "{shell}");
        let script = text(&out.stdout);
        // Fish names options without their dashes.
        for word in ["replay", "inspect", "algorithm", "summary"] {
            assert!(script.contains(word), "{shell}: {word}");
        }
        // The three shells asked for complete values too.
        if ["bash", "zsh", "fish"].contains(&shell) {
            assert!(script.contains("token-bucket"), "{shell}");
        }
    }
    let out = ratelimit(&["completions", "tcsh"], "");
    assert_eq!(out.status.code(), Some(2));
}

/// The bash script completes for real: sourced into bash, it offers the
/// subcommands, the options and the algorithm names.
#[test]
fn bash_completion_completes() {
    let script = text(&ratelimit(&["completions", "bash"], "").stdout);
    let complete = |words: &str| {
        let program = format!(
            "{script}\nCOMP_WORDS=({words}); COMP_CWORD=$((${{#COMP_WORDS[@]}} - 1)); \
             COMP_LINE=\"{words}\"; COMP_POINT=${{#COMP_LINE}}; \
             _ratelimit ratelimit \"${{COMP_WORDS[-1]}}\" \"${{COMP_WORDS[-2]}}\"; \
             printf '%s\\n' \"${{COMPREPLY[@]}}\""
        );
        let out = std::process::Command::new("bash")
            .args(["--norc", "--noprofile", "-c", &program])
            .output()
            .expect("bash runs");
        assert!(out.status.success(), "{}", text(&out.stderr));
        let mut words: Vec<String> = text(&out.stdout).lines().map(str::to_owned).collect();
        words.sort();
        words
    };
    assert_eq!(complete("ratelimit rep"), ["replay"]);
    assert!(complete("ratelimit replay --sum").contains(&"--summary".to_owned()));
    assert_eq!(
        complete("ratelimit replay --algorithm ''"),
        ["leaky-bucket", "token-bucket"]
    );
}
