//! The Lambda functions' build script (each function's `Cargo.toml` names it): their binaries are
//! linked as position-dependent executables on Linux.
//!
//! Why: a position-independent executable is relocated by the dynamic loader at every start, and
//! with the AWS SDK linked in that is ~40,000 relocations touching ~150 pages of `.data.rel.ro`
//! (and reading ~1 MB of relocation table) — page faults a cold start pays on every invocation's
//! sandbox. Linked at a fixed address the loader has nothing to do (177 relocations left).
//! Measured with `scripts/bench-cold`: the scenes function's cold init 3.16 → 2.75 ms, its CPU to
//! the first response 1.86× → 1.58× the floor. The cost: the executable itself is not placed at a
//! random address (its libraries, heap and stacks still are); the code is Rust with
//! `unsafe_code = "forbid"`, running alone in a Lambda sandbox. `aivideo` (the local server) keeps
//! the default.

// Cargo reads its instructions from the build script's standard output.
#![allow(clippy::print_stdout)]

fn main() {
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux") {
        println!("cargo:rustc-link-arg-bins=-no-pie");
    }
    println!("cargo:rerun-if-changed=../lambda_link.rs");
}
