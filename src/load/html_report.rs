//! A JobExec as one self-contained HTML page (`taskhive load report`, `GET /ui/report/{id}`):
//! summary and per-task tables rendered here, per-second charts drawn by uPlot from the JSON
//! embedded in the page. Everything is inlined (uPlot, CSS, script), so the file opens
//! offline and can be mailed or archived as is.

use std::fmt::Write;

use super::report::JobExec;

const TEMPLATE: &str = include_str!("../../assets/report/report.html");
const REPORT_CSS: &str = include_str!("../../assets/report/report.css");
const REPORT_JS: &str = include_str!("../../assets/report/report.js");
const UPLOT_JS: &str = include_str!("../../assets/ui/vendor/uPlot.iife.min.js");
const UPLOT_CSS: &str = include_str!("../../assets/ui/vendor/uPlot.min.css");

/// The report page of `exec`.
pub fn render(exec: &JobExec) -> String {
    let title = format!("{} · load report", exec.name);
    let subheading = format!("execution {} · started {}", exec.id, exec.t_start);
    let slots: [(&str, String); 10] = [
        ("title", escape(&title)),
        ("heading", escape(&title)),
        ("subheading", escape(&subheading)),
        ("summary", summary(exec)),
        ("tasks", tasks(exec)),
        ("exec_json", script_json(exec)),
        ("uplot_css", UPLOT_CSS.into()),
        ("report_css", REPORT_CSS.into()),
        ("uplot_js", UPLOT_JS.into()),
        ("report_js", REPORT_JS.into()),
    ];
    fill(TEMPLATE, &slots)
}

/// Replaces each `{{name}}` of `template` in one pass, so inserted text (minified JS) is
/// never scanned for markers itself.
fn fill(template: &str, slots: &[(&str, String)]) -> String {
    let mut out =
        String::with_capacity(template.len() + slots.iter().map(|s| s.1.len()).sum::<usize>());
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        let Some(len) = rest[start..].find("}}") else {
            break;
        };
        let name = &rest[start + 2..start + len];
        out.push_str(&rest[..start]);
        match slots.iter().find(|(n, _)| *n == name) {
            Some((_, v)) => out.push_str(v),
            None => out.push_str(&rest[start..start + len + 2]),
        }
        rest = &rest[start + len + 2..];
    }
    out.push_str(rest);
    out
}

/// The JobExec as JSON safe inside `<script>`: `<` only occurs in strings, where `\u003c`
/// means the same, so no `</script>` can end the element early.
fn script_json(exec: &JobExec) -> String {
    exec.to_json().replace('<', "\\u003c")
}

fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Microseconds as milliseconds with µs precision.
fn ms(usec: u64) -> String {
    format!("{:.3}", usec as f64 / 1000.0)
}

fn summary(e: &JobExec) -> String {
    let mut figs = String::new();
    let mut fig = |key: &str, value: String, label: &str, class: &str| {
        let _ = write!(
            figs,
            r#"<div class="fig {class}"><b data-k="{key}">{value}</b><span>{label}</span></div>"#
        );
    };
    fig("n_task", e.n_task.to_string(), "tasks", "");
    fig("n_success", e.n_success.to_string(), "succeeded", "ok");
    let fail_class = if e.n_fail > 0 { "bad" } else { "" };
    fig("n_fail", e.n_fail.to_string(), "failed", fail_class);
    fig("rps", format!("{:.1}", e.rps), "tasks/s", "");
    fig("p50_usec", ms(e.p50_usec), "ms p50", "");
    fig("p90_usec", ms(e.p90_usec), "ms p90", "");
    fig("p99_usec", ms(e.p99_usec), "ms p99", "");
    fig("p999_usec", ms(e.p999_usec), "ms p99.9", "");
    let secs = format!("{:.1}", e.elapsed_usec as f64 / 1e6);
    fig("elapsed_usec", secs, "s elapsed", "");

    let mut facts: Vec<(&str, String)> = vec![("job", e.name.clone())];
    if let Some(h) = &e.host {
        facts.push(("host", h.clone()));
    }
    let mode = match e.rate_per_sec {
        Some(r) => format!("arrival rate {r}/s, at most {} swarms", e.n_swarm),
        None => format!("closed, {} swarms", e.n_swarm),
    };
    facts.push(("mode", mode));
    let mut limits = Vec::new();
    if e.run_for_sec > 0 {
        limits.push(format!("{} s", e.run_for_sec));
    }
    if e.run_n > 0 {
        limits.push(format!("{} tasks per swarm", e.run_n));
    }
    if let Some(st) = &e.stages {
        let steps: Vec<String> = st
            .iter()
            .map(|s| format!("{} s → {}", s.duration_sec, s.target))
            .collect();
        limits.push(format!("stages {}", steps.join(", ")));
    }
    facts.push(("limits", limits.join("; ")));
    if !e.params.is_empty() {
        let p: Vec<String> = e.params.iter().map(|(k, v)| format!("{k}={v}")).collect();
        facts.push(("params", p.join(", ")));
    }
    let thresholds = if e.threshold_exceeded {
        "exceeded"
    } else {
        "within limits"
    };
    facts.push(("thresholds", thresholds.into()));
    if e.aborted {
        let why = e.abort_reason.clone().unwrap_or_default();
        facts.push(("aborted", why));
    }
    if let Some(agents) = &e.agents {
        let each: Vec<String> = agents
            .iter()
            .map(|a| {
                let lost = if a.lost { ", lost mid-run" } else { "" };
                let s = if a.swarms == 1 { "" } else { "s" };
                format!(
                    "{} {} ({} swarm{s}, {} tasks{lost})",
                    a.id, a.addr, a.swarms, a.n_task
                )
            })
            .collect();
        facts.push(("agents", each.join("; ")));
    }
    let mut dl = String::from(r#"<dl class="facts">"#);
    for (k, v) in facts {
        let _ = write!(dl, "<dt>{k}</dt><dd>{}</dd>", escape(&v));
    }
    dl.push_str("</dl>");
    format!(r#"<div class="figures">{figs}</div>{dl}"#)
}

fn tasks(e: &JobExec) -> String {
    let mut t = String::from(concat!(
        r#"<table id="tasks-table"><thead><tr><th>task</th><th>host</th>"#,
        r#"<th class="num">tasks</th><th class="num">failed</th><th class="num">min</th>"#,
        r#"<th class="num">avg</th><th class="num">p50</th><th class="num">p90</th>"#,
        r#"<th class="num">p99</th><th class="num">p99.9</th><th class="num">max</th>"#,
        r#"<th class="num">tasks/s</th><th class="num">avg limit</th>"#,
        r#"<th class="num">max limit</th></tr></thead><tbody>"#
    ));
    for (class, x) in &e.tasks {
        let _ = write!(
            t,
            r#"<tr data-task="{}"><td>{}</td><td>{}</td><td class="num">{}</td><td class="num{}">{}</td>"#,
            escape(class),
            escape(class),
            escape(&x.host),
            x.n_task,
            if x.n_fail > 0 { " bad" } else { "" },
            x.n_fail
        );
        for v in [
            x.min_usec,
            x.avg_usec,
            x.p50_usec,
            x.p90_usec,
            x.p99_usec,
            x.p999_usec,
            x.max_usec,
        ] {
            let _ = write!(t, r#"<td class="num">{}</td>"#, ms(v));
        }
        let _ = write!(t, r#"<td class="num">{:.1}</td>"#, x.rps);
        t.push_str(&limit(x.threshold_avg_usec, x.threshold_avg_exceeded));
        t.push_str(&limit(x.threshold_max_usec, x.threshold_max_exceeded));
        t.push_str("</tr>");
    }
    t.push_str("</tbody></table>");
    t
}

/// A threshold cell: "-" when off, the limit in ms, marked when exceeded.
fn limit(usec: u64, exceeded: bool) -> String {
    match (usec, exceeded) {
        (0, _) => r#"<td class="num">-</td>"#.into(),
        (u, true) => format!(r#"<td class="num bad">{} exceeded</td>"#, ms(u)),
        (u, false) => format!(r#"<td class="num">{}</td>"#, ms(u)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::exec_request::RawExec;
    use crate::load::job::{JobTask, LoadJob};
    use crate::load::stats::{ExecStats, Sample};

    fn exec_with_context(request_context: &str) -> JobExec {
        let job = LoadJob {
            name: "shop <prod>".into(),
            host: None,
            tasks: vec![JobTask {
                task_class: "http.get".into(),
                weight: 1,
                sleep_min_msec: 0,
                sleep_max_msec: 0,
                threshold_avg_usec: 1000,
                threshold_max_usec: 0,
                host: "https://shop.test/".into(),
            }],
            run_for_sec: 0,
            run_n: 2,
            n_swarm: 1,
            rate_per_sec: None,
            stages: None,
        };
        let mut stats = ExecStats::new(1, 10);
        for (i, ok) in [(0u64, true), (1, false)] {
            stats.record(Sample {
                task: 0,
                swarm_id: 1,
                start_usec: i * 500_000,
                end_usec: i * 500_000 + 2500,
                elapsed_usec: 2500,
                request_context: request_context.into(),
                is_success: ok,
            });
        }
        let opts = RawExec {
            name: job.name.clone(),
            ..Default::default()
        }
        .check()
        .unwrap();
        stats.into_report(
            "e1".into(),
            &job,
            &opts,
            chrono::Utc::now(),
            1_000_000,
            None,
        )
    }

    #[test]
    fn the_page_shows_the_figures_and_embeds_the_exec_safely() {
        let e = exec_with_context("</script><script>alert(1)</script>");
        let page = render(&e);
        assert!(page.contains(r#"<b data-k="n_task">2</b>"#), "{page}");
        assert!(page.contains(r#"<b data-k="n_fail">1</b>"#));
        assert!(page.contains(r#"<b data-k="p99_usec">2.500</b>"#));
        assert!(page.contains("shop &lt;prod&gt; · load report"));
        assert!(page.contains(r#"<td class="num bad">1.000 exceeded</td>"#));
        // Three script elements (data, uPlot, report), however the data reads.
        assert_eq!(page.matches("</script>").count(), 3);
        assert!(!page.contains("{{"), "an unfilled marker is left");
        // Nothing is fetched: no external script, stylesheet or image.
        assert!(!page.contains(" src=") && !page.contains("stylesheet"));
    }

    #[test]
    fn an_agent_run_lists_its_agents() {
        let mut e = exec_with_context("ok");
        assert!(!render(&e).contains("<dt>agents</dt>"));
        e.agents = Some(vec![
            crate::load::report::ExecAgent {
                id: "a1".into(),
                addr: "10.0.0.7:41000".into(),
                swarms: 2,
                n_task: 40,
                lost: false,
            },
            crate::load::report::ExecAgent {
                id: "a2".into(),
                addr: "10.0.0.8:41000".into(),
                swarms: 1,
                n_task: 7,
                lost: true,
            },
        ]);
        let page = render(&e);
        assert!(page.contains(
            "<dt>agents</dt><dd>a1 10.0.0.7:41000 (2 swarms, 40 tasks); \
             a2 10.0.0.8:41000 (1 swarm, 7 tasks, lost mid-run)</dd>"
        ));
    }

    #[test]
    fn markers_are_filled_once_and_unknown_ones_kept() {
        let out = fill(
            "a{{x}}b{{y}}c{{nope}}",
            &[("x", "{{y}}".into()), ("y", "Y".into())],
        );
        assert_eq!(out, "a{{y}}bYc{{nope}}");
    }

    #[test]
    fn text_is_escaped() {
        assert_eq!(
            escape(r#"<a href="x">&'"#),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
    }
}
