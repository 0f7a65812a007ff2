//! The `ratelimit` binary, run as a user runs it: replay output and errors,
//! the command line (help, version, usage errors), shell completions.

mod common;

use common::{every_scenario_through_the_binary, ratelimit, replay_args, text};
use ratelimit_replay::{BUCKET_FILES, POLICY_FILES, WINDOW_FILES};

#[test]
fn replay_passes_every_bucket_scenario() {
    every_scenario_through_the_binary(&BUCKET_FILES, 180, &[]);
}

#[test]
fn replay_passes_every_window_scenario() {
    every_scenario_through_the_binary(&WINDOW_FILES, 180, &[]);
}

/// `reconfigure` events and keys' own quotas, on the memory backend.
#[test]
fn replay_passes_every_policy_scenario() {
    every_scenario_through_the_binary(&POLICY_FILES, 120, &[]);
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
        error: invalid limit for token-bucket: capacity must be at least 1

        Usage: ratelimit replay [OPTIONS] --algorithm <ALGORITHM> --capacity <C> <--rate <R>|--window <W>>

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
          [possible values: token-bucket, leaky-bucket, fixed-window, sliding-window]

        For more information, try '--help'.

        $ ratelimit replay --capacity 3 --rate 1
        error: the following required arguments were not provided:
          --algorithm <ALGORITHM>

        Usage: ratelimit replay --algorithm <ALGORITHM> --capacity <C> <--rate <R>|--window <W>>

        For more information, try '--help'.

        $ ratelimit replay --algorithm token-bucket --capacity 3 --rate
        error: a value is required for '--rate <R>' but none was supplied

        For more information, try '--help'.

        $ ratelimit replay --algorithm token-bucket --capacity 3 --rate 1 --backend redis
        error: --backend redis needs --redis-url

        Usage: ratelimit replay [OPTIONS] --algorithm <ALGORITHM> --capacity <C> <--rate <R>|--window <W>>

        For more information, try '--help'.

        $ ratelimit replay --algorithm token-bucket --capacity 3 --rate 1 --prefix p
        error: --redis-url and --prefix need --backend redis

        Usage: ratelimit replay [OPTIONS] --algorithm <ALGORITHM> --capacity <C> <--rate <R>|--window <W>>

        For more information, try '--help'.

        $ ratelimit replay --algorithm token-bucket --capacity 3 --rate 1 --summry
        error: unexpected argument '--summry' found

          tip: a similar argument exists: '--summary'

        Usage: ratelimit replay --algorithm <ALGORITHM> --capacity <C> --summary <--rate <R>|--window <W>>

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
              --algorithm <ALGORITHM>  The limiter's algorithm (to read its keys and show what is left) [default: token-bucket] [possible values: token-bucket, leaky-bucket, fixed-window, sliding-window]
              --capacity <C>           The limiter's capacity (a bucket's with --rate: shows tokens or level; a window's limit: shows what is left)
              --rate <R>               A bucket's rate in units per second (with --capacity)
              --window <W>             A window algorithm's window (250ns, 10us, 1500ms, 60s, 5m, 1h): needed to read a window's key
          -h, --help                   Print help

        A bucket's key: prints the stored tat, the server's time, the TTL, the
        time until reset and, given --capacity and --rate, the tokens (token
        bucket) or level (leaky bucket) now. A window's key (--window W, the
        limiter's window): prints the stored window index and counts instead of
        tat, and, given --capacity, what is left of the limit now. Times are on
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
        [
            "fixed-window",
            "leaky-bucket",
            "sliding-window",
            "token-bucket"
        ]
    );
}

/// Runs each command line (after `ratelimit`) on `input`, asserting its
/// exit status, and returns the transcript of what each printed to stderr.
fn transcript(cases: &[&[&str]], input: &str, status: i32) -> String {
    let mut all = String::new();
    for args in cases {
        let out = ratelimit(args, input);
        assert_eq!(out.status.code(), Some(status), "{args:?}");
        all += &format!("$ ratelimit {}\n{}\n", args.join(" "), text(&out.stderr));
    }
    all
}

/// A window is a whole number and a unit; anything else, or a limit that
/// does not fit the algorithm, is a usage error (exit status 2) naming the
/// option, before any input is read.
#[test]
fn bad_windows_get_clear_errors() {
    let window = |w: &'static str| -> Vec<&'static str> {
        vec![
            "replay",
            "--algorithm",
            "fixed-window",
            "--capacity",
            "5",
            "--window",
            w,
        ]
    };
    let cases: Vec<Vec<&str>> = vec![
        window("1.5s"),
        window("60"),
        window("10 s"),
        window("-1s"),
        window("1d"),
        window("0ms"),
        window("5124096h"),
        vec![
            "replay",
            "--algorithm",
            "sliding-window",
            "--capacity",
            "5",
            "--rate",
            "1",
        ],
        vec![
            "replay",
            "--algorithm",
            "token-bucket",
            "--capacity",
            "5",
            "--window",
            "1s",
        ],
        vec![
            "replay",
            "--algorithm",
            "fixed-window",
            "--capacity",
            "5",
            "--window",
            "1s",
            "--rate",
            "1",
        ],
        vec!["replay", "--algorithm", "sliding-window", "--capacity", "5"],
        vec![
            "replay",
            "--algorithm",
            "sliding-window",
            "--capacity",
            "4294967296",
            "--window",
            "1s",
        ],
        vec![
            "replay",
            "--algorithm",
            "fixed-window",
            "--capacity",
            "0",
            "--window",
            "1s",
        ],
    ];
    let cases: Vec<&[&str]> = cases.iter().map(Vec::as_slice).collect();
    insta::assert_snapshot!(transcript(&cases, "", 2), @r"
        $ ratelimit replay --algorithm fixed-window --capacity 5 --window 1.5s
        error: invalid value '1.5s' for '--window <W>': must be a whole number and a unit (ns, us, ms, s, m or h), such as 250ns, 1500ms, 60s or 5m

        For more information, try '--help'.

        $ ratelimit replay --algorithm fixed-window --capacity 5 --window 60
        error: invalid value '60' for '--window <W>': must be a whole number and a unit (ns, us, ms, s, m or h), such as 250ns, 1500ms, 60s or 5m

        For more information, try '--help'.

        $ ratelimit replay --algorithm fixed-window --capacity 5 --window 10 s
        error: invalid value '10 s' for '--window <W>': must be a whole number and a unit (ns, us, ms, s, m or h), such as 250ns, 1500ms, 60s or 5m

        For more information, try '--help'.

        $ ratelimit replay --algorithm fixed-window --capacity 5 --window -1s
        error: invalid value '-1s' for '--window <W>': must be a whole number and a unit (ns, us, ms, s, m or h), such as 250ns, 1500ms, 60s or 5m

        For more information, try '--help'.

        $ ratelimit replay --algorithm fixed-window --capacity 5 --window 1d
        error: invalid value '1d' for '--window <W>': must be a whole number and a unit (ns, us, ms, s, m or h), such as 250ns, 1500ms, 60s or 5m

        For more information, try '--help'.

        $ ratelimit replay --algorithm fixed-window --capacity 5 --window 0ms
        error: invalid value '0ms' for '--window <W>': window must be at least 1 ns

        For more information, try '--help'.

        $ ratelimit replay --algorithm fixed-window --capacity 5 --window 5124096h
        error: invalid value '5124096h' for '--window <W>': window is longer than 2^64 nanoseconds (about 584 years)

        For more information, try '--help'.

        $ ratelimit replay --algorithm sliding-window --capacity 5 --rate 1
        error: invalid limit for sliding-window: a window algorithm takes a window (such as 60s), not a rate

        Usage: ratelimit replay [OPTIONS] --algorithm <ALGORITHM> --capacity <C> <--rate <R>|--window <W>>

        For more information, try '--help'.

        $ ratelimit replay --algorithm token-bucket --capacity 5 --window 1s
        error: invalid limit for token-bucket: a bucket takes a rate (units per second), not a window

        Usage: ratelimit replay [OPTIONS] --algorithm <ALGORITHM> --capacity <C> <--rate <R>|--window <W>>

        For more information, try '--help'.

        $ ratelimit replay --algorithm fixed-window --capacity 5 --window 1s --rate 1
        error: the argument '--window <W>' cannot be used with '--rate <R>'

        Usage: ratelimit replay --algorithm <ALGORITHM> --capacity <C> <--rate <R>|--window <W>>

        For more information, try '--help'.

        $ ratelimit replay --algorithm sliding-window --capacity 5
        error: the following required arguments were not provided:
          <--rate <R>|--window <W>>

        Usage: ratelimit replay --algorithm <ALGORITHM> --capacity <C> <--rate <R>|--window <W>>

        For more information, try '--help'.

        $ ratelimit replay --algorithm sliding-window --capacity 4294967296 --window 1s
        error: invalid limit for sliding-window: a sliding window's limit must be below 2^32 (4 294 967 296) per window

        Usage: ratelimit replay [OPTIONS] --algorithm <ALGORITHM> --capacity <C> <--rate <R>|--window <W>>

        For more information, try '--help'.

        $ ratelimit replay --algorithm fixed-window --capacity 0 --window 1s
        error: invalid limit for fixed-window: capacity must be at least 1

        Usage: ratelimit replay [OPTIONS] --algorithm <ALGORITHM> --capacity <C> <--rate <R>|--window <W>>

        For more information, try '--help'.
        ");
}

/// Both window algorithms through the binary: a fixed window admits its
/// limit and resets at the window's end, aligned to time 0; the sliding
/// window still counts the previous window's share.
#[test]
fn windows_replay() {
    let input = concat!(
        r#"{"t_ns": 1000000000, "key": "a", "op": "check", "cost": 3}"#,
        "\n",
        r#"{"t_ns": 1500000000, "key": "a", "op": "check"}"#,
        "\n",
        r#"{"t_ns": 2000000000, "key": "a", "op": "check"}"#,
        "\n",
        r#"{"t_ns": 2500000000, "key": "a", "op": "check", "cost": 2}"#,
        "\n",
    );
    let mut all = String::new();
    for algorithm in ["fixed-window", "sliding-window"] {
        let args = [
            "replay",
            "--algorithm",
            algorithm,
            "--capacity",
            "3",
            "--window",
            "1s",
        ];
        let out = ratelimit(&args, input);
        assert!(out.status.success(), "{}", text(&out.stderr));
        all += &format!("{algorithm}:\n{}", text(&out.stdout));
    }
    insta::assert_snapshot!(all, @r#"
        fixed-window:
        {"allowed": true, "remaining": 0, "retry_after_ns": null, "reset_after_ns": 1000000000}
        {"allowed": false, "remaining": 0, "retry_after_ns": 500000000, "reset_after_ns": 500000000}
        {"allowed": true, "remaining": 2, "retry_after_ns": null, "reset_after_ns": 1000000000}
        {"allowed": true, "remaining": 0, "retry_after_ns": null, "reset_after_ns": 500000000}
        sliding-window:
        {"allowed": true, "remaining": 0, "retry_after_ns": null, "reset_after_ns": 2000000000}
        {"allowed": false, "remaining": 0, "retry_after_ns": 833333334, "reset_after_ns": 1500000000}
        {"allowed": false, "remaining": 0, "retry_after_ns": 333333334, "reset_after_ns": 1000000000}
        {"allowed": false, "remaining": 1, "retry_after_ns": 166666667, "reset_after_ns": 500000000}
        "#);
}

/// What a window algorithm does not do (`reserve`; a `reconfigure` or a
/// key's own quota, both given as capacity and rate) stops the replay with
/// an error naming the line (exit status 1), after answering the lines
/// before it.
#[test]
fn events_a_window_cannot_run_name_their_line() {
    let ok = "{\"t_ns\": 1, \"key\": \"a\", \"op\": \"check\"}\n";
    let mut all = String::new();
    for line in [
        r#"{"t_ns": 2, "key": "a", "op": "reserve", "max_wait_ns": 10}"#,
        r#"{"t_ns": 2, "op": "reconfigure", "capacity": 3, "rate": 1}"#,
        r#"{"t_ns": 2, "key": "b", "op": "check", "capacity": 3, "rate": 1}"#,
    ] {
        let args = [
            "replay",
            "--algorithm",
            "sliding-window",
            "--capacity",
            "5",
            "--window",
            "10s",
        ];
        let out = ratelimit(&args, &format!("{ok}{ok}{line}\n{ok}"));
        assert_eq!(out.status.code(), Some(1));
        assert_eq!(text(&out.stdout).lines().count(), 2);
        all += &format!("{line}\n{}", text(&out.stderr));
    }
    insta::assert_snapshot!(all, @r#"
        {"t_ns": 2, "key": "a", "op": "reserve", "max_wait_ns": 10}
        error: line 3: reserve is not available under sliding-window: a window algorithm only polices (check); shaping needs token-bucket or leaky-bucket
        {"t_ns": 2, "op": "reconfigure", "capacity": 3, "rate": 1}
        error: line 3: a reconfigure event: a quota of capacity and rate needs token-bucket or leaky-bucket; sliding-window takes a limit per window
        {"t_ns": 2, "key": "b", "op": "check", "capacity": 3, "rate": 1}
        error: line 3: a key's own quota (capacity and rate on a check): a quota of capacity and rate needs token-bucket or leaky-bucket; sliding-window takes a limit per window
        "#);
}

/// Quota changes through the binary: a reconfiguration keeps what keys
/// consumed (keep-consumed), or what they have left, or starts afresh; a
/// key given its own quota keeps it across a later reconfiguration.
#[test]
fn reconfigure_and_own_quotas_replay() {
    let input = concat!(
        r#"{"t_ns": 0, "key": "free", "op": "check", "cost": 4}"#,
        "\n",
        r#"{"t_ns": 0, "key": "vip", "op": "check", "cost": 4, "capacity": 100, "rate": 10}"#,
        "\n",
        r#"{"t_ns": 0, "op": "reconfigure", "capacity": 20, "rate": 1}"#,
        "\n",
        r#"{"t_ns": 0, "key": "free", "op": "check", "cost": 0}"#,
        "\n",
        r#"{"t_ns": 0, "key": "vip", "op": "check", "cost": 0}"#,
        "\n",
        r#"{"t_ns": 0, "op": "reconfigure", "capacity": 10, "rate": 1, "strategy": "keep-available"}"#,
        "\n",
        r#"{"t_ns": 0, "key": "free", "op": "check", "cost": 0}"#,
        "\n",
        r#"{"t_ns": 0, "op": "reconfigure", "capacity": 10, "rate": 1, "strategy": "reset"}"#,
        "\n",
        r#"{"t_ns": 0, "key": "free", "op": "reserve", "cost": 10}"#,
        "\n",
    );
    let out = ratelimit(&replay_args("token-bucket", "10", "1"), input);
    assert!(out.status.success(), "{}", text(&out.stderr));
    insta::assert_snapshot!(text(&out.stdout), @r#"
        {"allowed": true, "remaining": 6, "retry_after_ns": null, "reset_after_ns": 4000000000}
        {"allowed": true, "remaining": 96, "retry_after_ns": null, "reset_after_ns": 400000000}
        {"reconfigured": true}
        {"allowed": true, "remaining": 16, "retry_after_ns": null, "reset_after_ns": 4000000000}
        {"allowed": true, "remaining": 96, "retry_after_ns": null, "reset_after_ns": 400000000}
        {"reconfigured": true}
        {"allowed": true, "remaining": 10, "retry_after_ns": null, "reset_after_ns": 0}
        {"reconfigured": true}
        {"allowed": true, "wait_ns": 0}
        "#);
    // The summary counts requests only: 4 for free, 2 for vip, none of
    // the reconfigurations.
    let mut args = replay_args("token-bucket", "10", "1");
    args.push("--summary");
    let out = ratelimit(&args, input);
    assert!(out.status.success());
    let summary = text(&out.stderr);
    let rows: Vec<&str> = summary.lines().take(5).collect();
    assert_eq!(
        rows,
        [
            "key       allowed      denied   denied%",
            "free            4           0      0.0%",
            "vip             2           0      0.0%",
            "---------------------------------------",
            "total           6           0      0.0%",
        ]
    );
}

/// A `reconfigure` or quota that is not valid stops the replay with an
/// error naming the line and what is wrong (exit status 1).
#[test]
fn bad_quota_events_name_their_line() {
    let ok = "{\"t_ns\": 1, \"key\": \"a\", \"op\": \"check\"}\n";
    let mut all = String::new();
    for line in [
        r#"{"t_ns": 2, "op": "reconfigure", "capacity": 3}"#,
        r#"{"t_ns": 2, "op": "reconfigure", "capacity": 3, "rate": 1, "strategy": "keep"}"#,
        r#"{"t_ns": 2, "op": "reconfigure", "key": "a", "capacity": 3, "rate": 1}"#,
        r#"{"t_ns": 2, "op": "reconfigure", "capacity": 0, "rate": 1}"#,
        r#"{"t_ns": 2, "op": "reconfigure", "capacity": 3, "rate": "fast"}"#,
        r#"{"t_ns": 2, "key": "a", "op": "check", "capacity": 3, "rate": 2e9}"#,
        r#"{"t_ns": 2, "key": "a", "op": "check", "strategy": "reset"}"#,
        r#"{"t_ns": 0, "op": "reconfigure", "capacity": 3, "rate": 1}"#,
    ] {
        let out = ratelimit(
            &replay_args("leaky-bucket", "5", "1"),
            &format!("{ok}{line}\n{ok}"),
        );
        assert_eq!(out.status.code(), Some(1), "{line}");
        assert_eq!(text(&out.stdout).lines().count(), 1, "{line}");
        all += &format!("{line}\n{}", text(&out.stderr));
    }
    insta::assert_snapshot!(all, @r#"
        {"t_ns": 2, "op": "reconfigure", "capacity": 3}
        error: line 2: malformed event: `capacity` and `rate` go together
        {"t_ns": 2, "op": "reconfigure", "capacity": 3, "rate": 1, "strategy": "keep"}
        error: line 2: malformed event: unknown strategy "keep", expected one of keep-consumed, keep-available, proportional, reset
        {"t_ns": 2, "op": "reconfigure", "key": "a", "capacity": 3, "rate": 1}
        error: line 2: malformed event: a reconfigure event applies to every key: it takes no `key`, `cost` or `max_wait_ns`
        {"t_ns": 2, "op": "reconfigure", "capacity": 0, "rate": 1}
        error: line 2: malformed event: invalid quota (capacity 0, rate 1): capacity must be at least 1
        {"t_ns": 2, "op": "reconfigure", "capacity": 3, "rate": "fast"}
        error: line 2: malformed event: invalid type: string "fast", expected a JSON number (column 62)
        {"t_ns": 2, "key": "a", "op": "check", "capacity": 3, "rate": 2e9}
        error: line 2: malformed event: invalid quota (capacity 3, rate 2000000000.0): rate is above one unit per nanosecond
        {"t_ns": 2, "key": "a", "op": "check", "strategy": "reset"}
        error: line 2: malformed event: `strategy` belongs to reconfigure events (a key's own quota converts with keep-consumed)
        {"t_ns": 0, "op": "reconfigure", "capacity": 3, "rate": 1}
        error: line 2: t_ns 0 is before the previous event's 1; time must never decrease
        "#);
}

#[test]
fn replay_help() {
    let out = ratelimit(&["replay", "--help"], "");
    assert!(out.status.success());
    insta::assert_snapshot!(text(&out.stdout), @r#"
        Replay JSON Lines of events from stdin through a limiter and print each decision

        Usage: ratelimit replay [OPTIONS] --algorithm <ALGORITHM> --capacity <C> <--rate <R>|--window <W>>

        Options:
              --algorithm <ALGORITHM>
                  The algorithm
                  
                  [possible values: token-bucket, leaky-bucket, fixed-window, sliding-window]

              --capacity <C>
                  The capacity: the burst size of a token bucket, the queue length of a leaky bucket, the limit per window of a window algorithm

              --rate <R>
                  The rate of a bucket in units per second, a decimal number (2, 0.5, 2.5e6)

              --window <W>
                  The window of a window algorithm: a whole number and a unit (250ns, 10us, 1500ms, 60s, 5m, 1h)

              --backend <BACKEND>
                  Where the state lives

                  Possible values:
                  - memory: In this process (the keyed in-memory limiter on the events' clock)
                  - redis:  In Redis, with the events' times as client time
                  
                  [default: memory]

              --redis-url <URL>
                  The Redis to replay against (with --backend redis), e.g. redis://127.0.0.1:6379/0

              --prefix <P>
                  The key prefix in Redis (with --backend redis); by default a fresh one per replay, so that the same input gives the same output

              --summary
                  Also print per-key allowed/denied counts and a histogram of the denials over time, to stderr

          -h, --help
                  Print help (see a summary with '-h')

        Reads events, one JSON object per line, from stdin:
          {"t_ns": 1000000000, "key": "user1", "op": "check", "cost": 1}
          {"t_ns": 1000000500, "key": "user1", "op": "reserve", "cost": 2, "max_wait_ns": 5000000}
          {"t_ns": 2000000000, "op": "reconfigure", "capacity": 20, "rate": 4, "strategy": "keep-consumed"}
          {"t_ns": 2000000100, "key": "vip", "op": "check", "capacity": 100, "rate": 50}
        and writes one line per event, in order, to stdout:
          {"allowed": true, "remaining": 9, "retry_after_ns": null, "reset_after_ns": 500000000}
          {"allowed": true, "wait_ns": 0}
          {"reconfigured": true}
          {"allowed": true, "remaining": 99, "retry_after_ns": null, "reset_after_ns": 20000000}
        Time comes from the events (t_ns, nanoseconds, never decreasing), never
        from a clock. `cost` defaults to 1; `max_wait_ns` absent or null means no
        bound. A `reconfigure` changes the quota of every key without its own
        (strategy: keep-consumed, the default, keep-available, proportional or
        reset); `capacity` and `rate` on a request give that key a quota of its
        own from then on. Both need a bucket; a window algorithm answers `check`
        only. Lines are at most 1 MiB.

        Exit status: 0 when every line was answered; 1 when the input or the
        backend failed (the error names the line; the lines before it were
        answered); 2 for a malformed command line.
        "#);
}

/// The Redis backend runs the window algorithms' `check`; a `reserve`
/// under one is refused naming its line before anything is sent to Redis
/// (here, to no Redis at all).
#[test]
fn redis_backend_refuses_reserve_under_a_window() {
    let out = ratelimit(
        &[
            "replay",
            "--algorithm",
            "fixed-window",
            "--capacity",
            "5",
            "--window",
            "1s",
            "--backend",
            "redis",
            "--redis-url",
            "redis://127.0.0.1:1/",
        ],
        "{\"t_ns\": 1, \"key\": \"a\", \"op\": \"reserve\"}\n",
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    insta::assert_snapshot!(text(&out.stderr), @r"error: line 1: reserve is not available under fixed-window: a window algorithm only polices (check); shaping needs token-bucket or leaky-bucket");
}

/// A window the Redis scripts cannot compute exactly (in doubles) is
/// refused as a usage error before Redis is contacted, never approximated;
/// the memory backend runs it.
#[test]
fn redis_backend_refuses_windows_it_cannot_run_exactly() {
    let limit = [
        "replay",
        "--algorithm",
        "sliding-window",
        "--capacity",
        "3000",
        "--window",
        "1h",
    ];
    let mut args = limit.to_vec();
    args.extend(["--backend", "redis", "--redis-url", "redis://127.0.0.1:1/"]);
    let input = "{\"t_ns\": 1, \"key\": \"a\", \"op\": \"check\"}\n";
    let out = ratelimit(&args, input);
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
    insta::assert_snapshot!(text(&out.stderr), @r"
        error: bad Redis limiter configuration: a sliding window of 3000 per 3600000000000 ns: the Redis scripts compute exactly in doubles and need (limit + 1) × window below 2^53 (e.g. up to 2 500 000 per second, 2 500 per hour)

        Usage: ratelimit replay [OPTIONS] --algorithm <ALGORITHM> --capacity <C> <--rate <R>|--window <W>>

        For more information, try '--help'.
        ");
    assert!(ratelimit(&limit, input).status.success());
}

/// The policy-simulation example of the crate's README prints what the
/// README says it prints.
#[test]
fn readme_example_is_true() {
    let readme = include_str!("../README.md");
    let blocks: Vec<&str> = readme
        .split("```text\n")
        .skip(1)
        .map(|b| b.split("```").next().unwrap())
        .collect();
    let input = blocks
        .iter()
        .find(|b| b.contains("\"op\": \"reconfigure\""))
        .expect("the README's plans.jsonl");
    let expected = blocks
        .iter()
        .find(|b| b.starts_with("{\"allowed\""))
        .expect("the README's output");
    let out = ratelimit(&replay_args("token-bucket", "10", "1"), input);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), *expected);
    // The window example: 55 s to 64 s, one request a second.
    let edge: String = (55..65u64)
        .map(|s| {
            format!(
                "{{\"t_ns\": {}, \"key\": \"alice\", \"op\": \"check\"}}\n",
                s * 1_000_000_000
            )
        })
        .collect();
    for (algorithm, row) in [
        ("fixed-window", "alice          10           0      0.0%"),
        ("sliding-window", "alice           5           5     50.0%"),
    ] {
        let args = [
            "replay",
            "--algorithm",
            algorithm,
            "--capacity",
            "5",
            "--window",
            "1m",
            "--summary",
        ];
        let out = ratelimit(&args, &edge);
        assert!(out.status.success());
        assert_eq!(text(&out.stderr).lines().nth(1), Some(row), "{algorithm}");
        assert!(readme.contains(&format!("{row}        ({algorithm})")));
    }
}
