// Draws the per-second charts of a JobExec report from the JSON embedded in the page.
// Marks each chart container with data-rendered="1" once drawn (the UI test waits on it).
(() => {
  "use strict";
  const doc = JSON.parse(document.getElementById("exec-data").textContent);
  const timeline = doc.timeline || [];
  const seconds = timeline.map((p) => p.second);

  function draw(id, series, columns) {
    const el = document.getElementById(id);
    const width = () => Math.max(320, el.clientWidth);
    const chart = new uPlot(
      {
        width: width(),
        height: 240,
        series: [{ label: "s" }, ...series],
        axes: [{ label: "second" }, {}],
        scales: { x: { time: false } },
        cursor: { drag: { x: false, y: false } },
      },
      [seconds, ...columns],
      el,
    );
    window.addEventListener("resize", () => chart.setSize({ width: width(), height: 240 }));
    el.dataset.rendered = "1";
  }

  draw(
    "rps-chart",
    [
      { label: "tasks/s", stroke: "#16a34a", width: 2, fill: "rgba(22,163,74,.08)" },
      { label: "failed/s", stroke: "#dc2626", width: 2 },
    ],
    [timeline.map((p) => p.n_task), timeline.map((p) => p.n_fail)],
  );
  draw(
    "latency-chart",
    [{ label: "p99 ms", stroke: "#2563eb", width: 2 }],
    [timeline.map((p) => p.p99_usec / 1000)],
  );
})();
