//! The parent's side of the load processes: spawn P children of this same
//! binary (`ringway-load __child MODE ARGS... --child I OFFSET N`), read
//! their JSON lines with a deadline, broadcast commands on their stdin, and
//! reap them (killing any that outlive a grace period or the parent's
//! error). The child's side — print a line, wait for a command — is here
//! too, so the protocol lives in one file.
//!
//! Protocol (one line each, in order): child → `{"word":"open",...}`;
//! parent → `verify` (or `start`); child → `{"word":"done",...}`. A line is
//! a JSON object: `word` and the fields of the mode's struct for it. A
//! child whose stdin closes exits, and each child asks the kernel to kill
//! it if the parent dies (PR_SET_PDEATHSIG).

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use ringway_bench::hist::Hist;
use ringway_bench::report::Counts;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// One line of the protocol.
#[derive(Serialize, Deserialize)]
struct Msg<W, T> {
    word: W,
    #[serde(flatten)]
    body: T,
}

/// A child's `open` line: how its slice's connections opened.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Open {
    /// TCP-connected.
    pub opened: u64,
    /// Upgraded.
    pub upgraded: u64,
    /// Publishers opened (fanout).
    pub publisher: u64,
    /// Failures by kind.
    pub failures: Counts,
    /// Connect + upgrade latency.
    pub hist: Hist,
}

impl Open {
    /// Add another child's line.
    pub fn merge(&mut self, o: &Open) {
        self.opened += o.opened;
        self.upgraded += o.upgraded;
        self.publisher += o.publisher;
        self.failures.merge(&o.failures);
        self.hist.merge(&o.hist);
    }
}

/// Which slice of the connections a child owns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Slice {
    /// Child number, from 0.
    pub index: usize,
    /// Global index of its first connection (source addresses go
    /// round-robin over global indices).
    pub offset: usize,
    /// How many connections it owns.
    pub n: usize,
}

/// Split `n` connections over at most `procs` children, none empty.
pub fn split(n: usize, procs: usize) -> Vec<Slice> {
    let procs = procs.clamp(1, n.max(1));
    let (base, extra) = (n / procs, n % procs);
    let mut offset = 0;
    (0..procs)
        .map(|index| {
            let n = base + usize::from(index < extra);
            let s = Slice { index, offset, n };
            offset += n;
            s
        })
        .filter(|s| s.n > 0)
        .collect()
}

/// Descriptors a load process keeps for itself besides its connections.
const FD_RESERVE: u64 = 64;

/// Split `n` over at most `procs` children and check that the largest
/// share, plus `extra` connections each (a publisher), fits this
/// process's open-file limit (raised to the hard limit first; children
/// inherit it). Returns the slices and that largest share. `what` names
/// the units in the error ("connections", "workers").
pub fn plan(n: usize, procs: usize, extra: u64, what: &str) -> anyhow::Result<(Vec<Slice>, u64)> {
    let slices = split(n, procs);
    let per = slices.iter().map(|s| s.n).max().unwrap_or(0) as u64 + extra;
    let nofile = ringway_bench::rt::raise_nofile();
    if per + FD_RESERVE > nofile {
        bail!("{per} {what} per process exceed the open-file limit {nofile}; raise --procs");
    }
    Ok((slices, per))
}

/// The running children.
pub struct Fleet {
    children: Vec<Child>,
    stdins: Vec<Option<ChildStdin>>,
    lines: mpsc::Receiver<(usize, Option<String>)>,
}

impl Fleet {
    /// Start one child per slice, each given `args` plus its `--child`.
    pub fn spawn(mode: &str, args: &[String], slices: &[Slice]) -> anyhow::Result<Fleet> {
        let exe = std::env::current_exe().context("locating ringway-load")?;
        let (tx, rx) = mpsc::channel();
        let mut fleet = Fleet {
            children: Vec::new(),
            stdins: Vec::new(),
            lines: rx,
        };
        for s in slices {
            let mut child = Command::new(&exe)
                .args(["__child", mode])
                .args(args)
                .args([
                    "--child",
                    &s.index.to_string(),
                    &s.offset.to_string(),
                    &s.n.to_string(),
                ])
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit())
                .spawn()
                .with_context(|| format!("spawning load process {}", s.index))?;
            let out = child.stdout.take().context("child stdout")?;
            fleet.stdins.push(child.stdin.take());
            fleet.children.push(child);
            let (tx, i) = (tx.clone(), fleet.children.len() - 1);
            std::thread::Builder::new()
                .name(format!("child-{i}-out"))
                .spawn(move || {
                    for line in BufReader::new(out).lines() {
                        let Ok(line) = line else { break };
                        if tx.send((i, Some(line))).is_err() {
                            return;
                        }
                    }
                    let _ = tx.send((i, None));
                })?;
        }
        Ok(fleet)
    }

    /// Number of children.
    pub fn len(&self) -> usize {
        self.children.len()
    }

    /// Wait until every child has sent its `word` line; fail at
    /// `deadline`, or when a child exits first.
    pub fn collect<T: DeserializeOwned>(
        &mut self,
        word: &str,
        deadline: Instant,
    ) -> anyhow::Result<Vec<T>> {
        let mut got: Vec<Option<T>> = (0..self.len()).map(|_| None).collect();
        while got.iter().any(Option::is_none) {
            let left = deadline.saturating_duration_since(Instant::now());
            let (i, line) = match self.lines.recv_timeout(left) {
                Ok(m) => m,
                Err(_) => {
                    let missing = got.iter().filter(|g| g.is_none()).count();
                    bail!("{missing} load process(es) sent no {word:?} line in time");
                }
            };
            let Some(line) = line else {
                // A child may end right after its last line.
                if got[i].is_some() {
                    continue;
                }
                bail!("load process {i} exited before its {word:?} line");
            };
            match serde_json::from_str::<Msg<String, T>>(&line) {
                Ok(m) if m.word == word => got[i] = Some(m.body),
                _ => eprintln!("ringway-load: process {i}: {line}"),
            }
        }
        Ok(got.into_iter().flatten().collect())
    }

    /// Send `cmd` to every child.
    pub fn broadcast(&mut self, cmd: &str) -> anyhow::Result<()> {
        for (i, s) in self.stdins.iter_mut().enumerate() {
            let s = s.as_mut().context("stdin already closed")?;
            writeln!(s, "{cmd}")
                .and_then(|_| s.flush())
                .with_context(|| format!("telling load process {i} to {cmd}"))?;
        }
        Ok(())
    }

    /// Close the children's stdin and reap them, killing any still running
    /// after `grace`.
    pub fn finish(mut self, grace: Duration) {
        self.stdins.clear();
        let deadline = Instant::now() + grace;
        for c in &mut self.children {
            loop {
                match c.try_wait() {
                    Ok(Some(_)) | Err(_) => break,
                    Ok(None) if Instant::now() >= deadline => {
                        let _ = c.kill();
                        let _ = c.wait();
                        break;
                    }
                    Ok(None) => std::thread::sleep(Duration::from_millis(20)),
                }
            }
        }
        self.children.clear();
    }
}

impl Drop for Fleet {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// In a child: die with the parent.
pub fn child_init() {
    // SAFETY: prctl with PR_SET_PDEATHSIG takes a signal number only.
    unsafe {
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
    }
}

/// In a child: send the `word` line with `body`'s fields to the parent.
pub fn send<T: Serialize>(word: &str, body: &T) {
    let line = serde_json::to_string(&Msg { word, body }).expect("a line serialises");
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// In a child: wait for the parent's next command; `None` when its stdin
/// closed. Blocks the thread, which is what an idle holder wants.
pub fn command() -> Option<String> {
    let mut s = String::new();
    match std::io::stdin().lock().read_line(&mut s) {
        Ok(0) | Err(_) => None,
        Ok(_) => Some(s.trim().to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_covers_every_connection_once() {
        let s = split(10, 4);
        assert_eq!(s.iter().map(|s| s.n).collect::<Vec<_>>(), [3, 3, 2, 2]);
        assert_eq!(s.iter().map(|s| s.offset).collect::<Vec<_>>(), [0, 3, 6, 8]);
        assert_eq!(split(2, 4).len(), 2);
        assert_eq!(split(0, 4).len(), 0);
        assert_eq!(split(8000, 4).iter().map(|s| s.n).sum::<usize>(), 8000);
    }

    #[test]
    fn open_lines_round_trip_and_merge() {
        let mut f = Counts::default();
        f.add("connect_refused");
        f.add("handshake_timeout");
        let mut a = Open {
            opened: 9,
            upgraded: 8,
            failures: f,
            ..Open::default()
        };
        a.hist.record_us(250);
        let line = serde_json::to_string(&Msg {
            word: "open",
            body: &a,
        })
        .unwrap();
        assert!(line.starts_with(r#"{"word":"open","opened":9,"#), "{line}");
        let back: Msg<String, Open> = serde_json::from_str(&line).unwrap();
        assert_eq!(back.word, "open");
        a.merge(&back.body);
        a.merge(
            &serde_json::from_str(
                r#"{"opened":1,"upgraded":1,"publisher":0,"failures":{},"hist":[]}"#,
            )
            .unwrap(),
        );
        assert_eq!((a.opened, a.upgraded, a.publisher), (19, 17, 0));
        assert_eq!((a.failures.total(), a.hist.0.len()), (4, 2));
    }
}
