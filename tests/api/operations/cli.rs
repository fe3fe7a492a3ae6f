//! Each command's `--help` lists its own flags only.

use crate::common::*;

fn help(command: &str) -> TestResult<String> {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_chatql"))
        .args([command, "--help"])
        .output()?;
    assert!(output.status.success(), "{command} --help failed");
    Ok(String::from_utf8(output.stdout)?)
}

#[test]
fn token_and_migrate_list_only_the_flags_they_use() -> TestResult {
    let server_only = [
        "--bind",
        "--cors-origins",
        "--max-page-size",
        "--metrics",
        "--pool-size",
    ];
    let token = help("token")?;
    for own in [
        "--user",
        "--create",
        "--ttl",
        "--database-url",
        "--data-dir",
        "--jwt-secret",
        "--log-format",
    ] {
        assert!(token.contains(own), "token --help lacks {own}:\n{token}");
    }
    let migrate = help("migrate")?;
    for own in ["--database-url", "--data-dir", "--log-format"] {
        assert!(
            migrate.contains(own),
            "migrate --help lacks {own}:\n{migrate}"
        );
    }
    for flag in server_only {
        assert!(!token.contains(flag), "token --help lists {flag}:\n{token}");
        assert!(
            !migrate.contains(flag),
            "migrate --help lists {flag}:\n{migrate}"
        );
    }
    assert!(!migrate.contains("--jwt-secret"), "{migrate}");
    let serve = help("serve")?;
    for flag in server_only
        .iter()
        .chain(&["--database-url", "--jwt-secret", "--log-format"])
    {
        assert!(serve.contains(flag), "serve --help lacks {flag}:\n{serve}");
    }
    Ok(())
}
