// Drives the /ui dashboard of a running taskhive server in headless Chromium (Debian's, via
// playwright-core): the page loads without console errors, shows a submitted task in its
// table, re-queues a dead job with its button, starts a load exec with the Exec button and
// charts its progress, and links the archived run to its HTML report. Then writes that
// report with `taskhive load report` and opens the file offline: no console errors, charts
// drawn. Writes screenshots of both. Run by tests/ui/run.sh, which starts the server.
import { execFileSync } from "node:child_process";
import { chromium } from "playwright-core";

const base = process.env.TASKHIVE_URL;
const shot = process.env.UI_SCREENSHOT;
const bin = process.env.TASKHIVE_BIN;
const reportFile = process.env.REPORT_FILE;
const reportShot = process.env.REPORT_SCREENSHOT;
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

async function post(path, body) {
  const r = await fetch(base + path, {
    method: "POST",
    headers: { "content-type": "application/json" },
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

// Fixtures: a pending job, a dead job (its task's worker, started by run.sh, exits non-zero
// and the job allows one attempt) and a load job that GETs this server's own /status.
await post("/taskhive.v1.Scheduler/SubmitJob", { task: "ui-demo", name: "job-1", args: "aGk=" });
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
  host: `${base}/status`,
  run_for_sec: 4,
  n_swarm: 2,
  tasks: [{ task_class: "http.get", sleep_min_msec: 5, sleep_max_msec: 20 }],
});
check(saved === "Job saved", "load job saved");

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
  const row = page.locator('#tasks-table tr[data-task="ui-demo"]');
  await row.waitFor();
  const cells = await row.locator("td").allTextContents();
  check(cells[0] === "ui-demo" && cells[2] === "1", `ui-demo row shows 1 pending (${cells})`);
  check(await page.locator('#tasks-table tr[data-task="ui-dead"]').count() === 1, "ui-dead row");

  // Dead jobs: the re-queue button puts the job back (the worker fails it again: dead again).
  const requeue = page.locator('button[data-requeue="ui-dead/doomed"]');
  await requeue.waitFor();
  await requeue.click();
  await waitFor("the re-queued job to die a second time", async () => {
    const m = await (await fetch(`${base}/metrics`)).text();
    return /^taskhive_jobs_dead_total\{task="ui-dead"\} 2$/m.test(m);
  });
  const dead = await page.locator('#dead-table tr').count();
  check(dead >= 1, "dead job listed");

  // The Exec button starts a run; the chart fills as progress events arrive.
  const exec = page.locator('button[data-exec="ui-self"]');
  await exec.waitFor();
  await exec.click();
  await waitFor("the load runner to be running", async () => {
    const s = await (await fetch(`${base}/status`)).json();
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
  const status = await (await fetch(`${base}/status`)).json();
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

  // The same report as a file, opened with the network off: everything must be inline.
  execFileSync(bin, ["load", "report", lastId, "-o", reportFile, "--addr", new URL(base).host]);
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
