// taskhive dashboard. Plain JS, no build step: it polls the server's JSON routes (the JSON form
// of the gRPC API, Beetle's /jobs and /status, /metrics) and charts with the vendored uPlot.
// A run started here streams its progress from POST /ui/exec (server-sent events).
"use strict";
(() => {
  const POLL_MS = 2000;
  const WINDOW_POINTS = 150; // throughput history kept: 5 minutes at one point per poll

  const $ = (id) => document.getElementById(id);
  const num = (v) => Number(v || 0); // proto3 JSON writes 64-bit integers as strings, omits zeros
  const fmt = (n) => Math.round(n).toLocaleString("en-US");
  const ms = (usec) => (usec / 1000).toFixed(usec < 10000 ? 2 : 1);

  // Builds an element; children are nodes or strings (text, never parsed as HTML).
  function el(tag, attrs, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === "class") e.className = v;
      else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
      else e.setAttribute(k, v);
    }
    for (const c of children) e.append(c);
    return e;
  }

  // ---- token and role --------------------------------------------------------------------
  // With `serve --auth`, every call needs `authorization: Bearer <token>`. The token is kept
  // in sessionStorage (this tab only, gone when it closes) and sent on every fetch, the
  // /ui/exec event stream included: that stream is read with fetch (EventSource can neither
  // POST nor set headers), so no token ever goes into a URL. GET /ui/whoami tells the role.

  const TOKEN_KEY = "taskhive-token";
  let token = sessionStorage.getItem(TOKEN_KEY) || "";
  let role = null; // "admin", "client", "worker"; null until known (or no valid token)
  let authOn = false;

  function headers(extra) {
    const h = { ...(extra || {}) };
    if (token) h.authorization = `Bearer ${token}`;
    return h;
  }

  // What a role may call, as src/auth/mod.rs decides: admin everything, else its own role.
  const can = (need) => role === "admin" || role === need;

  class ApiError extends Error {
    constructor(message, status) {
      super(message);
      this.status = status;
    }
  }

  async function api(path, opts) {
    const o = opts || {};
    const r = await fetch(path, { ...o, headers: headers(o.headers) });
    if (r.status === 401 || r.status === 403) {
      const v = await r.json().catch(() => ({}));
      throw new ApiError(`${path}: ${v.message || r.status}`, r.status);
    }
    return r;
  }

  async function rpc(service, method, body) {
    const r = await api(`/taskhive.v1.${service}/${method}`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(body || {}),
    });
    const v = await r.json();
    if (!r.ok) throw new ApiError(`${method}: ${v.message || r.status}`, r.status);
    return v;
  }

  async function getJSON(path) {
    const r = await api(path);
    if (!r.ok) throw new Error(`${path}: ${r.status}`);
    return r.json();
  }

  function banner(text, kind) {
    const b = $("auth-message");
    b.textContent = text;
    b.className = `banner ${kind || ""}`;
    b.hidden = !text;
  }

  // Shows or hides every control by the role it needs (data-need), here and in rows.
  function applyRole() {
    const badge = $("role");
    badge.textContent = !authOn && role ? "no auth" : role || "no token";
    badge.className = `badge ${role ? "ok" : "bad"}`;
    for (const b of document.querySelectorAll("[data-need]")) {
      if (!can(b.dataset.need)) b.setAttribute("data-hidden-by-role", "");
      else b.removeAttribute("data-hidden-by-role");
    }
  }

  async function loadRole() {
    try {
      const r = await fetch("/ui/whoami", { headers: headers() });
      const v = await r.json().catch(() => ({}));
      if (r.status === 401) {
        role = null;
        authOn = true;
        banner(
          token
            ? `This token is not accepted (${v.message || 401}). Enter a valid token above.`
            : "This server requires a token: enter it above (kept in this browser tab only).",
          "bad",
        );
      } else {
        role = v.role || null;
        authOn = !!v.auth;
        banner(
          role === "worker"
            ? "This token has the worker role: the dashboard needs a client or admin token."
            : "",
          "bad",
        );
      }
    } catch (e) {
      banner(`cannot reach the server: ${e.message}`, "bad");
    }
    applyRole();
  }

  // A refusal seen while polling: say what the token lacks.
  function authProblem(e) {
    if (!(e instanceof ApiError) || (e.status !== 401 && e.status !== 403)) return false;
    banner(
      e.status === 401
        ? `Not signed in: ${e.message}. Enter a token above.`
        : `Permission denied: ${e.message}.`,
      "bad",
    );
    return true;
  }

  $("token-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    token = $("token").value.trim();
    $("token").value = "";
    if (token) sessionStorage.setItem(TOKEN_KEY, token);
    else sessionStorage.removeItem(TOKEN_KEY);
    loadRole().then(() => {
      resetPaging();
      refresh();
    });
  });

  // ---- charts ---------------------------------------------------------------------------

  function chartWidth(container) {
    return Math.max(300, container.clientWidth);
  }

  function makeChart(container, series, axes, scales, height) {
    const opts = {
      width: chartWidth(container),
      height,
      scales,
      axes,
      series,
      legend: { live: false },
      cursor: { drag: { x: false, y: false } },
    };
    const data = series.map(() => []);
    const chart = new uPlot(opts, data, container);
    window.addEventListener("resize", () =>
      chart.setSize({ width: chartWidth(container), height }),
    );
    return { chart, data, container };
  }

  function setData(c, data) {
    c.data = data;
    c.chart.setData(data);
    c.container.dataset.points = String(data[0].length);
  }

  const throughput = makeChart(
    $("throughput-chart"),
    [
      {},
      { label: "done/s", stroke: "#16a34a", width: 2, fill: "rgba(22,163,74,.08)" },
      { label: "failed/s", stroke: "#dc2626", width: 2 },
      { label: "submitted/s", stroke: "#2563eb", width: 1.5, dash: [6, 4] },
    ],
    [
      {
        // Whole seconds only: the default time axis labels sub-second ticks on a short history.
        incrs: [1, 2, 5, 10, 15, 30, 60, 120, 300],
        space: 70,
        values: (u, ticks) => ticks.map((t) => new Date(t * 1000).toLocaleTimeString("en-GB")),
      },
      { label: "jobs/s", size: 60 },
    ],
    { x: { time: true }, y: { range: (u, lo, hi) => [0, Math.max(1, hi * 1.1)] } },
    200,
  );

  const execChart = makeChart(
    $("exec-chart"),
    [
      { label: "elapsed s" },
      { label: "rps", stroke: "#2563eb", width: 2, fill: "rgba(37,99,235,.08)" },
      { label: "p50 ms", scale: "ms", stroke: "#16a34a", width: 2 },
      { label: "p99 ms", scale: "ms", stroke: "#dc2626", width: 2 },
    ],
    [
      { label: "seconds" },
      { label: "tasks/s", size: 60 },
      { scale: "ms", side: 1, label: "ms", size: 60, grid: { show: false } },
    ],
    {
      x: { time: false },
      y: { range: (u, lo, hi) => [0, Math.max(1, hi * 1.1)] },
      ms: { range: (u, lo, hi) => [0, Math.max(1, hi * 1.1)] },
    },
    220,
  );

  // ---- tasks and throughput -------------------------------------------------------------

  // Sums of the per-task job counters in the Prometheus text.
  function parseCounters(text) {
    const out = { submitted: {}, done: {}, failed: {} };
    const re = /^taskhive_jobs_(submitted|done|failed)_total\{(.*)\}\s+(\S+)$/;
    for (const line of text.split("\n")) {
      const m = re.exec(line);
      if (!m) continue;
      const t = /task="((?:[^"\\]|\\.)*)"/.exec(m[2]);
      if (!t) continue;
      const task = t[1].replace(/\\(.)/g, (_, c) => (c === "n" ? "\n" : c));
      out[m[1]][task] = Number(m[3]);
    }
    return out;
  }

  const sum = (o) => Object.values(o).reduce((a, b) => a + b, 0);
  let prevCounters = null;

  function pushThroughput(counters, at) {
    const totals = {
      done: sum(counters.done),
      failed: sum(counters.failed),
      submitted: sum(counters.submitted),
    };
    if (prevCounters) {
      const dt = (at - prevCounters.at) / 1000;
      const rate = (k) => Math.max(0, (totals[k] - prevCounters.totals[k]) / dt);
      const d = throughput.data.map((s) => s.slice(-WINDOW_POINTS + 1));
      d[0].push(at / 1000);
      d[1].push(rate("done"));
      d[2].push(rate("failed"));
      d[3].push(rate("submitted"));
      setData(throughput, d);
    }
    prevCounters = { at, totals };
  }

  function nextRun(msAt) {
    if (!msAt) return "";
    const d = Math.round((msAt - Date.now()) / 1000);
    if (d <= 0) return "due";
    if (d < 120) return `in ${d}s`;
    if (d < 7200) return `in ${Math.round(d / 60)}m`;
    return new Date(msAt).toISOString().replace("T", " ").slice(0, 16) + "Z";
  }

  // A task's flow-control limits in a few words ("max 3 · 50/s · 1/key"), or "".
  function limitsText(l) {
    if (!l) return "";
    const parts = [];
    if (l.maxRunning) parts.push(`max ${l.maxRunning}`);
    if (l.rate) parts.push(l.burst ? `${l.rate} (burst ${l.burst})` : l.rate);
    if (l.maxRunningPerKey) parts.push(`${l.maxRunningPerKey}/key`);
    if (l.ratePerKey) parts.push(`${l.ratePerKey} per key`);
    return parts.join(" · ");
  }

  function limitsTitle(t) {
    return t.limits ? `${fmt(num(t.waitingOnLimit))} ready jobs held back by a limit` : "";
  }

  function renderTasks(status, counters) {
    const body = $("tasks-table").querySelector("tbody");
    const rows = (status.tasks || []).map((t) => {
      const cell = (v) => el("td", { class: v ? "num" : "num zero" }, fmt(v));
      return el(
        "tr",
        { "data-task": t.task },
        el("td", {}, t.task),
        cell(num(t.workers)),
        cell(num(t.pending)),
        cell(num(t.scheduled)),
        cell(num(t.running)),
        cell(num(t.locked)),
        el("td", { title: limitsTitle(t) }, limitsText(t.limits)),
        cell(num(t.dead)),
        cell(counters.submitted[t.task] || 0),
        cell(counters.done[t.task] || 0),
        cell(counters.failed[t.task] || 0),
        el("td", {}, nextRun(num(t.nextSchedAtMs))),
        el("td", {}, pauseToggle("task", t.task, !!t.paused)),
      );
    });
    body.replaceChildren(...rows);
    $("tasks-empty").hidden = rows.length > 0;
    const tot = status.totals || {};
    return (
      `${rows.length} task${rows.length === 1 ? "" : "s"} · ${fmt(num(tot.pending))} pending · ` +
      `${fmt(num(tot.running))} running · ${fmt(num(tot.workers))} workers`
    );
  }

  // A paused badge and the admin's Pause/Resume button for a task (PauseTask/ResumeTask)
  // or a schedule (PauseSchedule/ResumeSchedule).
  function pauseToggle(kind, name, paused) {
    const b = el("button", { class: "secondary small", "data-need": "admin" }, paused ? "Resume" : "Pause");
    b.dataset[kind === "task" ? "pauseTask" : "pauseSchedule"] = name;
    if (!can("admin")) b.setAttribute("data-hidden-by-role", "");
    b.addEventListener("click", async () => {
      b.disabled = true;
      const verb = paused ? "Resume" : "Pause";
      try {
        if (kind === "task") await rpc("Scheduler", `${verb}Task`, { task: name });
        else await rpc("Scheduler", `${verb}Schedule`, { name });
      } catch (e) {
        if (!authProblem(e)) b.title = e.message;
      }
      refresh();
    });
    const badge = el("span", { class: `badge ${paused ? "bad" : "ok"}` }, paused ? "paused" : "active");
    return el("span", { class: "toggle" }, badge, " ", b);
  }

  // ---- schedules ------------------------------------------------------------------------

  function renderSchedules(list) {
    const rows = (list.schedules || []).map((s) => {
      const next = (s.nextFireMs || []).map(num)[0];
      return el(
        "tr",
        { "data-schedule": s.name },
        el("td", {}, s.name),
        el("td", { class: "mono" }, s.cron),
        el("td", {}, s.tz || "UTC"),
        el("td", {}, s.task),
        el("td", { title: next ? when(next) : "" }, s.paused ? "—" : nextRun(next)),
        el("td", { class: "mono" }, s.lastJob || "—"),
        el("td", {}, pauseToggle("schedule", s.name, !!s.paused)),
      );
    });
    $("schedules-table").querySelector("tbody").replaceChildren(...rows);
    $("schedules-empty").hidden = rows.length > 0;
  }

  // ---- dead jobs ------------------------------------------------------------------------

  async function requeue(task, name, button) {
    button.disabled = true;
    try {
      await rpc("Scheduler", "RetryDead", { task, name });
    } catch (e) {
      button.title = e.message;
    }
    refresh();
  }

  function renderDead(dead) {
    const jobs = dead.jobs || [];
    const rows = jobs.map((j) => {
      const b = el("button", { "data-need": "admin" }, "Re-queue");
      b.dataset.requeue = `${j.task}/${j.name}`;
      if (!can("admin")) b.setAttribute("data-hidden-by-role", "");
      b.addEventListener("click", () => requeue(j.task, j.name, b));
      return el(
        "tr",
        {},
        el("td", {}, j.task),
        el("td", {}, j.name),
        el("td", { class: "num" }, fmt(num(j.attempts))),
        el("td", { class: "err", title: j.lastError || "" }, j.lastError || ""),
        el("td", {}, b),
      );
    });
    $("dead-table").querySelector("tbody").replaceChildren(...rows);
    $("dead-empty").hidden = rows.length > 0;
  }

  // ---- job browser ----------------------------------------------------------------------
  // One task's jobs by state, a page at a time (ListJobs); a job's detail (GetJob) and what
  // the token's role may do with it: remove (RemoveJob), re-queue a dead job (RetryDead),
  // run now (SubmitJob of the same task, name and args due now: replaces the pending,
  // scheduled or dead job and keeps its id; a running job is left alone by the server).

  const PAGE_SIZE = 20;
  const jb = { pages: [""], i: 0, next: "", seq: 0, open: null };

  const stateName = (s) => String(s || "").replace("JOB_STATE_", "").toLowerCase() || "?";

  function resetPaging() {
    jb.pages = [""];
    jb.i = 0;
  }

  function taskOptions(status) {
    const sel = $("jb-task");
    const tasks = (status.tasks || []).map((t) => t.task);
    const want = sel.value || tasks[0] || "";
    const have = Array.from(sel.options).map((o) => o.value);
    if (have.join("\n") !== tasks.join("\n")) {
      sel.replaceChildren(...tasks.map((t) => el("option", { value: t }, t)));
    }
    if (tasks.includes(want)) sel.value = want;
  }

  function when(msAt) {
    if (!msAt) return "";
    return new Date(msAt).toISOString().replace("T", " ").slice(0, 19) + "Z";
  }

  async function loadJobs() {
    const task = $("jb-task").value;
    const seq = ++jb.seq;
    if (!task) {
      $("jb-table").querySelector("tbody").replaceChildren();
      $("jb-empty").hidden = false;
      $("jb-prev").disabled = $("jb-next").disabled = true;
      return;
    }
    const body = { task, pageSize: PAGE_SIZE, pageToken: jb.pages[jb.i] };
    if ($("jb-state").value) body.state = $("jb-state").value;
    if ($("jb-name").value) body.namePrefix = $("jb-name").value;
    const r = await rpc("Scheduler", "ListJobs", body);
    if (seq !== jb.seq) return; // a newer request is on its way
    jb.next = r.nextPageToken || "";
    const rows = (r.jobs || []).map((j) => {
      const st = stateName(j.state);
      const tr = el(
        "tr",
        { "data-job-id": j.id, "data-name": j.name },
        el("td", { class: "num" }, String(j.id)),
        el("td", {}, el("span", { class: `state ${st}` }, st)),
        el("td", {}, j.name),
        el("td", { class: "num" }, String(j.priority || 0)),
        el("td", {}, st === "dead" || st === "running" ? "" : nextRun(num(j.schedAtMs))),
        el("td", { class: "num" }, fmt(num(j.attempts))),
        el("td", { class: "err", title: j.lastError || "" }, j.lastError || ""),
      );
      if (jb.open && jb.open.id === j.id) tr.classList.add("selected");
      tr.addEventListener("click", () => openJob(j.id));
      return tr;
    });
    $("jb-table").querySelector("tbody").replaceChildren(...rows);
    $("jb-empty").hidden = rows.length > 0;
    $("jb-prev").disabled = jb.i === 0;
    $("jb-next").disabled = !jb.next;
    $("jb-page").textContent = `page ${jb.i + 1}${jb.next ? "" : " (last)"}`;
  }

  // Args as text when they are printable UTF-8, else as hex.
  function showArgs(b64) {
    if (!b64) return "(empty)";
    const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
    try {
      const t = new TextDecoder("utf-8", { fatal: true }).decode(bytes);
      if (!/[\x00-\x08\x0e-\x1f\x7f]/.test(t)) return t;
    } catch (_) {
      // not UTF-8: hex below
    }
    return "hex " + Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join(" ");
  }

  function jobMessage(text, kind) {
    const m = $("jd-message");
    m.textContent = text;
    m.className = `message ${kind || ""}`;
  }

  function renderDetail(j) {
    jb.open = j;
    const st = stateName(j.state);
    const retry = j.retry || {};
    $("jd-title").textContent = `${j.task}/${j.name}`;
    const fields = [
      ["id", String(j.id)],
      ["state", st],
      ["args", showArgs(j.args)],
      ["priority", String(j.priority || 0)],
      ["next run", st === "dead" ? "—" : `${when(num(j.schedAtMs))} (${nextRun(num(j.schedAtMs)) || "due"})`],
      ["attempts", `${num(j.attempts)} of ${num(retry.maxAttempts)}`],
      ["run count", String(num(j.runCount))],
      ["lease", j.leaseId && j.leaseId !== "0" ? String(j.leaseId) : "—"],
      ["timeout", `${num(j.timeoutMs) / 1000} s`],
      ["last error", j.lastError || "—"],
    ];
    $("jd-fields").replaceChildren(
      ...fields.flatMap(([k, v]) => [el("dt", {}, k), el("dd", { "data-field": k }, v)]),
    );
    $("jd-requeue").hidden = st !== "dead";
    $("jd-run-now").hidden = st === "running";
    // Removing a running job cancels it: its worker is told on its stream to stop.
    $("jd-remove").textContent = st === "running" ? "Cancel" : "Remove";
    $("jb-detail").hidden = false;
    for (const tr of $("jb-table").querySelectorAll("tbody tr")) {
      tr.classList.toggle("selected", tr.dataset.jobId === String(j.id));
    }
  }

  async function openJob(id) {
    jobMessage("");
    try {
      renderDetail(await rpc("Scheduler", "GetJob", { jobId: id }));
    } catch (e) {
      if (!authProblem(e)) jobMessage(e.message, "bad");
    }
  }

  function closeJob() {
    jb.open = null;
    $("jb-detail").hidden = true;
    for (const tr of $("jb-table").querySelectorAll("tbody tr.selected")) tr.classList.remove("selected");
  }

  async function jobAction(what, call) {
    const j = jb.open;
    if (!j) return;
    try {
      await call(j);
      jobMessage(`${what}: done`, "ok");
      if (what === "remove" || what === "cancel") closeJob();
      else await openJob(j.id).then(() => jobMessage(`${what}: done`, "ok"));
    } catch (e) {
      if (!authProblem(e)) jobMessage(`${what}: ${e.message}`, "bad");
    }
    loadJobs().catch(() => {});
  }

  $("jd-remove").addEventListener("click", () =>
    jobAction(stateName(jb.open?.state) === "running" ? "cancel" : "remove", (j) =>
      rpc("Scheduler", "RemoveJob", { jobId: j.id }),
    ),
  );
  $("jd-requeue").addEventListener("click", () =>
    jobAction("re-queue", (j) => rpc("Scheduler", "RetryDead", { task: j.task, name: j.name })),
  );
  $("jd-run-now").addEventListener("click", () =>
    jobAction("run now", (j) => {
      const req = { task: j.task, name: j.name, args: j.args || "", schedAtMs: 0 };
      if (j.priority) req.priority = j.priority;
      if (num(j.timeoutMs) > 0) req.timeoutMs = j.timeoutMs;
      if (j.retry) req.retry = j.retry;
      return rpc("Scheduler", "SubmitJob", req);
    }),
  );
  $("jd-close").addEventListener("click", closeJob);

  const reload = () => {
    resetPaging();
    loadJobs().catch((e) => authProblem(e));
  };
  $("jb-task").addEventListener("change", () => {
    closeJob();
    reload();
  });
  $("jb-state").addEventListener("change", reload);
  let nameTimer = null;
  $("jb-name").addEventListener("input", () => {
    clearTimeout(nameTimer);
    nameTimer = setTimeout(reload, 250);
  });
  $("jb-next").addEventListener("click", () => {
    if (!jb.next) return;
    jb.pages = jb.pages.slice(0, jb.i + 1);
    jb.pages.push(jb.next);
    jb.i += 1;
    loadJobs().catch((e) => authProblem(e));
  });
  $("jb-prev").addEventListener("click", () => {
    if (jb.i === 0) return;
    jb.i -= 1;
    loadJobs().catch((e) => authProblem(e));
  });

  // ---- load jobs and executions ---------------------------------------------------------

  let live = null; // the run this page started and is streaming, if any
  let running = false;
  let shown = null; // what the execution chart shows: {kind, id}
  let statusSeries = null; // progress of a run started elsewhere, from /status

  function renderJobs(jobs) {
    const rows = Object.values(jobs).map((j) => {
      const classes = (j.tasks || [])
        .map((t) => (t.weight > 1 ? `${t.task_class} ×${t.weight}` : t.task_class))
        .join(", ");
      const staged = (j.stages || []).reduce((s, st) => s + st.duration_sec, 0);
      const limit = [
        j.run_for_sec ? `${j.run_for_sec} s` : "",
        staged ? `${staged} s in ${j.stages.length} stages` : "",
        j.run_n ? `${j.run_n} runs/swarm` : "",
      ]
        .filter(Boolean)
        .join(" or ");
      const b = el("button", { "data-need": "admin" }, "Exec");
      b.dataset.exec = j.name;
      if (!can("admin")) b.setAttribute("data-hidden-by-role", "");
      b.disabled = running;
      b.addEventListener("click", () => startExec(j.name));
      return el(
        "tr",
        {},
        el("td", {}, j.name),
        el("td", {}, classes),
        el("td", { class: "num" }, fmt(j.n_swarm || 0)),
        el("td", {}, limit),
        el("td", {}, b),
      );
    });
    $("jobs-table").querySelector("tbody").replaceChildren(...rows);
    $("jobs-empty").hidden = rows.length > 0;
  }

  // A navigation cannot carry the token: with one, the report is fetched with it and opened
  // from a blob URL (the report is self-contained HTML).
  async function openReport(ev, link) {
    if (!token) return;
    ev.preventDefault();
    const tab = window.open("", "_blank");
    try {
      const r = await api(link.getAttribute("href"));
      if (!r.ok) throw new Error(`${r.status}`);
      const url = URL.createObjectURL(new Blob([await r.text()], { type: "text/html" }));
      if (tab) tab.location = url;
      else window.location = url;
    } catch (e) {
      if (tab) tab.close();
      if (!authProblem(e)) message(`report: ${e.message}`, "bad");
    }
  }

  // Archived executions, each linked to its HTML report (GET /ui/report/{id}).
  function renderExecs(list) {
    const rows = (list.execs || []).map((e) => {
      const flags = [e.thresholdExceeded ? "threshold" : "", e.aborted ? "aborted" : ""]
        .filter(Boolean)
        .join(", ");
      const link = el("a", { href: `/ui/report/${encodeURIComponent(e.id)}`, target: "_blank" }, "report");
      link.dataset.report = e.id;
      link.addEventListener("click", (ev) => openReport(ev, link));
      return el(
        "tr",
        {},
        el("td", {}, e.tStart || ""),
        el("td", {}, e.name),
        el("td", { class: "num" }, fmt(num(e.nTask))),
        el("td", { class: "num" }, fmt(num(e.nFail))),
        el("td", { class: "num" }, (num(e.elapsedUsec) / 1e6).toFixed(1)),
        el("td", {}, flags),
        el("td", {}, link),
      );
    });
    $("execs-table").querySelector("tbody").replaceChildren(...rows);
    $("execs-empty").hidden = rows.length > 0;
  }

  function setButtons() {
    for (const b of document.querySelectorAll("button[data-exec]")) b.disabled = running;
  }

  function message(text, kind) {
    const m = $("exec-message");
    m.textContent = text;
    m.className = `message ${kind || ""}`;
  }

  function stats(pairs) {
    $("exec-stats").replaceChildren(
      ...pairs.map(([v, unit]) => el("div", { class: "stat" }, el("b", {}, v), el("span", {}, unit))),
    );
  }

  function progressStats(p) {
    stats([
      [fmt(p.n_task), "tasks"],
      [fmt(p.n_fail), "failed"],
      [p.rps.toFixed(1), "tasks/s"],
      [ms(p.p50_usec), "ms p50"],
      [ms(p.p99_usec), "ms p99"],
      [(p.elapsed_usec / 1e6).toFixed(1), "s"],
    ]);
  }

  function showExec(kind, id, title) {
    shown = { kind, id };
    $("exec-title").textContent = title;
    setData(execChart, [[], [], [], []]);
  }

  function addPoint(sec, rps, p50usec, p99usec) {
    const d = execChart.data.map((s) => s.slice());
    d[0].push(sec);
    d[1].push(rps);
    d[2].push(p50usec == null ? null : p50usec / 1000);
    d[3].push(p99usec == null ? null : p99usec / 1000);
    setData(execChart, d);
  }

  function onExecEvent(type, p) {
    if (type === "progress") {
      if (!shown || shown.id !== p.exec_id) showExec("live", p.exec_id, `${p.name} · live`);
      // The event sent at the start has no samples yet: a zero there would be no measurement.
      if (p.n_task > 0) addPoint(p.elapsed_usec / 1e6, p.rps, p.p50_usec, p.p99_usec);
      progressStats(p);
      message("running…", "");
    } else if (type === "finished") {
      progressStats(p);
      $("exec-title").textContent = `${p.name} · finished`;
      if (p.aborted) message(`aborted: ${p.abort_reason || ""}`, "warn");
      else if (p.threshold_exceeded) message("finished: a threshold was exceeded", "warn");
      else message(`finished: ${fmt(p.n_task)} tasks, ${fmt(p.n_fail)} failed`, "ok");
    }
  }

  // Reads the server-sent events of POST /ui/exec (EventSource cannot POST).
  async function readEvents(body) {
    const reader = body.pipeThrough(new TextDecoderStream()).getReader();
    let buf = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buf += value.replace(/\r\n/g, "\n");
      let i;
      while ((i = buf.indexOf("\n\n")) >= 0) {
        const block = buf.slice(0, i);
        buf = buf.slice(i + 2);
        let type = "message";
        const data = [];
        for (const line of block.split("\n")) {
          if (line.startsWith("event:")) type = line.slice(6).trim();
          else if (line.startsWith("data:")) data.push(line.slice(5).trimStart());
        }
        if (data.length) onExecEvent(type, JSON.parse(data.join("\n")));
      }
    }
  }

  async function startExec(name) {
    let params;
    try {
      params = JSON.parse($("exec-params").value || "{}");
    } catch (e) {
      message(`params: not a JSON object (${e.message})`, "bad");
      return;
    }
    running = true;
    setButtons();
    message(`starting ${name}…`, "");
    try {
      const r = await api("/ui/exec", {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ name, params }),
      });
      if (!r.ok) {
        const v = await r.json().catch(() => ({}));
        message(`${name}: ${v.message || r.status}`, "bad");
        return;
      }
      live = name;
      await readEvents(r.body);
    } catch (e) {
      message(`${name}: ${e.message}`, "bad");
    } finally {
      live = null;
      refresh();
    }
  }

  // A run started elsewhere: chart its rate from the task counts /status reports.
  function trackStatusRun(r) {
    if (!shown || shown.id !== r.exec_id) {
      showExec("status", r.exec_id, `${r.name} · running (started elsewhere)`);
      statusSeries = null;
    }
    const sec = r.elapsed_usec / 1e6;
    if (statusSeries && sec > statusSeries.sec) {
      addPoint(sec, (r.n_task - statusSeries.n) / (sec - statusSeries.sec), null, null);
    }
    statusSeries = { sec, n: r.n_task };
    stats([
      [fmt(r.n_task), "tasks"],
      [fmt(r.n_fail), "failed"],
      [sec.toFixed(1), "s"],
    ]);
    message("running…", "");
  }

  // The last finished run, from its archived timeline (per second: tasks and p99).
  async function showArchived(last) {
    showExec("archived", last.id, `${last.name} · last run ${last.t_start}`);
    const e = await rpc("LoadRunner", "GetExec", { id: last.id });
    const doc = JSON.parse(e.json);
    for (const p of doc.timeline || []) addPoint(p.second, p.n_task, null, p.p99_usec);
    stats([
      [fmt(num(doc.n_task)), "tasks"],
      [fmt(num(doc.n_fail)), "failed"],
      [Number(doc.rps || 0).toFixed(1), "tasks/s"],
      [ms(num(doc.p50_usec)), "ms p50"],
      [ms(num(doc.p99_usec)), "ms p99"],
      [(num(doc.elapsed_usec) / 1e6).toFixed(1), "s"],
    ]);
    message(doc.aborted ? `aborted: ${doc.abort_reason || ""}` : "", doc.aborted ? "warn" : "");
  }

  async function renderLoadStatus(st) {
    running = st.state === "running" || live !== null;
    setButtons();
    if (live !== null) return;
    if (st.running) trackStatusRun(st.running);
    else if (st.last_exec) {
      // A run streamed live keeps its chart (it has p50 too); anything else shows the archive.
      const last = st.last_exec;
      if (!shown || shown.id !== last.id || shown.kind === "status") await showArchived(last);
    }
  }

  // ---- polling --------------------------------------------------------------------------

  let busy = false;
  async function refresh() {
    // Without a usable token every call would be refused: the banner already says why.
    if (busy || (authOn && (!role || role === "worker"))) return;
    busy = true;
    const conn = $("conn");
    try {
      const at = Date.now();
      const [status, metrics, dead, jobs, load, execs, schedules] = await Promise.all([
        rpc("Scheduler", "Status", {}),
        api("/metrics").then((r) => r.text()),
        rpc("Scheduler", "ListDead", { limit: 200 }),
        getJSON("/jobs"),
        getJSON("/status"),
        rpc("LoadRunner", "ListExecs", { limit: 20 }),
        rpc("Scheduler", "ListSchedules", {}),
      ]);
      const counters = parseCounters(metrics);
      const summary = renderTasks(status, counters);
      pushThroughput(counters, at);
      renderDead(dead);
      renderSchedules(schedules);
      taskOptions(status);
      await loadJobs();
      await renderLoadStatus(load);
      renderJobs(jobs);
      renderExecs(execs);
      $("summary").textContent = `${summary} · load runner ${running ? "running" : "idle"}`;
      $("updated").textContent = `updated ${new Date(at).toLocaleTimeString("en-GB")}`;
      conn.textContent = "live";
      conn.className = "badge ok";
      if (role && role !== "worker") banner("");
    } catch (e) {
      if (authProblem(e)) {
        conn.textContent = "refused";
        conn.className = "badge bad";
        conn.title = e.message;
        return;
      }
      conn.textContent = "offline";
      conn.className = "badge bad";
      conn.title = e.message;
    } finally {
      busy = false;
    }
  }

  loadRole().then(refresh);
  setInterval(refresh, POLL_MS);
})();
