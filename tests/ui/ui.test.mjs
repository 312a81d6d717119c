// Drives the /ui dashboard of a running taskhive server in headless Chromium (Debian's, via
// playwright-core). The server runs with --auth: without a token the page says so; after an
// admin token is entered it loads without console errors, shows a submitted task in its
// table, re-queues a dead job with its button, browses a task's jobs (pages, name filter, a
// job's detail, re-queue of a dead one), pauses and resumes a schedule and a task, cancels a
// running job (its command gets SIGTERM), starts a load exec with the Exec button and charts
// its progress, and links the archived run to its HTML report. A client token sees no admin
// buttons. Then writes that report with `taskhive load report` and opens the file offline: no
// console errors, charts drawn. Writes screenshots. Run by tests/ui/run.sh, which starts the
// server.
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { chromium } from "playwright-core";

const base = process.env.TASKHIVE_URL;
const shot = process.env.UI_SCREENSHOT;
const jobsShot = process.env.UI_JOBS_SCREENSHOT;
const adminToken = process.env.ADMIN_TOKEN;
const clientToken = process.env.CLIENT_TOKEN;
if (!adminToken || !clientToken) throw new Error("ADMIN_TOKEN and CLIENT_TOKEN must be set");
const bin = process.env.TASKHIVE_BIN;
const reportFile = process.env.REPORT_FILE;
const reportShot = process.env.REPORT_SCREENSHOT;
const termFile = process.env.TERM_FILE;
if (!termFile) throw new Error("TERM_FILE must be set");
if (!bin || !reportFile || !reportShot) {
  throw new Error("TASKHIVE_BIN, REPORT_FILE and REPORT_SCREENSHOT must be set");
}
const chromiumPath = process.env.CHROMIUM || "/usr/bin/chromium";
if (!base || !shot) throw new Error("TASKHIVE_URL and UI_SCREENSHOT must be set");

const TIMEOUT = 20_000;
let failures = 0;
function check(cond, what) {
  console.log(`${cond ? "ok  " : "FAIL"} ${what}`);
  if (!cond) failures += 1;
}

const asAdmin = { headers: { authorization: `Bearer ${adminToken}` } };
const get = (path) => fetch(base + path, asAdmin);

async function post(path, body) {
  const r = await fetch(base + path, {
    method: "POST",
    headers: { "content-type": "application/json", authorization: `Bearer ${adminToken}` },
    body: JSON.stringify(body),
  });
  const text = await r.text();
  if (!r.ok) throw new Error(`${path}: ${r.status} ${text}`);
  return text;
}

// Polls `probe` until it returns a truthy value or the deadline passes.
async function waitFor(what, probe, ms = TIMEOUT) {
  const end = Date.now() + ms;
  for (;;) {
    const v = await probe();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

// Waits until the job browser's detail shows `value` in its `field`.
function detailShows(page, field, value) {
  return page.waitForFunction(
    ([f, v]) => document.querySelector(`#jd-fields dd[data-field="${f}"]`)?.textContent === v,
    [field, value],
  );
}

// Fixtures: a pending job, a dead job (its task's worker, started by run.sh, exits non-zero
// and the job allows one attempt) and a load job that GETs this server's own /status.
await post("/taskhive.v1.Scheduler/SubmitJob", { task: "ui-demo", name: "job-1", args: "aGk=" });
// Flow-control limits show in the task's row.
await post("/taskhive.v1.Scheduler/SetTaskLimits", {
  task: "ui-demo",
  limits: { maxRunning: 2, rate: "10/s", maxRunningPerKey: 1 },
});
await post("/taskhive.v1.Scheduler/SubmitJob", {
  task: "ui-dead",
  name: "doomed",
  retry: { maxAttempts: 1 },
});
await waitFor("the dead job", async () => {
  const v = JSON.parse(await post("/taskhive.v1.Scheduler/ListDead", { task: "ui-dead" }));
  return (v.jobs || []).length === 1;
});
const saved = await post("/job", {
  name: "ui-self",
  // Open without a token (the page's assets), so the run's requests need none.
  host: `${base}/ui/app.css`,
  run_for_sec: 4,
  n_swarm: 2,
  tasks: [{ task_class: "http.get", sleep_min_msec: 5, sleep_max_msec: 20 }],
});
check(saved === "Job saved", "load job saved");
// A schedule for the schedules panel (hourly: it does not fire during the test) and a job
// that runs until cancelled (run.sh's ui-slow worker).
await post("/taskhive.v1.Scheduler/CreateSchedule", {
  name: "ui-hourly",
  cron: "0 * * * *",
  task: "ui-cron",
});
await post("/taskhive.v1.Scheduler/SubmitJob", { task: "ui-slow", name: "long" });
// Jobs to browse: 30 alpha (3 priorities), 5 beta with binary args, 2 scheduled.
await post("/taskhive.v1.Scheduler/SubmitJobs", {
  jobs: [
    ...Array.from({ length: 30 }, (_, i) => ({
      task: "ui-browse",
      name: `alpha-${String(i).padStart(2, "0")}`,
      args: btoa(`hello ${i}`),
      priority: i % 3,
    })),
    ...Array.from({ length: 5 }, (_, i) => ({
      task: "ui-browse",
      name: `beta-${i}`,
      args: btoa(String.fromCharCode(0, 255, i)),
    })),
    ...Array.from({ length: 2 }, (_, i) => ({
      task: "ui-browse",
      name: `later-${i}`,
      schedAtMs: Date.now() + 3_600_000,
    })),
  ],
});

const browser = await chromium.launch({
  executablePath: chromiumPath,
  headless: true,
  args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
});
try {
  const page = await browser.newPage({ viewport: { width: 1280, height: 1000 } });
  const errors = [];
  page.on("console", (m) => {
    if (m.type() === "error") errors.push(m.text());
  });
  page.on("pageerror", (e) => errors.push(String(e)));
  page.on("requestfailed", (r) => errors.push(`request failed: ${r.url()}`));
  page.setDefaultTimeout(TIMEOUT);

  const resp = await page.goto(`${base}/ui`);
  check(resp.status() === 200, "GET /ui answers 200");
  // No token yet: the page says one is needed.
  await page.locator("#auth-message:not([hidden])").waitFor();
  const need = await page.locator("#auth-message").textContent();
  check(/requires a token/.test(need), `asks for a token: "${need}"`);
  await page.fill("#token", adminToken);
  await page.click('#token-form button[type="submit"]');
  await page.waitForFunction(() => document.getElementById("role").textContent === "admin");
  await page.waitForFunction(() => document.getElementById("conn").textContent === "live");
  check(await page.locator("#auth-message").isHidden(), "no auth message with an admin token");
  check(
    (await page.evaluate(() => sessionStorage.getItem("taskhive-token"))) === adminToken,
    "token kept in sessionStorage",
  );
  // The refusals before the token was entered were logged by Chromium as console errors.
  await new Promise((r) => setTimeout(r, 300));
  errors.length = 0;
  const row = page.locator('#tasks-table tr[data-task="ui-demo"]');
  await row.waitFor();
  const cells = await row.locator("td").allTextContents();
  check(cells[0] === "ui-demo" && cells[2] === "1", `ui-demo row shows 1 pending (${cells})`);
  check(cells[6] === "max 2 · 10/s · 1/key", `ui-demo row shows its limits (${cells})`);
  check(await page.locator('#tasks-table tr[data-task="ui-dead"]').count() === 1, "ui-dead row");

  // Dead jobs: the re-queue button puts the job back (the worker fails it again: dead again).
  const requeue = page.locator('button[data-requeue="ui-dead/doomed"]');
  await requeue.waitFor();
  await requeue.click();
  await waitFor("the re-queued job to die a second time", async () => {
    const m = await (await get("/metrics")).text();
    return /^taskhive_jobs_dead_total\{task="ui-dead"\} 2$/m.test(m);
  });
  const dead = await page.locator('#dead-table tr').count();
  check(dead >= 1, "dead job listed");

  // Job browser: a task's jobs in pages, a name filter, a job's detail.
  await page.selectOption("#jb-task", "ui-browse");
  await page.waitForFunction(
    () => document.querySelectorAll("#jb-table tbody tr").length === 20,
  );
  const firstNames = await page.locator("#jb-table tbody tr td:nth-child(3)").allTextContents();
  check(firstNames.length === 20, `first page of 20 (${firstNames.length})`);
  check(await page.locator("#jb-next").isEnabled(), "Next enabled on page 1");
  await page.click("#jb-next");
  await page.waitForFunction(() => /page 2/.test(document.getElementById("jb-page").textContent));
  await page.waitForFunction(
    () => document.querySelectorAll("#jb-table tbody tr").length === 17,
  );
  const secondNames = await page.locator("#jb-table tbody tr td:nth-child(3)").allTextContents();
  check(
    new Set([...firstNames, ...secondNames]).size === 37,
    "two pages list all 37 jobs once",
  );
  check(
    secondNames.slice(-2).join(",") === "later-1,later-0" ||
      secondNames.slice(-2).join(",") === "later-0,later-1",
    `scheduled jobs come after pending ones (${secondNames.slice(-3)})`,
  );
  await page.fill("#jb-name", "beta");
  await page.waitForFunction(() => {
    const names = Array.from(document.querySelectorAll("#jb-table tbody tr td:nth-child(3)"));
    return names.length === 5 && names.every((n) => n.textContent.startsWith("beta-"));
  });
  check(true, "name filter shows the 5 beta jobs");
  await page.click('#jb-table tr[data-name="beta-2"]');
  await page.locator("#jb-detail:not([hidden])").waitFor();
  const args = await page.locator('#jd-fields dd[data-field="args"]').textContent();
  check(args === "hex 00 ff 02", `binary args shown as hex (${args})`);
  await page.fill("#jb-name", "alpha-07");
  await page.waitForFunction(() => document.querySelectorAll("#jb-table tbody tr").length === 1);
  await page.click('#jb-table tr[data-name="alpha-07"]');
  await detailShows(page, "args", "hello 7");
  check(true, "text args shown as text");
  await page.locator("#browser").screenshot({ path: jobsShot });
  console.log(`screenshot: ${jobsShot}`);

  // Run now: a scheduled job becomes due now and keeps its id.
  await page.fill("#jb-name", "later-0");
  await page.locator('#jb-table tr[data-name="later-0"]').waitFor();
  await page.click('#jb-table tr[data-name="later-0"]');
  await detailShows(page, "state", "scheduled");
  const idBefore = await page.locator('#jd-fields dd[data-field="id"]').textContent();
  await page.click("#jd-run-now");
  await detailShows(page, "state", "pending");
  const idAfter = await page.locator('#jd-fields dd[data-field="id"]').textContent();
  check(idBefore === idAfter, `run now: pending now, same id (${idBefore} → ${idAfter})`);

  // A dead job from the browser: state filter, detail, re-queue (it dies a third time).
  await page.fill("#jb-name", "");
  await page.selectOption("#jb-task", "ui-dead");
  await page.selectOption("#jb-state", "JOB_STATE_DEAD");
  await page.locator('#jb-table tr[data-name="doomed"]').waitFor();
  await page.click('#jb-table tr[data-name="doomed"]');
  await detailShows(page, "state", "dead");
  const lastError = await page.locator('#jd-fields dd[data-field="last error"]').textContent();
  check(lastError !== "—", `dead job's last error shown (${lastError})`);
  check(await page.locator("#jd-requeue").isVisible(), "admin sees Re-queue");
  await page.click("#jd-requeue");
  await waitFor("the browser's re-queued job to die a third time", async () => {
    const m = await (await get("/metrics")).text();
    return /^taskhive_jobs_dead_total\{task="ui-dead"\} 3$/m.test(m);
  });
  check(true, "re-queued from the job browser");

  // Schedules panel: the schedule's next fire; Pause and Resume flip it on the server.
  const schedRow = page.locator('#schedules-table tr[data-schedule="ui-hourly"]');
  await schedRow.waitFor();
  const sc = await schedRow.locator("td").allTextContents();
  check(
    sc[1] === "0 * * * *" && sc[3] === "ui-cron" && /^(in \d+[sm]|due)$/.test(sc[4]),
    `schedule row shows its cron, task and next fire (${sc})`,
  );
  const scheduleBadgeIs = (text) =>
    page.waitForFunction(
      (t) =>
        document.querySelector('#schedules-table tr[data-schedule="ui-hourly"] .badge')
          ?.textContent === t,
      text,
    );
  await page.click('button[data-pause-schedule="ui-hourly"]');
  await scheduleBadgeIs("paused");
  const pausedSchedule = JSON.parse(await post("/taskhive.v1.Scheduler/GetSchedule", { name: "ui-hourly" }));
  check(pausedSchedule.paused === true, "Pause paused the schedule on the server");
  check(
    (await schedRow.locator("td").nth(4).textContent()) === "—",
    "a paused schedule shows no next fire",
  );
  await page.click('button[data-pause-schedule="ui-hourly"]');
  await scheduleBadgeIs("active");
  const resumedSchedule = JSON.parse(await post("/taskhive.v1.Scheduler/GetSchedule", { name: "ui-hourly" }));
  check(!resumedSchedule.paused, "Resume resumed it");

  // A task's Pause button: Status says paused; Resume clears it.
  const taskPaused = async () => {
    const st = JSON.parse(await post("/taskhive.v1.Scheduler/Status", {}));
    return !!(st.tasks || []).find((t) => t.task === "ui-demo")?.paused;
  };
  const taskBadgeIs = (text) =>
    page.waitForFunction(
      (t) => document.querySelector('#tasks-table tr[data-task="ui-demo"] .badge')?.textContent === t,
      text,
    );
  await page.click('button[data-pause-task="ui-demo"]');
  await taskBadgeIs("paused");
  check(await taskPaused(), "Pause paused the task on the server");
  await page.click('button[data-pause-task="ui-demo"]');
  await taskBadgeIs("active");
  check(!(await taskPaused()), "Resume resumed the task");

  // Cancel a running job from the browser: its `run --exec` command gets SIGTERM.
  await waitFor("ui-slow/long to be running", async () => {
    const j = JSON.parse(await post("/taskhive.v1.Scheduler/GetJob", { task: "ui-slow", name: "long" }));
    return j.state === "JOB_STATE_RUNNING";
  });
  await page.selectOption("#jb-state", "JOB_STATE_RUNNING");
  await page.selectOption("#jb-task", "ui-slow");
  await page.locator('#jb-table tr[data-name="long"]').waitFor();
  await page.click('#jb-table tr[data-name="long"]');
  await detailShows(page, "state", "running");
  check((await page.locator("#jd-remove").textContent()) === "Cancel", "a running job's button says Cancel");
  await page.click("#jd-remove");
  await page.locator("#jb-detail[hidden]").waitFor({ state: "attached" });
  await waitFor("the command to get SIGTERM", async () => {
    try {
      return readFileSync(termFile, "utf8").trim() === "long";
    } catch {
      return false;
    }
  });
  check(true, "cancel reached the worker: its command got SIGTERM");
  const gone = await fetch(base + "/taskhive.v1.Scheduler/GetJob", {
    method: "POST",
    headers: { "content-type": "application/json", authorization: `Bearer ${adminToken}` },
    body: JSON.stringify({ task: "ui-slow", name: "long" }),
  });
  check(gone.status === 404, `the cancelled job is gone (GetJob answers ${gone.status})`);
  await page.selectOption("#jb-state", "");

  // The Exec button starts a run; the chart fills as progress events arrive.
  const exec = page.locator('button[data-exec="ui-self"]');
  await exec.waitFor();
  await exec.click();
  await waitFor("the load runner to be running", async () => {
    const s = await (await get("/status")).json();
    return s.state === "running" || s.last_exec;
  });
  check(await exec.isDisabled(), "Exec button disabled while the run goes on");
  await page.waitForFunction(
    () => Number(document.getElementById("exec-chart").dataset.points) >= 2,
    null,
    { timeout: TIMEOUT },
  );
  const canvas = page.locator("#exec-chart canvas");
  check((await canvas.count()) === 1, "execution chart drawn");
  const rps = await page.evaluate(() => {
    const t = document.querySelector("#exec-stats").innerText;
    return t;
  });
  check(/tasks\/s/.test(rps), `live stats shown (${rps.replace(/\s+/g, " ")})`);
  await page.locator("#exec-message.ok").waitFor();
  const msg = await page.locator("#exec-message").textContent();
  check(/^finished: [\d,]+ tasks, 0 failed$/.test(msg), `run finished: "${msg}"`);
  const status = await (await get("/status")).json();
  check(status.state === "idle" && status.last_exec?.name === "ui-self", "server saw the run");
  check(Number(status.last_exec?.n_task) > 0, `run made requests (${status.last_exec?.n_task})`);

  // Throughput chart: at least two polls give one rate point.
  await page.waitForFunction(
    () => Number(document.getElementById("throughput-chart").dataset.points) >= 2,
    null,
    { timeout: TIMEOUT },
  );
  check(true, "throughput chart has points");

  // The archived run is listed with a link to its report.
  const lastId = status.last_exec?.id;
  const link = page.locator(`a[data-report="${lastId}"]`);
  await link.waitFor();
  check((await link.getAttribute("href")) === `/ui/report/${lastId}`, "archived run links to its report");

  await page.screenshot({ path: shot, fullPage: true });
  console.log(`screenshot: ${shot}`);
  check(errors.length === 0, `no console errors${errors.length ? `: ${errors.join(" | ")}` : ""}`);

  // A client token (a fresh tab: sessionStorage is per tab) sees no admin buttons.
  const ctx = await browser.newContext({ viewport: { width: 1280, height: 1000 } });
  const cpage = await ctx.newPage();
  cpage.setDefaultTimeout(TIMEOUT);
  await cpage.goto(`${base}/ui`);
  await cpage.fill("#token", clientToken);
  await cpage.click('#token-form button[type="submit"]');
  await cpage.waitForFunction(() => document.getElementById("role").textContent === "client");
  await cpage.locator('#tasks-table tr[data-task="ui-demo"]').waitFor();
  await cpage.locator('button[data-requeue="ui-dead/doomed"]').waitFor({ state: "attached" });
  const visibleAdmin = await cpage.evaluate(() =>
    Array.from(
      document.querySelectorAll(
        "button[data-requeue], button[data-exec], button[data-pause-task], button[data-pause-schedule]",
      ),
    ).filter(
      (b) => b.offsetParent !== null,
    ).length,
  );
  check(visibleAdmin === 0, `client sees no Re-queue, Exec or Pause buttons (${visibleAdmin} visible)`);
  await cpage.selectOption("#jb-task", "ui-dead");
  await cpage.locator('#jb-table tr[data-name="doomed"]').waitFor();
  await cpage.click('#jb-table tr[data-name="doomed"]');
  await cpage.locator("#jb-detail:not([hidden])").waitFor();
  check(await cpage.locator("#jd-requeue").isHidden(), "client sees no Re-queue in the detail");
  check(await cpage.locator("#jd-remove").isVisible(), "client may remove (RemoveJob is client)");
  await ctx.close();

  // The same report as a file, opened with the network off: everything must be inline.
  execFileSync(bin, ["load", "report", lastId, "-o", reportFile, "--addr", new URL(base).host], {
    env: { ...process.env, TASKHIVE_TOKEN: adminToken },
  });
  const offline = await browser.newContext({ offline: true, viewport: { width: 1280, height: 1000 } });
  const requests = [];
  // Any request other than the file itself (and the inline data: favicon) is a failure.
  await offline.route("**/*", (route) => {
    const url = route.request().url();
    if (url.startsWith("file:") || url.startsWith("data:")) return route.continue();
    requests.push(url);
    return route.abort();
  });
  const report = await offline.newPage();
  const reportErrors = [];
  report.on("console", (m) => {
    if (m.type() === "error") reportErrors.push(m.text());
  });
  report.on("pageerror", (e) => reportErrors.push(String(e)));
  await report.goto(`file://${reportFile}`);
  await report.waitForFunction(
    () => ["rps-chart", "latency-chart"].every((id) => document.getElementById(id).dataset.rendered === "1"),
    null,
    { timeout: TIMEOUT },
  );
  check((await report.locator("#rps-chart canvas").count()) === 1, "report: rps chart drawn");
  check((await report.locator("#latency-chart canvas").count()) === 1, "report: latency chart drawn");
  const nTask = await report.locator('b[data-k="n_task"]').textContent();
  check(nTask === String(status.last_exec.n_task), `report: summary shows ${nTask} tasks`);
  check((await report.locator('#tasks-table tr[data-task="http.get"]').count()) === 1, "report: task row");
  await report.screenshot({ path: reportShot, fullPage: true });
  console.log(`screenshot: ${reportShot}`);
  check(requests.length === 0, `report: no network requests${requests.length ? `: ${requests.join(" ")}` : ""}`);
  check(
    reportErrors.length === 0,
    `report: no console errors${reportErrors.length ? `: ${reportErrors.join(" | ")}` : ""}`,
  );
  await offline.close();
} finally {
  await browser.close();
}
if (failures) {
  console.log(`ui: ${failures} check(s) failed`);
  process.exit(1);
}
console.log("ui: all checks passed");
