//! MQTT.js (the npm `mqtt` package) run by Node for `interop_mqttjs.rs`: checks that Node and the
//! pinned package are installed (if not, the test fails with the command that installs them;
//! nothing is skipped) and runs one scenario of `tests/interop-js/scenarios.js`.

use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Duration;

use tokio::process::Command;

use super::interop::{Finished, run_process};

/// How to install what the MQTT.js suite needs (from the repository root).
pub const MQTTJS_INSTALL: &str = "install Node.js 18+ and npm (`apt-get install nodejs npm`), then \
     the pinned MQTT.js: `npm ci --prefix edge/tests/interop-js --no-audit --no-fund`";

/// Longest a scenario may run (the script's own watchdog fires at 20 s).
const SCENARIO_TIMEOUT: Duration = Duration::from_secs(30);

/// The Node project holding the scenarios.
pub fn interop_js_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/interop-js")
}

/// Panics, saying how to install them, unless Node 18+ and the MQTT.js version pinned in
/// `package.json` are installed.
pub fn require_mqttjs() {
    static CHECKED: OnceLock<Result<(), String>> = OnceLock::new();
    let found = CHECKED.get_or_init(|| {
        let out = std::process::Command::new("node")
            .arg("--version")
            .output()
            .map_err(|e| format!("cannot run node: {e}"))?;
        let version = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        let major: u32 = version
            .trim_start_matches('v')
            .split('.')
            .next()
            .and_then(|m| m.parse().ok())
            .unwrap_or(0);
        if major < 18 {
            return Err(format!(
                "node {version} is installed, 18 or later is needed"
            ));
        }
        let dir = interop_js_dir();
        let manifest = std::fs::read_to_string(dir.join("package.json")).unwrap();
        let pinned = json_string_after(&manifest, "\"mqtt\"")
            .ok_or("tests/interop-js/package.json does not pin `mqtt`")?;
        let installed = std::fs::read_to_string(dir.join("node_modules/mqtt/package.json"))
            .map_err(|_| "MQTT.js is not installed in tests/interop-js/node_modules".to_owned())?;
        let installed = json_string_after(&installed, "\"version\"").unwrap_or_default();
        if installed != pinned {
            return Err(format!(
                "MQTT.js {installed} is installed, package.json pins {pinned}"
            ));
        }
        Ok(())
    });
    if let Err(problem) = found {
        panic!("{problem}; {MQTTJS_INSTALL}");
    }
}

/// The string value following `key` in a JSON document (enough for `package.json`).
fn json_string_after(json: &str, key: &str) -> Option<String> {
    let rest = &json[json.find(key)? + key.len()..];
    let rest = rest.trim_start().strip_prefix(':')?.trim_start();
    let rest = rest.strip_prefix('"')?;
    Some(rest[..rest.find('"')?].to_owned())
}

/// Runs `node scenarios.js ARGS` and returns how it ended.
pub async fn run_mqttjs(args: &[String]) -> Finished {
    require_mqttjs();
    let mut cmd = Command::new("node");
    cmd.arg(interop_js_dir().join("scenarios.js")).args(args);
    let what = format!("MQTT.js {}", args.join(" "));
    run_process(cmd, &what, SCENARIO_TIMEOUT).await
}
