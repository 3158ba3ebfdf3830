//! Third-party client processes for the interop suites (`interop_paho.rs`,
//! `interop_mosquitto.rs`): checks that the tools are installed (a missing tool fails the test
//! with the command that installs it; nothing is skipped) and runs a process to completion under
//! a deadline, keeping its output for the failure message.

use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::process::Command;
use tokio::time::timeout;

/// How to install what the paho suite needs.
pub const PAHO_INSTALL: &str = "install Python 3 and paho-mqtt 2.x: `apt-get install python3 \
     python3-pip && pip install 'paho-mqtt>=2,<3'`";

/// How to install what the mosquitto suite needs.
pub const MOSQUITTO_INSTALL: &str =
    "install the mosquitto clients (2.x): `apt-get install mosquitto-clients`";

/// The Python scenario scripts.
pub fn interop_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/interop")
}

/// Panics, saying how to install them, unless `python3` and paho-mqtt 2.x are available.
pub fn require_paho() {
    static CHECKED: OnceLock<Result<String, String>> = OnceLock::new();
    let found = CHECKED.get_or_init(|| {
        let out = std::process::Command::new("python3")
            .args(["-c", "import paho.mqtt; print(paho.mqtt.__version__)"])
            .output()
            .map_err(|e| format!("cannot run python3: {e}"))?;
        let version = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        if !out.status.success() {
            return Err(format!(
                "python3 cannot import paho.mqtt: {}",
                String::from_utf8_lossy(&out.stderr)
                    .lines()
                    .last()
                    .unwrap_or("")
            ));
        }
        if !version.starts_with("2.") {
            return Err(format!("paho-mqtt {version} is installed, 2.x is needed"));
        }
        Ok(version)
    });
    if let Err(problem) = found {
        panic!("{problem}; {PAHO_INSTALL}");
    }
}

/// Panics, saying how to install them, unless `mosquitto_pub` and `mosquitto_sub` with MQTT 5.0
/// support are on the PATH.
pub fn require_mosquitto_clients() {
    static CHECKED: OnceLock<Result<(), String>> = OnceLock::new();
    let found = CHECKED.get_or_init(|| {
        for tool in ["mosquitto_pub", "mosquitto_sub"] {
            // `--help` exits non-zero; the usage text is what tells the version apart.
            let out = std::process::Command::new(tool)
                .arg("--help")
                .output()
                .map_err(|e| format!("cannot run {tool}: {e}"))?;
            let usage = String::from_utf8_lossy(&out.stdout);
            if !usage.contains("mqttv5") {
                return Err(format!("{tool} does not support MQTT 5.0 (`-V mqttv5`)"));
            }
        }
        Ok(())
    });
    if let Err(problem) = found {
        panic!("{problem}; {MOSQUITTO_INSTALL}");
    }
}

/// A process that ran to completion.
#[derive(Debug)]
pub struct Finished {
    /// How it exited.
    pub status: ExitStatus,
    /// Everything it wrote to stdout.
    pub stdout: String,
    /// Everything it wrote to stderr.
    pub stderr: String,
}

impl Finished {
    /// Panics with the output unless the process exited 0.
    pub fn assert_success(&self, what: &str) {
        assert!(
            self.status.success(),
            "{what} failed ({}).\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.status,
            self.stdout,
            self.stderr
        );
    }
}

/// Runs `cmd` with captured output; kills it and panics with what it printed if it is still
/// running after `wait`.
pub async fn run_process(mut cmd: Command, what: &str, wait: Duration) -> Finished {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {what}: {e}"));
    let stdout = tokio::spawn(read_all(child.stdout.take()));
    let stderr = tokio::spawn(read_all(child.stderr.take()));
    let status = match timeout(wait, child.wait()).await {
        Ok(status) => status.unwrap_or_else(|e| panic!("waiting for {what}: {e}")),
        Err(_) => {
            let _ = child.kill().await;
            let (out, err) = (stdout.await.unwrap(), stderr.await.unwrap());
            panic!(
                "{what} still running after {wait:?}; killed.\n--- stdout ---\n{out}\n\
                 --- stderr ---\n{err}"
            );
        }
    };
    Finished {
        status,
        stdout: stdout.await.unwrap(),
        stderr: stderr.await.unwrap(),
    }
}

/// Reads a pipe to its end (lossy UTF-8).
pub async fn read_all(pipe: Option<impl AsyncRead + Unpin>) -> String {
    let mut bytes = Vec::new();
    if let Some(mut pipe) = pipe {
        let _ = pipe.read_to_end(&mut bytes).await;
    }
    String::from_utf8_lossy(&bytes).into_owned()
}
