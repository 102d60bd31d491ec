//! Running independent builds in parallel, bounded by `-j`, in dependency order, with output
//! that stays readable: one line per finished job, a progress line only on a terminal.

use std::sync::{Condvar, Mutex};

use crate::console::Console;
use crate::error::ActionError;

/// What `-j N` and framework.conf's `parallel_jobs=N` mean: N make jobs and N builds at
/// once; 0 is make's bare `-j` (`None`: no limit, one build at a time); unset, one per CPU.
pub fn limit(setting: Option<usize>) -> Option<usize> {
    match setting {
        Some(0) => None,
        Some(n) => Some(n),
        None => Some(std::thread::available_parallelism().map_or(1, |n| n.get())),
    }
}

/// A unit of work: a name for the progress line, the indices of jobs it waits for, and its
/// estimated cost (any unit, larger is longer; see [`run`]).
#[derive(Debug, Clone)]
pub struct Job<T> {
    pub name: String,
    pub after: Vec<usize>,
    pub cost: u64,
    pub item: T,
}

/// How a job ended.
#[derive(Debug)]
pub enum Outcome {
    /// Done; the line to print.
    Done(String),
    /// Not run because a job it waits for failed.
    Blocked(Vec<String>),
    Failed(ActionError),
}

#[derive(Default)]
struct State {
    started: Vec<bool>,
    outcomes: Vec<Option<Outcome>>,
    running: Vec<String>,
    finished: usize,
    /// Each ended job's lines, until the jobs before it in `order` have ended: lines are
    /// written in the order one worker would run the jobs (dkms 3.2.2's), whichever ends first.
    held: Vec<Option<crate::console::Held>>,
    /// The jobs in the order one worker runs them ([`one_at_a_time`]).
    order: Vec<usize>,
    /// How many jobs of `order`, from its first, have had their lines written.
    written: usize,
}

impl State {
    /// Write the lines of the ended jobs that follow the written ones in `order`; a job that
    /// did not run (blocked) has none.
    fn write_in_order(&mut self) {
        while let Some(&i) = self.order.get(self.written) {
            if self.outcomes[i].is_none() {
                break;
            }
            if let Some(lines) = self.held[i].take() {
                lines.write();
            }
            self.written += 1;
        }
    }
}

/// The order one worker runs `jobs` in: the first job of the order given whose `after` jobs
/// have all run, each time (a job blocked by a failure only drops out of it; jobs in a cycle
/// come last, in the order given).
fn one_at_a_time<T>(jobs: &[Job<T>]) -> Vec<usize> {
    let mut done = vec![false; jobs.len()];
    let mut order = Vec::with_capacity(jobs.len());
    while order.len() < jobs.len() {
        let next = (0..jobs.len())
            .find(|&i| !done[i] && jobs[i].after.iter().all(|&d| done[d]))
            .or_else(|| (0..jobs.len()).find(|&i| !done[i]));
        let Some(i) = next else { break };
        done[i] = true;
        order.push(i);
    }
    order
}

/// Run `work` over the jobs with at most `concurrency` at once. A job starts once every job
/// in its `after` list is done; if one of those failed, it is blocked.
///
/// Each job's lines are held and written together once it and every job one worker would
/// have run before it have ended: the output is the one-at-a-time output (dkms 3.2.2's),
/// whichever job ends first. (A dkms.conf script's own output goes straight out while it runs, as
/// `console::unheld` says.)
///
/// The schedule: with one worker, jobs run in the order given (dkms 3.2.2's order, and its
/// output's). With several, a free worker takes the ready job of the largest `cost` (ties:
/// the order given): longest first, so that the longest build never starts last and runs
/// alone on a machine whose other cores are idle (bench/README.md, "corpus": on 2 cores the
/// corpus's openafs builds, ~10x the median, decide the wall time).
pub fn run<T: Sync>(
    jobs: &[Job<T>],
    concurrency: usize,
    console: &Console,
    work: impl Fn(&T) -> Result<String, ActionError> + Sync,
) -> Vec<Outcome> {
    let total = jobs.len();
    let state = Mutex::new(State {
        started: vec![false; total],
        outcomes: (0..total).map(|_| None).collect(),
        held: (0..total).map(|_| None).collect(),
        order: one_at_a_time(jobs),
        ..State::default()
    });
    let wake = Condvar::new();
    // A progress line redrawn in place, on a terminal that can do it (apt gives maintainer
    // scripts a pty even when its own output is a log; TERM tells whether a terminal is at
    // the end of it): a part of the console's status line, which the job lines clear.
    let slot = (!console.quiet && total > 1).then(crate::console::StatusSlot::new);
    let workers = concurrency.clamp(1, total.max(1));
    let worker = || {
        loop {
            let mut st = state.lock().unwrap_or_else(|e| e.into_inner());
            let next = loop {
                // Block jobs whose dependencies failed.
                for i in 0..total {
                    if st.started[i] {
                        continue;
                    }
                    let failed: Vec<String> = jobs[i]
                        .after
                        .iter()
                        .filter(|&&d| {
                            matches!(
                                st.outcomes[d],
                                Some(Outcome::Failed(_)) | Some(Outcome::Blocked(_))
                            ) && !met(&st.outcomes[d])
                        })
                        .map(|&d| jobs[d].name.clone())
                        .collect();
                    if !failed.is_empty() {
                        st.started[i] = true;
                        st.outcomes[i] = Some(Outcome::Blocked(failed));
                        st.finished += 1;
                    }
                }
                let ready = (0..total)
                    .filter(|&i| {
                        !st.started[i] && jobs[i].after.iter().all(|&d| met(&st.outcomes[d]))
                    })
                    // The first of the largest cost (max_by_key would take the last).
                    .min_by_key(|&i| {
                        (
                            std::cmp::Reverse(if workers > 1 { jobs[i].cost } else { 0 }),
                            i,
                        )
                    });
                if let Some(i) = ready {
                    break Some(i);
                }
                if st.finished == total || st.running.is_empty() && !st.started.contains(&false) {
                    break None;
                }
                if st.running.is_empty() {
                    // Nothing runs and nothing is ready: a dependency cycle.
                    for i in 0..total {
                        if !st.started[i] {
                            st.started[i] = true;
                            st.outcomes[i] =
                                Some(Outcome::Blocked(vec!["a dependency cycle".to_string()]));
                            st.finished += 1;
                        }
                    }
                    break None;
                }
                st = wake.wait(st).unwrap_or_else(|e| e.into_inner());
            };
            let Some(i) = next else {
                wake.notify_all();
                return;
            };
            st.started[i] = true;
            st.running.push(jobs[i].name.clone());
            if let Some(slot) = &slot {
                let (text, brief) = progress(&st, total);
                slot.set_summary(&text, &brief);
            }
            drop(st);
            // The job's lines (its own, then its result's) come out together when it ends.
            let (result, lines) = crate::console::holding(|| {
                let result = work(&jobs[i].item);
                match &result {
                    Ok(line) if line.is_empty() => {}
                    Ok(line) => console.say(line),
                    // Reported already, by the job itself.
                    Err(ActionError::Reported { .. }) => {}
                    Err(e) => e.report(console),
                }
                result
            });
            let mut st = state.lock().unwrap_or_else(|e| e.into_inner());
            st.running.retain(|n| n != &jobs[i].name);
            st.finished += 1;
            st.held[i] = Some(lines);
            if let Some(slot) = &slot {
                let (text, brief) = if st.finished < total {
                    progress(&st, total)
                } else {
                    Default::default()
                };
                slot.set_summary(&text, &brief);
            }
            st.outcomes[i] = Some(match result {
                Ok(line) => Outcome::Done(line),
                Err(e) => Outcome::Failed(e),
            });
            st.write_in_order();
            drop(st);
            wake.notify_all();
        }
    };
    if workers == 1 {
        // One at a time: on this thread (no thread to start, and a trace of this process
        // sees every step).
        worker();
    } else {
        std::thread::scope(|scope| {
            for _ in 0..workers {
                scope.spawn(worker);
            }
        });
    }
    let mut st = state.into_inner().unwrap_or_else(|e| e.into_inner());
    // Jobs blocked after the last one ended hold nothing; any lines left are written.
    for i in 0..total {
        if st.outcomes[i].is_none() {
            st.outcomes[i] = Some(Outcome::Blocked(Vec::new()));
        }
    }
    st.write_in_order();
    st.outcomes
        .into_iter()
        .map(|o| o.unwrap_or(Outcome::Blocked(Vec::new())))
        .collect()
}

/// Whether a job's outcome lets the jobs waiting for it run: done, or not for this kernel
/// (exit 77, BUILD_EXCLUSIVE: dkms 3.2.2's autoinstall counts a skipped module as there).
fn met(outcome: &Option<Outcome>) -> bool {
    matches!(
        outcome,
        Some(Outcome::Done(_)) | Some(Outcome::Failed(ActionError::Reported { code: 77 }))
    )
}

/// The jobs' part of the status line, and its brief form (`[1/3]`) beside a build's own.
fn progress(st: &State, total: usize) -> (String, String) {
    let brief = format!("[{}/{}]", st.finished, total);
    (format!("{brief} building {}", st.running.join("; ")), brief)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jobs(after: &[&[usize]]) -> Vec<Job<()>> {
        after
            .iter()
            .enumerate()
            .map(|(i, a)| Job {
                name: i.to_string(),
                after: a.to_vec(),
                cost: 0,
                item: (),
            })
            .collect()
    }

    #[test]
    fn one_worker_runs_the_first_ready_job_each_time() {
        assert_eq!(one_at_a_time(&jobs(&[&[], &[], &[]])), [0, 1, 2]);
        // 0 needs 2, 1 needs nothing: 1 first, then 2, then 0.
        assert_eq!(one_at_a_time(&jobs(&[&[2], &[], &[]])), [1, 2, 0]);
        assert_eq!(one_at_a_time(&jobs(&[&[1], &[2], &[]])), [2, 1, 0]);
        // A cycle comes last, in the order given.
        assert_eq!(one_at_a_time(&jobs(&[&[1], &[0], &[]])), [2, 0, 1]);
    }
}
