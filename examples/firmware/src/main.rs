//! The conformance scenarios on a microcontroller: every bucket and window
//! scenario of the project's conformance files, compiled into the image
//! (`build.rs`), run through `ratelimit-embedded`'s `Limiter` over the
//! core, with the results reported over semihosting and the exit status
//! telling QEMU (and so `cargo xtask embedded`) whether all passed.
//!
//! On `thumbv7em-none-eabihf` it runs on QEMU's `mps2-an386` (Cortex-M4F),
//! on `thumbv6m-none-eabi` on QEMU's `microbit` (Cortex-M0, no 64-bit
//! atomics, in parts: 256 KiB of flash). On the host it is a plain program
//! over the same code, and `cargo test -p ratelimit-firmware` tests the
//! runner itself. It is also the worked example of `docs/embedded.md`.

#![cfg_attr(target_os = "none", no_std, no_main)]

mod conformance;
mod format;
mod layout;
mod probe;

use conformance::Report;

/// The scenarios in the compact form of `format.rs`, made by `build.rs`.
static SCENARIOS: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/scenarios.bin"));

/// Runs the self-test and the scenarios; true when everything passed.
fn run(report: &mut impl Report) -> bool {
    if let Err(what) = probe::self_test() {
        report.line(format_args!("self-test failed: {what}"));
        return false;
    }
    match conformance::run(SCENARIOS, report) {
        Ok(tally) => tally.ok(),
        Err(malformed) => {
            report.line(format_args!("cannot read the scenarios: {}", malformed.0));
            false
        }
    }
}

#[cfg(target_os = "none")]
mod bare_metal {
    //! The target's entry point, output and exits.

    use core::fmt;

    use cortex_m_rt::entry;
    use cortex_m_semihosting::{debug, hprintln};

    use crate::conformance::Report;

    /// Lines to the host's stdout, through the debugger (QEMU).
    struct Semihosting;

    impl Report for Semihosting {
        fn line(&mut self, args: fmt::Arguments<'_>) {
            hprintln!("{}", args);
        }
    }

    #[entry]
    fn main() -> ! {
        let passed = crate::run(&mut Semihosting);
        debug::exit(if passed {
            debug::EXIT_SUCCESS
        } else {
            debug::EXIT_FAILURE
        });
        // Only reached without a debugger attached.
        loop {
            cortex_m::asm::wfi();
        }
    }

    /// A panic ends the run with a failure (a halt would leave QEMU
    /// running until the job's timeout).
    #[panic_handler]
    fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
        hprintln!("panic: {}", info);
        debug::exit(debug::EXIT_FAILURE);
        loop {
            cortex_m::asm::wfi();
        }
    }
}

#[cfg(not(target_os = "none"))]
fn main() -> std::process::ExitCode {
    /// Lines to stdout.
    struct Stdout;

    impl Report for Stdout {
        fn line(&mut self, args: core::fmt::Arguments<'_>) {
            println!("{args}");
        }
    }

    if run(&mut Stdout) {
        std::process::ExitCode::SUCCESS
    } else {
        std::process::ExitCode::FAILURE
    }
}
