//! taskhive's figures over a peer's from the same run, and the check that the peer ran as
//! it usually does.
//!
//! A peer instance now and then runs far below itself from its start (BENCHMARKS.md: a
//! gearmand whose e2e falls to a third of its rate, its own CPU per job several times over).
//! Its e2e ratios then flatter taskhive. The check compares the peer with itself, its e2e rate
//! against its submit rate in the same run, so it needs no threshold tied to one machine.

use super::BenchResult;

/// A peer's e2e rate under this share of its own submit rate: it fell behind. Healthy runs
/// give 0.59–0.93 (gearmand in memory, 2 cores, 16 × 16 in flight), the instances that fell
/// behind 0.31–0.32 (BENCHMARKS.md, 2026-12-07).
const FELL_BEHIND_BELOW: f64 = 0.45;

/// The `extra` figure of a peer result run over fewer jobs than asked (`--gearman
/// LABEL=ADDR/N`: a persistent queue, one transaction per job). Such a peer is not checked:
/// its e2e writes each job twice, so about half its submit rate (0.46–0.57 seen) is its
/// normal.
pub const JOBS_CAP: &str = "jobs_cap";

/// taskhive's figure over a peer's for the same shape of load.
#[derive(Debug, serde::Serialize)]
pub struct Ratio {
    /// The taskhive scenario.
    pub taskhive: String,
    /// The peer's scenario.
    pub peer: String,
    /// taskhive ops/s ÷ peer ops/s (above 1: taskhive is faster).
    pub throughput: f64,
    /// taskhive p50 ÷ peer p50 (below 1: taskhive answers sooner).
    pub p50: f64,
    /// taskhive's server CPU per job ÷ the peer's, when both were measured (below 1:
    /// taskhive spends less).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpu_per_job: Option<f64>,
    /// The peer's e2e rate ÷ its own submit rate in this run, when under
    /// [`FELL_BEHIND_BELOW`]: the peer instance fell behind and this ratio overstates
    /// taskhive.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub peer_fell_behind: Option<f64>,
    /// Other processes' CPU (cores) during either side, when over
    /// [`others::BUSY_ABOVE`](super::others::BUSY_ABOVE): the ratio is suspect.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub machine_busy: Option<f64>,
}

/// The larger of two results' figures of other processes' CPU, when over the threshold.
fn machine_busy(a: &BenchResult, b: &BenchResult) -> Option<f64> {
    let (a, b) = (super::others::busy_cores(a), super::others::busy_cores(b));
    a.into_iter().chain(b).reduce(f64::max)
}

fn cpu(r: &BenchResult) -> Option<f64> {
    r.extra.get("server_cpu_us_per_job").copied()
}

/// The kind a taskhive scenario belongs to ("submit" or "e2e"), `None` for the others.
fn kind(scenario: &str) -> Option<&'static str> {
    if scenario.starts_with("submit") {
        Some("submit")
    } else if scenario.starts_with("e2e") {
        Some("e2e")
    } else {
        None
    }
}

/// A peer e2e result's rate over the same peer's submit rate, when it fell under
/// [`FELL_BEHIND_BELOW`]. Peer scenarios are named "LABEL KIND".
fn fell_behind(peer: &BenchResult, results: &[BenchResult]) -> Option<f64> {
    if peer.extra.contains_key(JOBS_CAP) {
        return None;
    }
    let label = peer.scenario.strip_suffix(" e2e")?;
    let submit = results
        .iter()
        .find(|r| r.scenario == format!("{label} submit"))?;
    let share = peer.per_sec / submit.per_sec.max(1e-9);
    (share < FELL_BEHIND_BELOW).then_some(share)
}

/// Pairs each taskhive submit/e2e result with every peer result of the same kind.
pub fn ratios(results: &[BenchResult]) -> Vec<Ratio> {
    let mut out = Vec::new();
    for ours in results.iter().filter(|r| !r.scenario.contains(' ')) {
        let Some(kind) = kind(&ours.scenario) else {
            continue;
        };
        for peer in results
            .iter()
            .filter(|r| r.scenario.ends_with(&format!(" {kind}")))
        {
            out.push(Ratio {
                taskhive: ours.scenario.clone(),
                peer: peer.scenario.clone(),
                throughput: ours.per_sec / peer.per_sec.max(1e-9),
                p50: ours.p50_us as f64 / peer.p50_us.max(1) as f64,
                // A peer that used less than the kernel's tick measured nothing (smoke runs).
                cpu_per_job: cpu(ours)
                    .zip(cpu(peer).filter(|&p| p > 0.0))
                    .map(|(o, p)| o / p),
                peer_fell_behind: fell_behind(peer, results),
                machine_busy: machine_busy(ours, peer),
            });
        }
    }
    out
}

/// The ratio table, then a warning for each peer that fell behind.
pub fn print(ratios: &[Ratio]) {
    if ratios.is_empty() {
        return;
    }
    println!();
    println!(
        "{:<18} {:<24} {:>8} {:>10} {:>12}",
        "taskhive", "versus", "ops/s ×", "p50 ×", "CPU/job ×"
    );
    for r in ratios {
        let cpu = r.cpu_per_job.map_or("-".to_string(), |c| format!("{c:.2}"));
        let mark = if r.peer_fell_behind.is_some() || r.machine_busy.is_some() {
            "  !"
        } else {
            ""
        };
        println!(
            "{:<18} {:<24} {:>8.2} {:>10.2} {:>12}{mark}",
            r.taskhive, r.peer, r.throughput, r.p50, cpu
        );
    }
    for line in warnings(ratios) {
        println!("{line}");
    }
}

/// One line per peer that fell behind, though each taskhive e2e scenario carries its mark.
fn warnings(ratios: &[Ratio]) -> Vec<String> {
    let fell: std::collections::BTreeMap<&str, f64> = ratios
        .iter()
        .filter_map(|r| Some((r.peer.as_str(), r.peer_fell_behind?)))
        .collect();
    fell.into_iter()
        .map(|(peer, share)| {
            format!(
                "! {peer} ran at {share:.2} of its own submit rate (healthy runs: about 0.7): \
                 this instance fell behind, so the ratios marked ! overstate taskhive; run again"
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn res(scenario: &str, per_sec: f64) -> BenchResult {
        BenchResult {
            scenario: scenario.into(),
            ops: 1,
            seconds: 1.0,
            per_sec,
            p50_us: 100,
            p99_us: 100,
            max_us: 100,
            extra: Default::default(),
        }
    }

    #[test]
    fn a_peer_whose_e2e_falls_far_under_its_submit_is_flagged() {
        // Figures of two runs of 2026-12-07: a gearmand that ran as usual, one that did not.
        let results = [
            res("submit", 82_200.0),
            res("e2e", 73_900.0),
            res("e2e-stream", 120_000.0),
            res("peer-ok submit", 233_400.0),
            res("peer-ok e2e", 176_400.0),
            res("peer-slow submit", 201_800.0),
            res("peer-slow e2e", 61_900.0),
        ];
        let r = ratios(&results);
        let e2e = |peer: &str| {
            r.iter()
                .find(|r| r.taskhive == "e2e" && r.peer == peer)
                .expect("an e2e ratio per peer")
        };
        assert_eq!(e2e("peer-ok e2e").peer_fell_behind, None);
        let share = e2e("peer-slow e2e").peer_fell_behind.expect("flagged");
        assert!((share - 61_900.0 / 201_800.0).abs() < 1e-9, "{share}");
        // Submit ratios are the peer's own submit: nothing to compare it with.
        assert!(r
            .iter()
            .filter(|r| r.taskhive == "submit")
            .all(|r| r.peer_fell_behind.is_none()));
        assert_eq!(r.len(), 6);
        // One warning, for the peer that fell behind, not one per ratio.
        let w = warnings(&r);
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(w[0].starts_with("! peer-slow e2e ran at 0.31 "), "{w:?}");
    }

    #[test]
    fn a_peer_run_over_capped_jobs_is_not_flagged() {
        // A persistent queue at 0.43 of its submit rate in e2e (0.46–0.57 seen) runs as usual.
        let mut submit = res("peer submit", 1_153.0);
        let mut e2e = res("peer e2e", 500.0);
        for r in [&mut submit, &mut e2e] {
            r.extra.insert(JOBS_CAP.into(), 200.0);
        }
        let r = ratios(&[res("e2e", 90_000.0), submit, e2e]);
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].peer_fell_behind, None);
        // The same figures without the cap are flagged.
        let r = ratios(&[
            res("e2e", 90_000.0),
            res("peer submit", 1_153.0),
            res("peer e2e", 500.0),
        ]);
        assert!(r[0].peer_fell_behind.is_some());
    }

    #[test]
    fn a_peer_without_its_submit_in_the_run_is_not_flagged() {
        let results = [res("e2e", 70_000.0), res("peer e2e", 10_000.0)];
        let r = ratios(&results);
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].peer_fell_behind, None);
        assert!((r[0].throughput - 7.0).abs() < 1e-9);
    }

    #[test]
    fn a_ratio_either_side_of_which_shared_the_machine_is_marked() {
        let others = |r: &mut BenchResult, cores: f64| {
            r.extra
                .insert(super::super::others::OTHERS_CORES.into(), cores);
        };
        let mut busy = res("e2e", 40_000.0);
        others(&mut busy, 0.9);
        let mut quiet = res("peer e2e", 180_000.0);
        others(&mut quiet, 0.02);
        let r = ratios(&[busy, quiet.clone()]);
        assert_eq!(r[0].machine_busy, Some(0.9));
        // The peer's side counts as much as taskhive's.
        let mut e2e = res("e2e", 90_000.0);
        others(&mut e2e, 0.01);
        let mut peer = res("peer e2e", 100_000.0);
        others(&mut peer, 0.4);
        assert_eq!(ratios(&[e2e.clone(), peer])[0].machine_busy, Some(0.4));
        // Both quiet, or no figure (a window too short to tell): not marked.
        assert_eq!(ratios(&[e2e, quiet])[0].machine_busy, None);
        assert_eq!(
            ratios(&[res("e2e", 1.0), res("peer e2e", 1.0)])[0].machine_busy,
            None
        );
    }

    #[test]
    fn only_submit_and_e2e_scenarios_are_paired() {
        let results = [
            res("dispatch", 5_000.0),
            res("submit-stream", 200_000.0),
            res("e2e-batch", 120_000.0),
            res("peer submit", 100_000.0),
            res("peer e2e", 80_000.0),
        ];
        let pairs: Vec<_> = ratios(&results)
            .into_iter()
            .map(|r| (r.taskhive, r.peer))
            .collect();
        assert_eq!(
            pairs,
            [
                ("submit-stream".to_string(), "peer submit".to_string()),
                ("e2e-batch".to_string(), "peer e2e".to_string()),
            ]
        );
    }
}
