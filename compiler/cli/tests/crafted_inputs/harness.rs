//! Running the `strata` binary on a crafted input under a memory and a time limit, and what
//! every refusal must look like.

use std::ffi::OsString;
use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// Address-space limit of the CLI under test: every crafted input claims more than this, so
/// an allocation made from a claim instead of from the bytes present aborts the process.
pub const MEMORY_LIMIT: u64 = 1 << 30;
/// Wall-clock limit per run; a valid run of the tiny models here takes well under a second.
pub const TIME_LIMIT: Duration = Duration::from_secs(20);
/// Longest acceptable error output: names and headers quoted from a file are cut.
pub const MAX_STDERR: usize = 2048;

/// The formats the suite covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Format {
    Onnx,
    Strata,
    Npy,
    IrText,
}

/// One crafted input: the command line that reads it and what the error must say.
pub struct Case {
    pub format: Format,
    pub name: &'static str,
    pub args: Vec<OsString>,
    /// Substrings the error message must contain (the typed error's message).
    pub needles: Vec<&'static str>,
}

impl Case {
    pub fn new(format: Format, name: &'static str, args: &[&dyn AsRef<std::ffi::OsStr>]) -> Case {
        Case {
            format,
            name,
            args: args.iter().map(|a| a.as_ref().to_os_string()).collect(),
            needles: Vec::new(),
        }
    }

    pub fn says(mut self, needles: &[&'static str]) -> Case {
        self.needles.extend_from_slice(needles);
        self
    }
}

/// What one run of the CLI did.
pub struct Outcome {
    /// Exit code; `None` when a signal ended it (an abort, the memory limit, the timeout).
    pub code: Option<i32>,
    pub stderr: String,
    pub elapsed: Duration,
    pub timed_out: bool,
}

/// Runs `strata ARGS` with the address space limited to [`MEMORY_LIMIT`], killed after
/// [`TIME_LIMIT`].
pub fn strata_limited(args: &[OsString]) -> Outcome {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_strata"));
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // SAFETY: only async-signal-safe calls (setrlimit) between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            let limit = libc::rlimit {
                rlim_cur: MEMORY_LIMIT as libc::rlim_t,
                rlim_max: MEMORY_LIMIT as libc::rlim_t,
            };
            if libc::setrlimit(libc::RLIMIT_AS, &limit) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let start = Instant::now();
    let mut child = cmd.spawn().expect("strata starts");
    let drain = |mut pipe: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = pipe.read_to_end(&mut buf);
            String::from_utf8_lossy(&buf).into_owned()
        })
    };
    // Standard output is drained (so a full pipe cannot block the child) and dropped.
    let out = drain(Box::new(child.stdout.take().expect("stdout")));
    let err = drain(Box::new(child.stderr.take().expect("stderr")));
    let mut timed_out = false;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if start.elapsed() > TIME_LIMIT {
            timed_out = true;
            let _ = child.kill();
            break child.wait().expect("wait after kill");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let _ = out.join();
    Outcome {
        code: status.code(),
        stderr: err.join().unwrap_or_default(),
        elapsed: start.elapsed(),
        timed_out,
    }
}

/// Whether `message` repeats a run of `: `-separated parts back to back (`X: msg: msg`).
fn repeats_a_cause(message: &str) -> Option<String> {
    let parts: Vec<&str> = message.split(": ").collect();
    for len in 1..=parts.len() / 2 {
        for start in 0..=parts.len() - 2 * len {
            if parts[start..start + len] == parts[start + len..start + 2 * len] {
                return Some(parts[start..start + len].join(": "));
            }
        }
    }
    None
}

/// Runs a case and returns why it does not meet the bar, if it does not: exit code 1 (an
/// error, not a panic or a signal), within the time limit (so no hang) and the memory limit
/// (else an abort), one `error:` line at most [`MAX_STDERR`] bytes naming every needle and
/// saying each cause once.
pub fn check(case: &Case) -> Result<(), String> {
    let o = strata_limited(&case.args);
    let fail = |why: String| {
        Err(format!(
            "{:?}/{}: {why}\n  args: {:?}\n  exit: {:?} after {:.2?}\n  stderr: {}",
            case.format,
            case.name,
            case.args,
            o.code,
            o.elapsed,
            o.stderr.chars().take(600).collect::<String>()
        ))
    };
    if std::env::var_os("CRAFTED_SHOW").is_some() {
        eprintln!(
            "{:?}/{}: exit {:?} in {:.2?}: {}",
            case.format,
            case.name,
            o.code,
            o.elapsed,
            o.stderr.trim_end()
        );
    }
    if o.timed_out {
        return fail(format!("still running after {TIME_LIMIT:?} (a hang)"));
    }
    if o.code != Some(1) {
        return fail("expected exit code 1 (an error); 101 is a panic, none a signal".into());
    }
    if o.stderr.contains("panicked") {
        return fail("panicked".into());
    }
    if o.stderr.len() > MAX_STDERR {
        return fail(format!("{} bytes of error output", o.stderr.len()));
    }
    let Some(message) = o.stderr.lines().find_map(|l| l.strip_prefix("error: ")) else {
        return fail("no `error:` line".into());
    };
    if let Some(part) = repeats_a_cause(message) {
        return fail(format!("says `{part}` twice in a row"));
    }
    for needle in &case.needles {
        if !message.contains(needle) {
            return fail(format!("the error does not say `{needle}`"));
        }
    }
    Ok(())
}

/// Runs every case, reporting all failures together.
pub fn check_all(cases: &[Case]) {
    let failures: Vec<String> = cases.iter().filter_map(|c| check(c).err()).collect();
    assert!(
        failures.is_empty(),
        "{} of {} crafted inputs failed:\n\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n\n")
    );
}

/// A new scratch directory for one group of cases (under the target's temporary directory;
/// numbered, since tests building the same group run at the same time).
pub fn scratch(name: &str) -> PathBuf {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("crafted-{}", std::process::id()))
        .join(format!("{name}-{n}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

/// The repository root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A small valid model (`tiny`: conv + pool + gemm, input `f32[N,1,4,4]`) and a `.strata`
/// compiled from it with 4-bit codes (made once per test run).
pub struct Base {
    pub sir: PathBuf,
    pub strata: PathBuf,
}

pub fn base() -> &'static Base {
    static BASE: OnceLock<Base> = OnceLock::new();
    BASE.get_or_init(|| {
        let dir = scratch("base");
        // The vl-quantize filetest's graph, without its `test <mode>` header line.
        let filetest = root().join("filetests/cases/opt/vl_quantize.sir");
        let text = std::fs::read_to_string(&filetest).expect("the vl-quantize filetest");
        let graph: Vec<&str> = text.lines().filter(|l| !l.starts_with("test ")).collect();
        let sir = dir.join("tiny.sir");
        std::fs::write(&sir, graph.join("\n")).expect("scratch IR file");
        let calib = dir.join("calib.npy");
        let values: Vec<f32> = (0..16 * 16)
            .map(|i| ((i * 37 % 101) as f32) / 50.0 - 1.0)
            .collect();
        let t = strata_ir::Tensor::from_f32(vec![16, 1, 4, 4], values).unwrap();
        strata_compiler::npy::write_npy(&calib, &t).unwrap();
        let strata = dir.join("tiny.strata");
        let path = |p: &PathBuf| p.to_str().expect("UTF-8 scratch path").to_string();
        let (sir_arg, calib_arg, out_arg) = (path(&sir), path(&calib), path(&strata));
        let bin = Path::new(env!("CARGO_BIN_EXE_strata"));
        strata_test_support::cli::ok(
            bin,
            &[
                "compile", &sir_arg, "--calib", &calib_arg, "--bits", "4", "--planes", "2,4", "-o",
                &out_arg,
            ],
        );
        Base { sir, strata }
    })
}

#[test]
fn repeats_a_cause_finds_doubled_messages() {
    assert_eq!(
        repeats_a_cause("a.npy: no such file: no such file"),
        Some("no such file".into())
    );
    assert_eq!(repeats_a_cause("x: a: b: a: b"), Some("a: b".into()));
    assert_eq!(repeats_a_cause("m.onnx: node `a`: input 1: bad"), None);
}
