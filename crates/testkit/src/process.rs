//! One service child process: launched with its output in a log file, signalled, killed on drop,
//! and waited for with a deadline.

use std::{
    ffi::OsString,
    fs::{File, OpenOptions},
    io::{Read, Seek, SeekFrom},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    thread,
    time::{Duration, Instant},
};

use nix::{sys::signal::Signal, unistd::Pid};

use crate::TestkitError;

/// How often readiness probes run.
pub(crate) const POLL_INTERVAL: Duration = Duration::from_millis(50);
/// How long SIGSTOP or SIGCONT may take to reach every thread.
const SIGNAL_TIMEOUT: Duration = Duration::from_secs(5);
/// How many lines of a log an error shows.
const LOG_TAIL_LINES: usize = 30;

/// A service process we own: the command to (re)launch it, and the running child if any.
#[derive(Debug)]
pub(crate) struct ServiceProcess {
    service: String,
    program: &'static str,
    hint: &'static str,
    args: Vec<OsString>,
    log: PathBuf,
    child: Option<Child>,
    last_pid: u32,
}

impl ServiceProcess {
    /// Describes (does not launch) `program args...`, logging to `log`. `service` names it in
    /// errors; `hint` says how to install `program`.
    pub(crate) fn new(
        service: String,
        program: &'static str,
        hint: &'static str,
        args: Vec<OsString>,
        log: PathBuf,
    ) -> Self {
        Self {
            service,
            program,
            hint,
            args,
            log,
            child: None,
            last_pid: 0,
        }
    }

    pub(crate) fn log(&self) -> &Path {
        &self.log
    }

    /// True while a process was launched and not killed (it may have exited on its own).
    pub(crate) fn is_launched(&self) -> bool {
        self.child.is_some()
    }

    /// The process id of the running child, or of the last one when it was killed.
    pub(crate) fn pid(&self) -> u32 {
        self.last_pid
    }

    /// Launches the process (after killing a running one), stdin closed, stdout and stderr
    /// appended to the log file.
    pub(crate) fn launch(&mut self) -> Result<(), TestkitError> {
        self.kill();
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .map_err(|source| {
                TestkitError::io(format!("opening {}", self.log.display()), source)
            })?;
        let log_for_stderr = log.try_clone().map_err(|source| {
            TestkitError::io(format!("duplicating {}", self.log.display()), source)
        })?;
        let child = Command::new(self.program)
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_for_stderr)
            .spawn()
            .map_err(|source| TestkitError::Spawn {
                service: self.service.clone(),
                program: self.program,
                hint: self.hint,
                source,
            })?;
        self.last_pid = child.id();
        self.child = Some(child);
        Ok(())
    }

    /// Kills the process with SIGKILL (it gets no chance to clean up, like a crash) and reaps it.
    /// Does nothing when it is not running.
    pub(crate) fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            // Both fail only when the child is already gone and reaped, which is the goal.
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Sends `signal` to the running process.
    ///
    /// # Panics
    ///
    /// When the process is not running (killed, or exited): the test is driving a dead service.
    pub(crate) fn signal(&self, signal: Signal) {
        if self.child.is_none() {
            panic!(
                "{}: cannot send {signal}: the process is not running",
                self.service
            );
        }
        let Ok(pid) = i32::try_from(self.last_pid) else {
            panic!(
                "{}: process id {} does not fit a pid_t",
                self.service, self.last_pid
            );
        };
        if let Err(error) = nix::sys::signal::kill(Pid::from_raw(pid), signal) {
            panic!(
                "{}: sending {signal} to pid {pid} failed: {error}",
                self.service
            );
        }
        // Signals are delivered asynchronously: without this wait a test acting right after
        // `stop()` could still be served by a thread that has not stopped yet.
        let want_stopped = match signal {
            Signal::SIGSTOP => true,
            Signal::SIGCONT => false,
            _ => return,
        };
        let deadline = Instant::now() + SIGNAL_TIMEOUT;
        while all_threads_stopped(self.last_pid) != want_stopped {
            if Instant::now() >= deadline {
                panic!(
                    "{}: pid {pid} did not take {signal} within {SIGNAL_TIMEOUT:?}",
                    self.service
                );
            }
            thread::sleep(Duration::from_millis(5));
        }
    }

    /// Polls `ready` every [`POLL_INTERVAL`] until it returns true, the process exits, or
    /// `timeout` passes.
    pub(crate) fn wait_ready(
        &mut self,
        timeout: Duration,
        mut ready: impl FnMut() -> bool,
    ) -> Result<(), TestkitError> {
        let started = Instant::now();
        loop {
            if ready() {
                return Ok(());
            }
            self.check_running()?;
            if started.elapsed() >= timeout {
                return Err(TestkitError::NotReady {
                    service: self.service.clone(),
                    waited: started.elapsed(),
                    log: self.log.clone(),
                    tail: self.log_tail(),
                });
            }
            thread::sleep(POLL_INTERVAL);
        }
    }

    /// An error when the process has exited (or was never launched); reaps it.
    pub(crate) fn check_running(&mut self) -> Result<(), TestkitError> {
        let exited = match self.child.as_mut().map(Child::try_wait) {
            Some(Ok(None)) => return Ok(()),
            Some(Ok(Some(status))) => status,
            Some(Err(source)) => {
                return Err(TestkitError::io(
                    format!("checking on {}", self.service),
                    source,
                ));
            }
            None => {
                return Err(TestkitError::io(
                    format!("checking on {}", self.service),
                    std::io::Error::other("the process is not running"),
                ));
            }
        };
        self.child = None;
        Err(TestkitError::Exited {
            service: self.service.clone(),
            status: exited,
            log: self.log.clone(),
            tail: self.log_tail(),
        })
    }

    /// The last lines of the log file (or why it could not be read).
    pub(crate) fn log_tail(&self) -> String {
        log_tail(&self.log)
    }
}

impl Drop for ServiceProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// True when every thread of process `pid` is stopped (state `T` in `/proc/PID/task/*/stat`);
/// false when any runs, or when the process cannot be inspected.
fn all_threads_stopped(pid: u32) -> bool {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return false;
    };
    let mut any = false;
    for task in tasks {
        let Ok(task) = task else { return false };
        let Ok(stat) = std::fs::read_to_string(task.path().join("stat")) else {
            return false;
        };
        // "PID (COMMAND) STATE ...": the command may hold spaces and parentheses.
        let state = stat
            .rsplit_once(") ")
            .and_then(|(_, rest)| rest.chars().next());
        if !matches!(state, Some('T' | 't')) {
            return false;
        }
        any = true;
    }
    any
}

/// The last [`LOG_TAIL_LINES`] lines of the file at `path` (reads at most its last 64 KiB).
pub(crate) fn log_tail(path: &Path) -> String {
    const MAX_BYTES: u64 = 64 * 1024;
    let read = || -> std::io::Result<String> {
        let mut file = File::open(path)?;
        let length = file.metadata()?.len();
        file.seek(SeekFrom::Start(length.saturating_sub(MAX_BYTES)))?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)?;
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    };
    match read() {
        Ok(text) => {
            let lines: Vec<&str> = text.lines().collect();
            let first = lines.len().saturating_sub(LOG_TAIL_LINES);
            lines[first..].join("\n")
        }
        Err(error) => format!("(cannot read {}: {error})", path.display()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn log_tail_keeps_the_last_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("service.log");
        let mut file = File::create(&path).unwrap();
        for line in 0..100 {
            writeln!(file, "line {line}").unwrap();
        }
        let tail = log_tail(&path);
        assert_eq!(tail.lines().count(), LOG_TAIL_LINES);
        assert!(tail.ends_with("line 99"));
        assert!(tail.starts_with(&format!("line {}", 100 - LOG_TAIL_LINES)));
    }

    #[test]
    fn log_tail_of_a_missing_file_says_so() {
        assert!(log_tail(Path::new("/nonexistent/stratus.log")).contains("cannot read"));
    }

    #[test]
    fn a_process_that_exits_at_once_is_reported_with_its_log() {
        let dir = tempfile::tempdir().unwrap();
        let mut process = ServiceProcess::new(
            "failing service".to_owned(),
            "sh",
            "part of every system",
            vec![
                "-c".into(),
                "echo bind: address already in use; exit 3".into(),
            ],
            dir.path().join("failing.log"),
        );
        process.launch().unwrap();
        let error = process
            .wait_ready(Duration::from_secs(10), || false)
            .unwrap_err();
        assert!(matches!(error, TestkitError::Exited { .. }), "{error}");
        assert!(error.is_port_conflict(), "{error}");
        assert!(error.to_string().contains("failing service"), "{error}");
    }

    #[test]
    fn a_process_that_never_answers_times_out_and_is_killed_on_drop() {
        let dir = tempfile::tempdir().unwrap();
        let mut process = ServiceProcess::new(
            "silent service".to_owned(),
            "sleep",
            "part of every system",
            vec!["600".into()],
            dir.path().join("silent.log"),
        );
        process.launch().unwrap();
        let pid = process.pid();
        let error = process
            .wait_ready(Duration::from_millis(200), || false)
            .unwrap_err();
        assert!(matches!(error, TestkitError::NotReady { .. }), "{error}");
        drop(process);
        assert!(
            !Path::new(&format!("/proc/{pid}")).exists(),
            "pid {pid} outlived its drop"
        );
    }

    #[test]
    fn stop_and_cont_take_effect_before_they_return() {
        let dir = tempfile::tempdir().unwrap();
        let mut process = ServiceProcess::new(
            "sleeper".to_owned(),
            "sleep",
            "part of every system",
            vec!["600".into()],
            dir.path().join("sleeper.log"),
        );
        process.launch().unwrap();
        process.signal(Signal::SIGSTOP);
        assert!(all_threads_stopped(process.pid()));
        process.signal(Signal::SIGCONT);
        assert!(!all_threads_stopped(process.pid()));
    }

    #[test]
    fn a_missing_program_names_the_hint() {
        let dir = tempfile::tempdir().unwrap();
        let mut process = ServiceProcess::new(
            "ghost".to_owned(),
            "stratus-no-such-program",
            "install the ghost",
            Vec::new(),
            dir.path().join("ghost.log"),
        );
        let error = process.launch().unwrap_err();
        assert!(error.to_string().contains("install the ghost"), "{error}");
    }
}
