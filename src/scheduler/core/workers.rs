//! Workers (an `impl Core` of its own): registration and its limits, attachment of a job
//! stream, loss and release, the round-robin pick, and the idle slots a cluster claims for.

use super::*;

impl Core {
    /// Per task with workers here: how many, and whether the task is broadcast; and how
    /// many workers there are in all (one serving several tasks counts once).
    pub(crate) fn local_workers(&self) -> LocalWorkers {
        let tasks = self
            .tasks
            .iter()
            .filter(|t| !t.workers.is_empty())
            .map(|t| (t.name.to_string(), t.workers.len() as u32, t.broadcast))
            .collect();
        (tasks, self.workers.len() as u32)
    }

    /// Free worker slots per task, less the jobs already waiting for them: how many more
    /// jobs the connected workers could take now (cluster claims ask for this many). A
    /// broadcast job takes a slot of every worker it reaches, so a broadcast task wants as
    /// many as its least busy worker could take.
    pub(crate) fn idle_slots(&self) -> Vec<(String, u64)> {
        let mut out = Vec::new();
        for t in &self.tasks {
            if t.workers.is_empty() || self.paused_tasks.contains(&*t.name) {
                continue;
            }
            let slots = t
                .workers
                .iter()
                .filter_map(|w| self.workers.get(w))
                .filter(|w| w.connected)
                .map(|w| w.capacity.saturating_sub(w.leases.len() as u32) as u64);
            let free: u64 = if t.broadcast {
                slots.max().unwrap_or(0)
            } else {
                slots.sum()
            };
            let mut want = free.saturating_sub(t.ready.len() as u64);
            if let Some(m) = t.limits.as_ref().and_then(|l| l.limits.max_running) {
                // Claimed jobs count against the limit cluster-wide: ask for no more than
                // could run here now.
                want = want.min((m as u64).saturating_sub(t.running + t.ready.len() as u64));
            }
            if want > 0 {
                out.push((t.name.to_string(), want));
            }
        }
        out
    }

    /// Whether any worker (connected or just registered) serves `task`.
    pub fn has_worker(&self, task: &str) -> bool {
        self.task_ids
            .get(task)
            .is_some_and(|&t| !self.tasks[t as usize].workers.is_empty())
    }

    /// Registers a worker (or adds tasks to an existing one). Unconnected workers expire after a TTL.
    pub fn register_worker(
        &mut self,
        existing: Option<WorkerId>,
        tasks: &[String],
        capacity: u32,
        connected: bool,
        now: Millis,
    ) -> Result<WorkerId, Error> {
        // Checked before anything changes, so a refused registration leaves no trace.
        for name in tasks {
            let Some(&tid) = self.task_ids.get(name.as_str()) else {
                continue;
            };
            let workers = &self.tasks[tid as usize].workers;
            let already = existing.is_some_and(|w| workers.contains(&w));
            if !already && workers.len() >= self.cfg.max_workers_per_task {
                return Err(Error::ResourceExhausted(format!(
                    "worker limit reached: task {name} has {} workers (max-workers-per-task {})",
                    workers.len(),
                    self.cfg.max_workers_per_task
                )));
            }
        }
        let wid = match existing {
            Some(w) => {
                let worker = self
                    .workers
                    .get_mut(&w)
                    .ok_or_else(|| Error::NotFound(format!("worker {w} not found")))?;
                worker.capacity = capacity;
                w
            }
            None => {
                let w = self.next_worker;
                self.next_worker += 1;
                let until = if connected {
                    Millis::MAX
                } else {
                    let until = now + self.cfg.unattached_worker_ttl_ms;
                    self.unattached.insert((until, w));
                    until
                };
                self.workers.insert(
                    w,
                    Worker {
                        tasks: Vec::new(),
                        capacity,
                        leases: HashSet::default(),
                        connected,
                        unattached_until: until,
                    },
                );
                w
            }
        };
        for name in tasks {
            let tid = self.task_id(name);
            let worker = self.workers.get_mut(&wid).expect("worker exists");
            if !worker.tasks.contains(&tid) {
                worker.tasks.push(tid);
                self.tasks[tid as usize].workers.push(wid);
            }
        }
        self.mark_worker_dirty(wid);
        Ok(wid)
    }

    /// Attaches a registered worker's job stream (GrabJob).
    pub fn connect_worker(&mut self, wid: WorkerId) -> Result<(), Error> {
        let worker = self
            .workers
            .get_mut(&wid)
            .ok_or_else(|| Error::NotFound(format!("worker {wid} not found; register first")))?;
        if worker.connected {
            return Err(Error::WorkerAttached { worker: wid });
        }
        worker.connected = true;
        self.unattached.remove(&(worker.unattached_until, wid));
        worker.unattached_until = Millis::MAX;
        self.mark_worker_dirty(wid);
        Ok(())
    }

    /// A worker's stream closed: its leased jobs go back to pending at once (a failed attempt each).
    pub fn worker_gone(&mut self, wid: WorkerId, now: Millis) {
        self.drop_worker(wid, now, true);
    }

    /// The server is stopping: the worker's jobs go back to pending without counting an
    /// attempt against them (their workers did nothing wrong).
    pub(crate) fn worker_released(&mut self, wid: WorkerId, now: Millis) {
        self.drop_worker(wid, now, false);
    }

    pub(super) fn drop_worker(&mut self, wid: WorkerId, now: Millis, count_attempt: bool) {
        let Some(worker) = self.workers.remove(&wid) else {
            return;
        };
        self.unattached.remove(&(worker.unattached_until, wid));
        for &tid in &worker.tasks {
            let t = &mut self.tasks[tid as usize];
            t.workers.retain(|&w| w != wid);
            if t.rr >= t.workers.len() {
                t.rr = 0;
            }
        }
        let mut leases: Vec<LeaseId> = worker.leases.into_iter().collect();
        leases.sort_unstable();
        for lid in leases {
            if let Some(lease) = self.leases.remove(&lid) {
                self.lease_expiry.remove(&(lease.expires_at, lid));
                match lease.job {
                    Some(id) if count_attempt || self.broadcasts.contains_key(&id) => {
                        self.lease_lost(id, lid, "worker lost", now)
                    }
                    Some(id) => self.requeue(id, now),
                    None => {}
                }
            }
        }
    }

    pub(super) fn pick_worker(&mut self, tid: TaskId) -> Option<WorkerId> {
        let t = &mut self.tasks[tid as usize];
        let n = t.workers.len();
        for i in 0..n {
            let idx = (t.rr + i) % n;
            let wid = t.workers[idx];
            let w = &self.workers[&wid];
            if w.connected && (w.leases.len() as u32) < w.capacity {
                t.rr = (idx + 1) % n;
                return Some(wid);
            }
        }
        None
    }

    /// A worker stops serving one task (Periodic's CANT_DO).
    pub(crate) fn unregister_task(&mut self, wid: WorkerId, task: &str) {
        let Some(&tid) = self.task_ids.get(task) else {
            return;
        };
        if let Some(w) = self.workers.get_mut(&wid) {
            w.tasks.retain(|&t| t != tid);
            let t = &mut self.tasks[tid as usize];
            t.workers.retain(|&w| w != wid);
            if t.rr >= t.workers.len() {
                t.rr = 0;
            }
        }
    }

    pub(super) fn mark_worker_dirty(&mut self, wid: WorkerId) {
        let tasks = match self.workers.get(&wid) {
            Some(w) if w.connected => w.tasks.clone(),
            _ => return,
        };
        for tid in tasks {
            self.mark_dirty(tid);
        }
    }
}
