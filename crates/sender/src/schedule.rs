//! [`Scheduler`]: runs integrations' [`Worker`]s when they have work, and costs nothing for those
//! that do not.
//!
//! Every integration has a lane: its worker and a state. An idle lane (empty queue) has no task,
//! no timer and is never polled; ingest marks it ready. A lane waiting for a deadline (its linger,
//! a backoff or `Retry-After`, a lease held elsewhere) is one entry in one timer queue
//! ([`DelayQueue`], a hierarchical timer wheel) and wakes nobody until it is due. Ready lanes are
//! started in order, on a pool of at most `max_running` delivery tasks; a lane runs until it is
//! idle or has to wait, or, when others are waiting for a task, until it has sent
//! [`FAIR_SHARE`] batches. One task per lane at most: batches of one integration still go out one
//! at a time and in order, and a slow or dead endpoint occupies at most one task.
//!
//! The scheduler's own loop is the only owner of the lanes: ingest, resume and the registry talk
//! to it through an inbox, a set per kind of request (so a burst of ingests for one tenant is one
//! entry: the inbox is bounded by the number of integrations).

use crate::deliver::{Step, Worker};
use crate::dispatch::Dispatcher;
use crate::retry::Backoff;
use crate::spool::{Spool, SpoolError};
use crate::stats::DeliveryStats;
use crate::store::Registry;
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{Notify, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::time::{DelayQueue, delay_queue};

/// Batches a lane sends in one run while other lanes wait for a delivery task.
pub const FAIR_SHARE: u32 = 16;

/// The least time between a failed attempt and the next one of the same batch when a resume or a
/// settings change ends the wait early, so that an admin call in a loop cannot turn into a loop
/// of attempts.
pub const RESUME_FLOOR: Duration = Duration::from_secs(1);

/// Each integration's delivery counters, shared with the admin API.
pub type StatsMap = Arc<Mutex<HashMap<String, Arc<DeliveryStats>>>>;

/// The counters of `tenant` in `stats`, created on first use.
pub fn stats_entry(stats: &StatsMap, tenant: &str) -> Arc<DeliveryStats> {
    stats
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .entry(tenant.to_owned())
        .or_default()
        .clone()
}

/// How the scheduler runs.
#[derive(Debug, Clone, Copy)]
pub struct SchedulerOptions {
    /// Most delivery tasks at once (each runs one integration). Default: 1,024.
    pub max_running: usize,
    /// On a shared spool, how often to look for integrations with events queued through another
    /// instance, in case a notification was missed. Default: 5 s.
    pub sweep_every: Duration,
}

impl Default for SchedulerOptions {
    fn default() -> Self {
        Self {
            max_running: 1024,
            sweep_every: Duration::from_secs(5),
        }
    }
}

/// What the rest of the sender asks of the scheduler; drained by its loop.
#[derive(Debug, Default)]
struct Inbox {
    requests: Mutex<Requests>,
    notify: Notify,
}

#[derive(Debug, Default)]
struct Requests {
    /// Events arrived for these integrations.
    marked: HashSet<String>,
    /// An admin asked these integrations to end their wait now.
    resumed: HashSet<String>,
}

/// A handle on the running scheduler: tells it about events and resumes.
#[derive(Debug, Clone)]
pub struct Scheduler {
    inbox: Arc<Inbox>,
}

impl Scheduler {
    /// Says that events were queued for `tenant`: an idle or lingering lane becomes ready.
    pub fn mark(&self, tenant: &str) {
        self.send(|r| r.marked.insert(tenant.to_owned()));
    }

    /// Ends `tenant`'s backoff or pause wait now (`POST .../resume`), no sooner than
    /// [`RESUME_FLOOR`] after its last attempt.
    pub fn resume(&self, tenant: &str) {
        self.send(|r| r.resumed.insert(tenant.to_owned()));
    }

    fn send(&self, add: impl FnOnce(&mut Requests) -> bool) {
        let added = add(&mut self
            .inbox
            .requests
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner));
        if added {
            self.inbox.notify.notify_one();
        }
    }

    /// Starts the scheduler's loop; it returns once `shutdown` says stop and the runs in
    /// progress have finished their attempt in flight.
    pub fn start(
        registry: Arc<Registry>,
        spool: Arc<dyn Spool>,
        dispatcher: Dispatcher,
        backoff: Backoff,
        stats: StatsMap,
        options: SchedulerOptions,
        shutdown: watch::Receiver<bool>,
    ) -> (Self, tokio::task::JoinHandle<()>) {
        let inbox = Arc::new(Inbox::default());
        let mut core = Core {
            registry,
            spool,
            dispatcher,
            backoff,
            stats,
            options,
            lanes: HashMap::new(),
            ready: VecDeque::new(),
            timers: DelayQueue::new(),
            running: JoinSet::new(),
            tasks: HashMap::new(),
            inbox: inbox.clone(),
            shutdown,
        };
        let scheduler = Self { inbox };
        if let Some(ttl) = core.spool.lease_ttl() {
            tokio::spawn(wake_on_shared_spool(
                core.spool.clone(),
                scheduler.clone(),
                ttl,
                options.sweep_every,
                core.shutdown.clone(),
            ));
        }
        let task = tokio::spawn(async move { core.run().await });
        (scheduler, task)
    }
}

/// Where a lane is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Nothing queued, as far as this instance knows.
    Idle,
    /// In the ready queue.
    Ready,
    /// A delivery task has its worker.
    Running,
    /// Waiting for its linger or its lease: events arriving may make it ready sooner.
    Waiting,
    /// Waiting before the next attempt of a failed batch: only a resume or a settings change
    /// makes it ready sooner.
    Backoff,
}

#[derive(Debug)]
struct Lane {
    /// `None` while a task runs it.
    worker: Option<Worker>,
    state: State,
    timer: Option<delay_queue::Key>,
    /// The integration's settings as the lane last saw them, to notice changes.
    settings: Arc<crate::Integration>,
    /// Events arrived or a resume came while it ran: look again when the run ends.
    poked: bool,
    resumed: bool,
    /// Removed from the registry while it ran.
    removed: bool,
    /// Tells a running task to drop its attempt now (the integration was removed).
    cancel: Arc<Notify>,
    /// When its last attempt ended, for [`RESUME_FLOOR`].
    last_run: Option<Instant>,
}

/// What a delivery task gives back: the lane's tenant, its worker, and how the run ended.
type RunResult = (String, Worker, RunEnd);

/// What woke the scheduler's loop.
enum Event {
    Finished(Box<Result<(tokio::task::Id, RunResult), tokio::task::JoinError>>),
    Due(String),
    Requests,
    Registry,
}

/// How a run of a lane ended.
#[derive(Debug)]
enum RunEnd {
    Step(Step),
    /// It sent its fair share while others waited.
    Yield,
    /// The scheduler is stopping.
    Stopped,
    /// The integration was removed during an attempt.
    Cancelled,
    Failed(SpoolError),
}

struct Core {
    registry: Arc<Registry>,
    spool: Arc<dyn Spool>,
    dispatcher: Dispatcher,
    backoff: Backoff,
    stats: StatsMap,
    options: SchedulerOptions,
    lanes: HashMap<String, Lane>,
    ready: VecDeque<String>,
    timers: DelayQueue<String>,
    running: JoinSet<RunResult>,
    /// Which lane each delivery task runs, to recover the lane if its task panics.
    tasks: HashMap<tokio::task::Id, String>,
    inbox: Arc<Inbox>,
    shutdown: watch::Receiver<bool>,
}

impl Core {
    async fn run(&mut self) {
        self.reconcile();
        // At start, the lanes with events queued (left by the last run).
        if self.spool.lease_ttl().is_none() {
            self.sweep().await;
        }
        let registry = self.registry.clone();
        let inbox = self.inbox.clone();
        loop {
            self.start_ready();
            let event = tokio::select! {
                _ = self.shutdown.wait_for(|stop| *stop) => break,
                Some(done) = self.running.join_next_with_id() => Event::Finished(Box::new(done)),
                Some(expired) = std::future::poll_fn(|cx| self.timers.poll_expired(cx)) => {
                    Event::Due(expired.into_inner())
                }
                () = inbox.notify.notified() => Event::Requests,
                () = registry.changed() => Event::Registry,
            };
            match event {
                Event::Finished(done) => match *done {
                    Ok((id, (tenant, worker, end))) => {
                        self.tasks.remove(&id);
                        self.finish(tenant, worker, end);
                    }
                    Err(err) => self.crashed(&err),
                },
                Event::Due(tenant) => self.due(&tenant),
                Event::Requests => self.take_requests(),
                Event::Registry => self.reconcile(),
            }
        }
        // Runs in progress finish their attempt in flight; their lanes are then handed over.
        while let Some(done) = self.running.join_next().await {
            if let Ok((_, mut worker, _)) = done {
                worker.hand_over().await;
            }
        }
        for lane in self.lanes.values_mut() {
            if let Some(worker) = lane.worker.as_mut() {
                worker.hand_over().await;
            }
        }
        // On a shared spool, the other instances take this one's integrations at once.
        if let Err(err) = self.spool.leave().await {
            tracing::warn!(error = %err, "could not leave the shared spool; its leases expire by themselves");
        }
    }

    /// Brings the lanes in line with the registry: a lane for each new integration, none for a
    /// removed one, and a lane whose settings changed gets to try them at once.
    fn reconcile(&mut self) {
        let tenants: HashSet<String> = self.registry.tenants().into_iter().collect();
        let gone: Vec<String> = self
            .lanes
            .keys()
            .filter(|t| !tenants.contains(*t))
            .cloned()
            .collect();
        for tenant in gone {
            self.remove(&tenant);
        }
        for tenant in tenants {
            let Some(integration) = self.registry.get(&tenant) else {
                continue;
            };
            match self.lanes.get_mut(&tenant) {
                Some(lane) => {
                    if !Arc::ptr_eq(&lane.settings, &integration) {
                        lane.settings = integration;
                        // A fixed URL or secret is tried now, not after the backoff.
                        self.resume(&tenant);
                    }
                }
                None => {
                    let worker = self.worker(integration.clone(), &tenant);
                    self.lanes.insert(
                        tenant.clone(),
                        Lane {
                            worker: Some(worker),
                            state: State::Idle,
                            timer: None,
                            settings: integration,
                            poked: false,
                            resumed: false,
                            removed: false,
                            cancel: Arc::new(Notify::new()),
                            last_run: None,
                        },
                    );
                }
            }
        }
    }

    fn remove(&mut self, tenant: &str) {
        let Some(lane) = self.lanes.get_mut(tenant) else {
            return;
        };
        if lane.state == State::Running {
            lane.removed = true;
            lane.cancel.notify_one();
            return;
        }
        if let Some(key) = lane.timer.take() {
            self.timers.remove(&key);
        }
        if let Some(mut lane) = self.lanes.remove(tenant)
            && let Some(mut worker) = lane.worker.take()
        {
            tokio::spawn(async move { worker.hand_over().await });
        }
    }

    /// Marks ready the lanes that have events queued, in one spool query.
    async fn sweep(&mut self) {
        match self.spool.queued().await {
            Ok(tenants) => {
                for tenant in tenants {
                    self.poke(&tenant);
                }
            }
            Err(err) => tracing::warn!(error = %err, "could not list the queues with events"),
        }
    }

    fn take_requests(&mut self) {
        let requests = std::mem::take(
            &mut *self
                .inbox
                .requests
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        );
        for tenant in requests.marked {
            self.poke(&tenant);
        }
        for tenant in requests.resumed {
            self.resume(&tenant);
        }
    }

    /// Events arrived: an idle or waiting lane looks at its queue now; one in backoff does not.
    fn poke(&mut self, tenant: &str) {
        let Some(lane) = self.lanes.get_mut(tenant) else {
            return;
        };
        match lane.state {
            State::Idle => self.make_ready(tenant),
            State::Waiting => {
                if let Some(key) = lane.timer.take() {
                    self.timers.remove(&key);
                }
                self.make_ready(tenant);
            }
            State::Running => lane.poked = true,
            State::Ready | State::Backoff => {}
        }
    }

    /// Ends a backoff wait early, no sooner than [`RESUME_FLOOR`] after the last attempt.
    fn resume(&mut self, tenant: &str) {
        let Some(lane) = self.lanes.get_mut(tenant) else {
            return;
        };
        match lane.state {
            State::Backoff | State::Waiting => {
                let earliest = lane
                    .last_run
                    .map_or_else(Instant::now, |at| at + RESUME_FLOOR);
                if let Some(key) = &lane.timer {
                    self.timers.reset_at(key, earliest.max(Instant::now()));
                }
            }
            State::Idle => self.make_ready(tenant),
            State::Running => lane.resumed = true,
            State::Ready => {}
        }
    }

    fn make_ready(&mut self, tenant: &str) {
        if let Some(lane) = self.lanes.get_mut(tenant) {
            lane.state = State::Ready;
            self.ready.push_back(tenant.to_owned());
        }
    }

    fn due(&mut self, tenant: &str) {
        if let Some(lane) = self.lanes.get_mut(tenant) {
            lane.timer = None;
            if matches!(lane.state, State::Waiting | State::Backoff) {
                self.make_ready(tenant);
            }
        }
    }

    fn start_ready(&mut self) {
        while self.running.len() < self.options.max_running {
            let Some(tenant) = self.ready.pop_front() else {
                return;
            };
            let Some(lane) = self.lanes.get_mut(&tenant) else {
                continue;
            };
            let Some(worker) = lane.worker.take() else {
                continue;
            };
            lane.state = State::Running;
            let cancel = lane.cancel.clone();
            let shutdown = self.shutdown.clone();
            let others_wait = !self.ready.is_empty();
            let task = self.running.spawn(run_lane(
                tenant.clone(),
                worker,
                cancel,
                shutdown,
                others_wait,
            ));
            self.tasks.insert(task.id(), tenant);
        }
    }

    /// A delivery task panicked: its lane gets a fresh worker (its batch stays queued) and
    /// tries again after a second, instead of staying stuck as running.
    fn crashed(&mut self, err: &tokio::task::JoinError) {
        let Some(tenant) = self.tasks.remove(&err.id()) else {
            return;
        };
        tracing::error!(tenant, error = %err, "delivery task failed; the integration starts over");
        let Some(integration) = self.registry.get(&tenant) else {
            self.lanes.remove(&tenant);
            return;
        };
        let worker = self.worker(integration, &tenant);
        self.finish(
            tenant,
            worker,
            RunEnd::Failed(SpoolError::TaskFailed {
                what: "delivery task",
            }),
        );
    }

    fn worker(&self, integration: Arc<crate::Integration>, tenant: &str) -> Worker {
        Worker::new(
            self.spool.clone(),
            self.dispatcher.clone(),
            integration,
            self.backoff,
        )
        .following(self.registry.clone())
        .with_stats(stats_entry(&self.stats, tenant))
    }

    fn finish(&mut self, tenant: String, worker: Worker, end: RunEnd) {
        let Some(lane) = self.lanes.get_mut(&tenant) else {
            return;
        };
        lane.last_run = Some(Instant::now());
        lane.worker = Some(worker);
        let (poked, resumed) = (
            std::mem::take(&mut lane.poked),
            std::mem::take(&mut lane.resumed),
        );
        if lane.removed {
            if self.registry.get(&tenant).is_some() {
                // Removed and created again while the run was in flight: a new start, without
                // the cancellation meant for the removed one.
                lane.removed = false;
                lane.cancel = Arc::new(Notify::new());
                return self.make_ready(&tenant);
            }
            lane.state = State::Idle;
            self.remove(&tenant);
            return;
        }
        let wait = |state: State, after: Duration| (state, after);
        let (state, after) = match end {
            RunEnd::Step(Step::Idle) if poked => return self.make_ready(&tenant),
            RunEnd::Step(Step::Idle) => {
                lane.state = State::Idle;
                return;
            }
            RunEnd::Step(Step::Progress) | RunEnd::Yield => return self.make_ready(&tenant),
            RunEnd::Step(Step::Wait(_)) if poked => return self.make_ready(&tenant),
            RunEnd::Step(Step::Wait(after)) => wait(State::Waiting, after),
            RunEnd::Step(Step::Backoff(_)) if resumed => wait(State::Backoff, RESUME_FLOOR),
            RunEnd::Step(Step::Backoff(after)) => wait(State::Backoff, after),
            // Cancelled, yet still in the registry: it came back; look at its queue again.
            RunEnd::Cancelled => return self.make_ready(&tenant),
            RunEnd::Step(Step::Removed) => {
                lane.state = State::Idle;
                // Removed from the registry: the next reconcile drops the lane; ingest no
                // longer reaches it.
                return;
            }
            RunEnd::Stopped => {
                lane.state = State::Idle;
                return;
            }
            RunEnd::Failed(err) => {
                tracing::error!(tenant, error = %err, "spool error; retrying in a second");
                wait(State::Backoff, Duration::from_secs(1))
            }
        };
        lane.state = state;
        lane.timer = Some(self.timers.insert(tenant, after));
    }
}

/// Steps one lane's worker until it is idle or has to wait (or has had its fair share while
/// others wait, or the scheduler stops), and gives the worker back.
async fn run_lane(
    tenant: String,
    mut worker: Worker,
    cancel: Arc<Notify>,
    shutdown: watch::Receiver<bool>,
    others_wait: bool,
) -> RunResult {
    let mut batches = 0;
    let end = loop {
        if *shutdown.borrow() {
            break RunEnd::Stopped;
        }
        let step = tokio::select! {
            step = worker.step() => step,
            () = cancel.notified() => {
                worker.abandon();
                break RunEnd::Cancelled;
            }
        };
        match step {
            Ok(Step::Progress) => {
                batches += 1;
                if others_wait && batches >= FAIR_SHARE {
                    break RunEnd::Yield;
                }
            }
            Ok(step) => break RunEnd::Step(step),
            Err(SpoolError::LeaseLost) => {
                // Another instance delivers it now: its batch is that instance's to send.
                worker.abandon();
                break RunEnd::Step(Step::Idle);
            }
            Err(err) => break RunEnd::Failed(err),
        }
    };
    (tenant, worker, end)
}

/// On a spool shared by several instances, what tells the scheduler about work it did not see
/// arrive: the lease keeper (a lease taken means a queue to look at), the other instances'
/// ingests (`LISTEN`/`NOTIFY`), and, in case a notification was missed, a look at every queue
/// with events every `sweep_every`. Each is one statement for all integrations, never one per
/// integration.
async fn wake_on_shared_spool(
    spool: Arc<dyn Spool>,
    scheduler: Scheduler,
    ttl: Duration,
    sweep_every: Duration,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut arrivals = spool.arrivals();
    // Renewed at a third of its life, a lease survives two missed rounds.
    let mut keep = tokio::time::interval(ttl / 3);
    keep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut sweep = tokio::time::interval(sweep_every);
    sweep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        if *shutdown.borrow() {
            return;
        }
        tokio::select! {
            changed = shutdown.changed() => if changed.is_err() {
                return;
            },
            _ = keep.tick() => match spool.keep_leases().await {
                Ok(taken) => taken.iter().for_each(|t| scheduler.mark(t)),
                Err(err) => tracing::warn!(error = %err, "leases not renewed; retrying"),
            },
            Some(tenant) = async { match arrivals.as_mut() {
                Some(rx) => rx.recv().await,
                None => std::future::pending().await,
            } } => scheduler.mark(&tenant),
            _ = sweep.tick() => match spool.queued().await {
                Ok(tenants) => tenants.iter().for_each(|t| scheduler.mark(t)),
                Err(err) => tracing::warn!(error = %err, "could not list the queues with events"),
            },
        }
    }
}
