//! The README's two set-up commands are exactly what CI runs, and they name things that exist.

use std::path::PathBuf;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The commands in the README's "Set up" section, in order.
fn setup_commands() -> Vec<String> {
    let readme = std::fs::read_to_string(root().join("README.md")).expect("README.md");
    let section = readme.split("## Set up").nth(1).expect("a Set up section");
    let block = section.split("```sh").nth(1).and_then(|b| b.split("```").next()).expect("a sh block");
    block.lines().map(str::trim).filter(|l| !l.is_empty()).map(String::from).collect()
}

#[test]
fn r_c1_readme_has_exactly_two_setup_commands_the_demo_and_the_tests() {
    let commands = setup_commands();
    assert_eq!(commands.len(), 2, "{commands:?}");
    assert!(commands[0].starts_with("cargo run") && commands[0].ends_with("demo"), "{}", commands[0]);
    assert!(commands[1].starts_with("cargo test"), "{}", commands[1]);
}

#[test]
fn r_c1_ci_runs_the_readme_commands() {
    let ci = std::fs::read_to_string(root().join(".ci/run")).expect(".ci/run");
    for command in setup_commands() {
        assert!(ci.lines().any(|line| line.trim().starts_with(&command)), ".ci/run does not run `{command}`");
    }
}
