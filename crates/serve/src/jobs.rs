//! The feedback loop: a background scheduler that retrains the served model
//! on the latest data and promotes the candidate only if it is not worse.
//!
//! A retraining run is a separate, lower-priority process (`nice -n 10`
//! when available): by default `aisle train --model M --time-budget S
//! --promote-if-better`, which trains on the store's current sequences,
//! evaluates candidate and serving version on the newest hold-out and
//! promotes or keeps. Its stdout (one JSON summary) and stderr (progress,
//! logs) go to `STORE/jobs/job-ID.{json,log}`; the scheduler records the
//! outcome, hot-swaps a newly promoted version and appends the job to
//! `STORE/jobs.jsonl` (over PostgreSQL, the table `jobs`: every replica
//! shows them, and a standby that takes over numbers its jobs after them).
//! A crash of the run never touches the serving model.

use std::collections::VecDeque;
use std::io::Write as _;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::App;

/// What to retrain, how, and when.
#[derive(Debug, Clone)]
pub struct RetrainConfig {
    /// The model name the run trains (reported in jobs).
    pub model: String,
    /// Program and arguments of one run. It must print a JSON object on
    /// stdout; `decision.action` = `promoted` makes the server reload the
    /// promoted version.
    pub command: Vec<String>,
    /// Retrain this long after the previous run ended.
    pub interval: Option<Duration>,
    /// Retrain once this many new events were acknowledged since the
    /// previous run started.
    pub min_new_events: Option<u64>,
    /// Run under `nice -n 10` (when the `nice` program exists).
    pub low_priority: bool,
}

/// `GET /v1/admin/jobs`: the scheduler and its jobs, newest first.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct JobsView {
    pub scheduler: Scheduler,
    pub jobs: Vec<Job>,
}

/// The scheduler's settings and counters (only `enabled` when it is off).
#[derive(Debug, Clone, Default, Serialize, utoipa::ToSchema)]
pub struct Scheduler {
    pub enabled: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub interval_s: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_new_events: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub low_priority: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub running: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub queued: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub events_since_last_job: Option<u64>,
    /// Over a shared (PostgreSQL) store: whether this worker holds the
    /// worker lock and so runs jobs (false: it stands by).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub leader: Option<bool>,
}

/// What started a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Trigger {
    Interval,
    Events,
    Manual,
}

/// Where a job is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum JobStatus {
    Running,
    Succeeded,
    Failed,
}

/// One job, as `GET /v1/admin/jobs` shows it.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Job {
    pub id: u64,
    /// `retrain`.
    pub kind: String,
    pub model: String,
    pub trigger: Trigger,
    pub status: JobStatus,
    /// Unix seconds.
    pub started_at: i64,
    pub finished_at: Option<i64>,
    pub duration_s: Option<f64>,
    /// Events acknowledged since the previous job started.
    pub new_events: u64,
    /// `promoted` or `kept` (succeeded jobs).
    #[schema(value_type = Option<String>)]
    pub decision: Option<aisle_train::Action>,
    /// The run's report (`aisle train`'s JSON: fit figures and the decision
    /// with both versions' hold-out metrics).
    #[schema(value_type = Option<Object>)]
    pub result: Option<aisle_train::TrainReport>,
    pub error: Option<String>,
    /// The run's log file.
    pub log: Option<String>,
}

#[derive(Default)]
struct State {
    jobs: VecDeque<Job>,
    next_id: u64,
    manual: bool,
    running: bool,
    stop: bool,
    events_at_last: u64,
    last_end: Option<Instant>,
    retrain_seconds: f64,
    succeeded: u64,
    failed: u64,
    /// Whether this worker leads (None: the store is not shared).
    leader: Option<bool>,
}

/// Jobs kept in memory (older ones stay in `jobs.jsonl`).
const KEEP: usize = 200;

/// The scheduler's shared state.
pub struct Jobs {
    cfg: Option<RetrainConfig>,
    /// `STORE/jobs` (None for in-memory stores: jobs are not persisted).
    dir: Option<PathBuf>,
    /// The history in the database (PostgreSQL stores).
    shared: Option<aisle_store::pg::PgJobs>,
    state: Mutex<State>,
    wake: Condvar,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
}

/// Why a manual trigger was refused.
pub enum TriggerError {
    NotConfigured,
    Busy,
    /// Another worker holds the worker lock.
    Standby,
}

impl Jobs {
    pub fn new(
        cfg: Option<RetrainConfig>,
        store_dir: Option<PathBuf>,
        shared: Option<aisle_store::pg::PgJobs>,
    ) -> Jobs {
        let dir = store_dir.map(|d| d.join(aisle_store::copy::JOBS_DIR));
        let mut state = State::default();
        // Earlier jobs of this store, newest last.
        let lines = match (&shared, &dir) {
            (Some(db), _) => db.latest(KEEP).unwrap_or_else(|e| {
                tracing::warn!(error = %e, "could not read the jobs' history");
                Vec::new()
            }),
            (None, Some(d)) => std::fs::read_to_string(d.join(aisle_store::copy::JOBS_LOG))
                .map(|t| t.lines().map(String::from).collect())
                .unwrap_or_default(),
            (None, None) => Vec::new(),
        };
        for line in lines {
            if let Ok(v) = serde_json::from_str::<Value>(&line) {
                state.next_id = state.next_id.max(v["id"].as_u64().unwrap_or(0));
                if let Ok(job) = serde_json::from_value::<Job>(v) {
                    state.jobs.push_back(job);
                }
                if state.jobs.len() > KEEP {
                    state.jobs.pop_front();
                }
            }
        }
        Jobs {
            cfg,
            dir,
            shared,
            state: Mutex::new(state),
            wake: Condvar::new(),
            thread: Mutex::new(None),
        }
    }

    /// The highest job id in the database's history (0 without one; blocks).
    fn stored_max(&self) -> u64 {
        self.shared
            .as_ref()
            .map_or(0, |db| db.max_id().unwrap_or(0))
    }

    /// Records a job in the database's history (PostgreSQL stores).
    fn record_shared(&self, job: &Job) {
        if let Some(db) = &self.shared {
            let json = serde_json::to_string(job).unwrap_or_default();
            if let Err(e) = db.record(job.id, &json) {
                tracing::warn!(job = job.id, error = %e, "could not record the job in the database");
            }
        }
    }

    pub fn config(&self) -> Option<&RetrainConfig> {
        self.cfg.as_ref()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Asks for a retraining run now.
    pub fn trigger(&self) -> Result<u64, TriggerError> {
        if self.cfg.is_none() {
            return Err(TriggerError::NotConfigured);
        }
        let stored_max = self.stored_max();
        let mut s = self.lock();
        if s.leader == Some(false) {
            return Err(TriggerError::Standby);
        }
        if s.running || s.manual {
            return Err(TriggerError::Busy);
        }
        s.manual = true;
        self.wake.notify_all();
        Ok(s.next_id.max(stored_max) + 1)
    }

    /// Jobs newest first, and the scheduler's settings and counters.
    pub fn snapshot(&self, events_total: u64) -> JobsView {
        // Over PostgreSQL, the jobs any worker ran (this replica's memory
        // when the database does not answer). Blocks: call it off the runtime.
        let stored: Option<Vec<Job>> = self.shared.as_ref().and_then(|db| {
            db.latest(KEEP).ok().map(|lines| {
                lines
                    .iter()
                    .rev()
                    .filter_map(|l| serde_json::from_str(l).ok())
                    .collect()
            })
        });
        let s = self.lock();
        let jobs: Vec<Job> = stored.unwrap_or_else(|| s.jobs.iter().rev().cloned().collect());
        let scheduler = match &self.cfg {
            None => Scheduler::default(),
            Some(c) => Scheduler {
                enabled: true,
                model: Some(c.model.clone()),
                interval_s: c.interval.map(|d| d.as_secs_f64()),
                min_new_events: c.min_new_events,
                low_priority: Some(c.low_priority),
                running: Some(s.running),
                queued: Some(s.manual),
                events_since_last_job: Some(events_total.saturating_sub(s.events_at_last)),
                leader: s.leader,
            },
        };
        JobsView { scheduler, jobs }
    }

    /// Prometheus lines: retraining durations and outcomes.
    pub fn render_metrics(&self, out: &mut String) {
        use std::fmt::Write as _;
        let s = self.lock();
        let _ = writeln!(out, "# TYPE aisle_retrain_duration_seconds summary");
        let _ = writeln!(
            out,
            "aisle_retrain_duration_seconds_sum {}",
            s.retrain_seconds
        );
        let _ = writeln!(
            out,
            "aisle_retrain_duration_seconds_count {}",
            s.succeeded + s.failed
        );
        let _ = writeln!(out, "# TYPE aisle_retrain_jobs_total counter");
        let _ = writeln!(
            out,
            "aisle_retrain_jobs_total{{status=\"succeeded\"}} {}",
            s.succeeded
        );
        let _ = writeln!(
            out,
            "aisle_retrain_jobs_total{{status=\"failed\"}} {}",
            s.failed
        );
        let _ = writeln!(out, "# TYPE aisle_retrain_running gauge");
        let _ = writeln!(out, "aisle_retrain_running {}", u8::from(s.running));
    }

    /// Stops the scheduler: a running job's process is killed (its
    /// half-trained model was never promoted) and the thread joined.
    pub fn stop(&self) {
        self.lock().stop = true;
        self.wake.notify_all();
        let handle = self.thread.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(h) = handle {
            let _ = h.join();
        }
    }
}

/// Starts the scheduler thread (no-op without a retraining config).
pub fn start(app: &Arc<App>) {
    if app.jobs.cfg.is_none() {
        return;
    }
    let mut slot = app.jobs.thread.lock().unwrap_or_else(|e| e.into_inner());
    if slot.is_some() {
        return;
    }
    {
        let mut s = app.jobs.lock();
        s.events_at_last = app.events_seen();
        s.last_end = Some(Instant::now());
    }
    let app2 = app.clone();
    *slot = std::thread::Builder::new()
        .name("aisle-retrain".into())
        .spawn(move || scheduler(&app2))
        .ok();
}

fn scheduler(app: &App) {
    let Some(cfg) = app.jobs.cfg.clone() else {
        return;
    };
    // Over a shared store only the worker holding the lock runs jobs.
    let mut lead = match aisle_store::parse_url(&app.cfg.store) {
        Ok(aisle_store::Location::Postgres(u)) => Some(aisle_store::pg::Leadership::new(&u)),
        _ => None,
    };
    let mut asked: Option<Instant> = None;
    loop {
        if let Some(l) = &mut lead {
            // Asked at most once a second (a standby's attempt is a connection).
            if asked.is_none_or(|t| t.elapsed() >= Duration::from_secs(1)) {
                asked = Some(Instant::now());
                let leads = match l.try_lead() {
                    Ok(b) => b,
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot reach the store for the worker lock");
                        false
                    }
                };
                let mut s = app.jobs.lock();
                if s.leader != Some(leads) {
                    tracing::info!(
                        leader = leads,
                        "{}",
                        if leads {
                            "this worker leads: it runs the retraining jobs"
                        } else {
                            "another worker leads: standing by"
                        }
                    );
                    s.leader = Some(leads);
                    if leads {
                        // Counted from the takeover, not from the start.
                        s.events_at_last = app.events_seen();
                        s.last_end = Some(Instant::now());
                    } else {
                        s.manual = false;
                    }
                }
            }
        }
        let trigger = {
            let s = app.jobs.lock();
            let (mut s, _) = app
                .jobs
                .wake
                .wait_timeout(s, Duration::from_millis(500))
                .unwrap_or_else(|e| e.into_inner());
            if s.stop {
                return;
            }
            if s.leader == Some(false) {
                continue;
            }
            let events = app.events_seen();
            let trigger = if s.manual {
                Some(Trigger::Manual)
            } else if cfg
                .interval
                .zip(s.last_end)
                .is_some_and(|(iv, t)| t.elapsed() >= iv)
            {
                Some(Trigger::Interval)
            } else if cfg
                .min_new_events
                .is_some_and(|n| events.saturating_sub(s.events_at_last) >= n)
            {
                Some(Trigger::Events)
            } else {
                None
            };
            if trigger.is_some() {
                s.manual = false;
                s.running = true;
            }
            trigger
        };
        if let Some(t) = trigger {
            run_job(app, &cfg, t);
        }
    }
}

fn run_job(app: &App, cfg: &RetrainConfig, trigger: Trigger) {
    let events = app.events_seen();
    // A worker that took over numbers its jobs after the last one stored.
    let stored_max = app.jobs.stored_max();
    let mut job = {
        let mut s = app.jobs.lock();
        s.next_id = s.next_id.max(stored_max) + 1;
        let job = Job {
            id: s.next_id,
            kind: "retrain".into(),
            model: cfg.model.clone(),
            trigger,
            status: JobStatus::Running,
            started_at: aisle_core::time::unix_now(),
            finished_at: None,
            duration_s: None,
            new_events: events.saturating_sub(s.events_at_last),
            decision: None,
            result: None,
            error: None,
            log: None,
        };
        s.events_at_last = events;
        s.jobs.push_back(job.clone());
        if s.jobs.len() > KEEP {
            s.jobs.pop_front();
        }
        job
    };
    tracing::info!(
        job = job.id,
        model = cfg.model,
        trigger = ?trigger,
        "retraining started"
    );
    app.jobs.record_shared(&job);
    let t0 = Instant::now();
    let outcome = execute(app, cfg, &mut job);
    job.duration_s = Some(t0.elapsed().as_secs_f64());
    job.finished_at = Some(aisle_core::time::unix_now());
    match outcome {
        Ok(()) => job.status = JobStatus::Succeeded,
        Err(e) => {
            tracing::error!(job = job.id, error = %e, "retraining failed; the serving model is unchanged");
            job.status = JobStatus::Failed;
            job.error = Some(e);
        }
    }
    tracing::info!(
        job = job.id,
        status = ?job.status,
        decision = ?job.decision,
        secs = job.duration_s,
        "retraining finished"
    );
    app.jobs.record_shared(&job);
    if let Some(d) = &app.jobs.dir {
        let line = serde_json::to_string(&job).unwrap_or_default();
        let appended = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(d.join(aisle_store::copy::JOBS_LOG))
            .and_then(|mut f| writeln!(f, "{line}"));
        if let Err(e) = appended {
            tracing::warn!(error = %e, "could not record the job in jobs.jsonl");
        }
    }
    let mut s = app.jobs.lock();
    s.running = false;
    s.last_end = Some(Instant::now());
    s.retrain_seconds += job.duration_s.unwrap_or(0.0);
    if job.status == JobStatus::Succeeded {
        s.succeeded += 1;
    } else {
        s.failed += 1;
    }
    if let Some(slot) = s.jobs.iter_mut().rev().find(|j| j.id == job.id) {
        *slot = job;
    }
}

/// Runs the process, reads its summary, hot-swaps a promoted version.
fn execute(app: &App, cfg: &RetrainConfig, job: &mut Job) -> Result<(), String> {
    let (program, args) = cfg
        .command
        .split_first()
        .ok_or("empty retraining command")?;
    let nice = ["/usr/bin/nice", "/bin/nice"]
        .into_iter()
        .find(|p| cfg.low_priority && std::path::Path::new(p).exists());
    let mut cmd = match nice {
        Some(n) => {
            let mut c = Command::new(n);
            c.args(["-n", "10"]).arg(program);
            c
        }
        None => Command::new(program),
    };
    // Its stdin is a pipe this process holds: `aisle` runs stop when it
    // reads end-of-file, i.e. when this process dies (see the binary's
    // `exit_with_parent`).
    cmd.args(args)
        .stdin(Stdio::piped())
        .env("AISLE_EXIT_WITH_PARENT", "1");
    let (out_path, log_path) = match &app.jobs.dir {
        Some(d) => {
            std::fs::create_dir_all(d).map_err(|e| format!("{}: {e}", d.display()))?;
            (
                Some(d.join(format!("job-{}.json", job.id))),
                Some(d.join(format!("job-{}.log", job.id))),
            )
        }
        None => (None, None),
    };
    let file = |p: &Option<PathBuf>| -> Result<Stdio, String> {
        match p {
            Some(p) => std::fs::File::create(p)
                .map(Stdio::from)
                .map_err(|e| format!("{}: {e}", p.display())),
            None => Ok(Stdio::piped()),
        }
    };
    cmd.stdout(file(&out_path)?);
    cmd.stderr(match &log_path {
        Some(_) => file(&log_path)?,
        None => Stdio::null(),
    });
    job.log = log_path.as_ref().map(|p| p.display().to_string());
    // Visible while the run is in progress.
    if let Some(slot) = app
        .jobs
        .lock()
        .jobs
        .iter_mut()
        .rev()
        .find(|j| j.id == job.id)
    {
        slot.log.clone_from(&job.log);
    }
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("cannot start {program}: {e}"))?;
    let _parent_pipe = child.stdin.take();
    let mut piped = child.stdout.take();
    let collector = std::thread::spawn(move || {
        let mut buf = Vec::new();
        if let Some(p) = piped.as_mut() {
            let _ = std::io::Read::read_to_end(p, &mut buf);
        }
        buf
    });
    let status = loop {
        match child.try_wait() {
            Ok(Some(st)) => break st,
            Ok(None) => {}
            Err(e) => return Err(format!("waiting for the run: {e}")),
        }
        if app.jobs.lock().stop {
            let _ = child.kill();
            let _ = child.wait();
            return Err("stopped: the server shut down".into());
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let piped = collector.join().unwrap_or_default();
    let stdout = match &out_path {
        Some(p) => std::fs::read(p).map_err(|e| format!("{}: {e}", p.display()))?,
        None => piped,
    };
    if !status.success() {
        return Err(format!("the run exited with {status}"));
    }
    let report: aisle_train::TrainReport = serde_json::from_slice(&stdout)
        .map_err(|e| format!("the run printed no train report (aisle train's JSON): {e}"))?;
    if report.report_version != aisle_train::REPORT_VERSION {
        return Err(format!(
            "the run's report has version {}, this server reads {}",
            report.report_version,
            aisle_train::REPORT_VERSION
        ));
    }
    let action = report.decision.as_ref().map(|d| d.action);
    job.decision = action;
    job.result = Some(report);
    if action == Some(aisle_train::Action::Promoted) {
        app.reload_promoted().map_err(|e| {
            format!("the promoted version was refused ({e}); the old model keeps serving")
        })?;
    }
    Ok(())
}
