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

  async function rpc(service, method, body) {
    const r = await fetch(`/taskhive.v1.${service}/${method}`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(body || {}),
    });
    const v = await r.json();
    if (!r.ok) throw new Error(`${method}: ${v.message || r.status}`);
    return v;
  }

  async function getJSON(path) {
    const r = await fetch(path);
    if (!r.ok) throw new Error(`${path}: ${r.status}`);
    return r.json();
  }

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
        cell(num(t.dead)),
        cell(counters.submitted[t.task] || 0),
        cell(counters.done[t.task] || 0),
        cell(counters.failed[t.task] || 0),
        el("td", {}, nextRun(num(t.nextSchedAtMs))),
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
      const b = el("button", {}, "Re-queue");
      b.dataset.requeue = `${j.task}/${j.name}`;
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
      const b = el("button", {}, "Exec");
      b.dataset.exec = j.name;
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

  // Archived executions, each linked to its HTML report (GET /ui/report/{id}).
  function renderExecs(list) {
    const rows = (list.execs || []).map((e) => {
      const flags = [e.thresholdExceeded ? "threshold" : "", e.aborted ? "aborted" : ""]
        .filter(Boolean)
        .join(", ");
      const link = el("a", { href: `/ui/report/${encodeURIComponent(e.id)}`, target: "_blank" }, "report");
      link.dataset.report = e.id;
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
      const r = await fetch("/ui/exec", {
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
    if (busy) return;
    busy = true;
    const conn = $("conn");
    try {
      const at = Date.now();
      const [status, metrics, dead, jobs, load, execs] = await Promise.all([
        rpc("Scheduler", "Status", {}),
        fetch("/metrics").then((r) => r.text()),
        rpc("Scheduler", "ListDead", { limit: 200 }),
        getJSON("/jobs"),
        getJSON("/status"),
        rpc("LoadRunner", "ListExecs", { limit: 20 }),
      ]);
      const counters = parseCounters(metrics);
      const summary = renderTasks(status, counters);
      pushThroughput(counters, at);
      renderDead(dead);
      await renderLoadStatus(load);
      renderJobs(jobs);
      renderExecs(execs);
      $("summary").textContent = `${summary} · load runner ${running ? "running" : "idle"}`;
      $("updated").textContent = `updated ${new Date(at).toLocaleTimeString("en-GB")}`;
      conn.textContent = "live";
      conn.className = "badge ok";
    } catch (e) {
      conn.textContent = "offline";
      conn.className = "badge bad";
      conn.title = e.message;
    } finally {
      busy = false;
    }
  }

  refresh();
  setInterval(refresh, POLL_MS);
})();
