//! A capacity run's files: `capacity.json` (everything), `capacity.md`
//! (the answer and a table per set-up) and `capacity.html` (the capacity
//! curve: latency percentiles against load, the 50 ms and 200 ms lines, the
//! knee marked).

use std::fmt::Write;
use std::path::Path;

use plotters::prelude::*;

use super::search::load_text;
use super::{CapacityReport, SetupResult};
use crate::verdict::Status;

#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    #[error("writing {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("drawing the capacity curve: {0}")]
    Plot(String),
}

/// Writes the three files into `dir` (created if needed).
pub fn write_all(report: &CapacityReport, dir: &Path) -> Result<(), OutputError> {
    let io = |path: &Path| {
        let path = path.display().to_string();
        move |source| OutputError::Io { path, source }
    };
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let json = serde_json::to_string_pretty(report).expect("capacity reports serialize");
    for (name, text) in [
        ("capacity.json", json),
        ("capacity.md", markdown(report)),
        ("capacity.html", html(report)?),
    ] {
        let path = dir.join(name);
        std::fs::write(&path, text).map_err(io(&path))?;
    }
    Ok(())
}

fn fmt_load(load: Option<f64>) -> String {
    load.map_or("—".to_owned(), |l| format!("{l:.0}"))
}

/// The answer, then one table per set-up.
pub fn markdown(r: &CapacityReport) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "# Capacity: {} (varying {})\n", r.scenario, r.unit);
    let _ = writeln!(
        out,
        "Thresholds: warning p99 > {} ms, critical p99 > {} ms. Each point: {:.0} s steady after all agents connected, {} repeat(s); loads chosen by {}.\n",
        r.warning_ms, r.critical_ms, r.point_duration_s, r.repeats, r.strategy
    );
    let _ = writeln!(
        out,
        "| set-up | highest healthy | highest below critical | knee | health disagreements |"
    );
    let _ = writeln!(out, "| --- | --- | --- | --- | --- |");
    for s in &r.setups {
        // A bound the search never passed is a lower bound, not the limit
        // (points the simulator could not vouch for count for nothing).
        let top = s.points.iter().rfind(|p| !p.inconclusive).map(|p| p.status);
        let at_least = |load: Option<f64>, beyond: Status| match (load, top) {
            (Some(l), Some(t)) if t <= beyond => format!("≥ {} (not reached)", load_text(l)),
            _ => fmt_load(load),
        };
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} |",
            s.setup.name,
            at_least(s.highest_healthy, Status::Healthy),
            at_least(s.highest_below_critical, Status::Warning),
            fmt_load(s.knee),
            s.disagreements
        );
    }
    for s in &r.setups {
        if let Some(advice) = limit_not_reached(s, &r.unit) {
            let _ = writeln!(out, "\n{advice}");
        }
    }
    for s in &r.setups {
        table(&mut out, s, &r.unit);
    }
    if !r.notes.is_empty() {
        let _ = writeln!(out, "\n## Notes\n");
        for n in &r.notes {
            let _ = writeln!(out, "- {n}");
        }
    }
    out
}

/// When the highest load tried was not critical, the search did not find
/// the limit: says so, and what to run to find it.
fn limit_not_reached(s: &SetupResult, unit: &str) -> Option<String> {
    if let Some(limited) = s.points.iter().find(|p| p.inconclusive) {
        let conclusive = s.points.iter().rfind(|p| !p.inconclusive);
        let below = conclusive.map_or("no load below it said anything either".to_owned(), |p| {
            format!(
                "the highest load it could vouch for was {} {unit}, {}",
                load_text(p.load),
                p.status
            )
        });
        return Some(format!(
            "**{}: the simulator was the bottleneck from {} {unit} on.** It could not keep its own schedule there, so those points are marked inconclusive and say nothing of the bus; {below}. Run the simulator in shards (`sim run --shard i/n` on several processes or machines against `--target`), or on another machine, to measure beyond.",
            s.setup.name,
            load_text(limited.load)
        ));
    }
    let top = s.points.last()?;
    if top.status == Status::Critical {
        return None;
    }
    let load = load_text(top.load);
    let reached = if top.status == Status::Healthy {
        "still healthy"
    } else {
        "warning, not yet critical"
    };
    Some(format!(
        "**{}: the limit was not reached.** The highest load tried, {load} {unit}, was {reached}, so the bus carries at least that much. \
         To find the limit, search on from there: `--search --from {load}` (doubles the load until critical, then bisects), or sweep higher with `--from {load} --to {}`.",
        s.setup.name,
        load_text(top.load * 4.0)
    ))
}

fn opt(v: Option<f64>, digits: usize) -> String {
    v.map_or("—".to_owned(), |v| format!("{v:.digits$}"))
}

fn table(out: &mut String, s: &SetupResult, unit: &str) {
    let _ = writeln!(out, "\n## {}\n", s.setup.name);
    let _ = writeln!(
        out,
        "| {unit} | delivered/s | p50 ms | p99 ms (min–max) | p99.9 ms | loss | verdict | bus health | agrees | noticed after | bus CPU % | bus RSS MiB | Redis CPU % | Redis MiB |"
    );
    let _ = writeln!(out, "|{}", " --- |".repeat(14));
    for p in &s.points {
        let run = &p.runs[0];
        let agree = match (p.inconclusive, p.runs.iter().all(|r| r.agrees)) {
            (true, _) => "—",
            (false, true) => "yes",
            (false, false) => "no",
        };
        let verdict = match p.inconclusive {
            true => format!("{} (inconclusive)", p.status),
            false => p.status.to_string(),
        };
        let _ = writeln!(
            out,
            "| {:.0} | {:.0} | {:.2} | {:.2} ({:.2}–{:.2}) | {:.2} | {:.4} | {} | {} | {} | {} | {} | {} | {} | {} |",
            p.load,
            p.delivered_per_s,
            p.p50_ms,
            p.p99_ms,
            p.p99_min_ms,
            p.p99_max_ms,
            p.p999_ms,
            run.loss_ratio,
            verdict,
            run.bus_health.as_deref().unwrap_or("—"),
            agree,
            run.notice_s.map_or("—".to_owned(), |s| format!("{s:.1} s")),
            opt(run.bus_cpu_percent, 0),
            opt(
                run.bus_peak_rss_bytes.map(|b| b as f64 / (1 << 20) as f64),
                0
            ),
            opt(run.redis_cpu_percent, 0),
            opt(
                run.redis_memory_bytes.map(|b| b as f64 / (1 << 20) as f64),
                1
            ),
        );
    }
    for p in s.points.iter().filter(|p| !p.inconclusive) {
        for r in p.runs.iter().filter_map(|r| r.disagreement.as_ref()) {
            let _ = writeln!(out, "\n- at {:.0}: {r}", p.load);
        }
    }
}

const COLORS: [RGBColor; 4] = [BLUE, GREEN, MAGENTA, CYAN];

/// The capacity curve as inline SVG.
pub(super) fn curve(r: &CapacityReport) -> Result<String, OutputError> {
    let plot = |e: &dyn std::fmt::Display| OutputError::Plot(e.to_string());
    let (x_max, y_max) = axis_ends(r);
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (900, 420)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| plot(&e))?;
        let mut chart = ChartBuilder::on(&root)
            .caption(
                format!("Latency against load ({})", r.unit),
                ("sans-serif", 18),
            )
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(60)
            .build_cartesian_2d(0f64..x_max, (0.1f64..y_max).log_scale())
            .map_err(|e| plot(&e))?;
        chart
            .configure_mesh()
            .x_desc(r.unit.as_str())
            .y_desc("ms (log)")
            .draw()
            .map_err(|e| plot(&e))?;
        let limits = [
            (r.warning_ms, "warning", RGBColor(200, 140, 0)),
            (r.critical_ms, "critical", RED),
        ];
        for (limit, name, color) in limits {
            chart
                .draw_series(LineSeries::new(
                    [(0.0, limit), (x_max, limit)],
                    color.stroke_width(2),
                ))
                .map_err(|e| plot(&e))?
                .label(format!("{name} {limit} ms"))
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
        }
        for (i, s) in r.setups.iter().enumerate() {
            let color = COLORS[i % COLORS.len()];
            for (pick, style) in [(0, color.stroke_width(1)), (1, color.stroke_width(3))] {
                let points = s
                    .points
                    .iter()
                    .map(|p| (p.load, if pick == 0 { p.p50_ms } else { p.p99_ms }.max(0.1)));
                chart
                    .draw_series(LineSeries::new(points, style))
                    .map_err(|e| plot(&e))?
                    .label(format!(
                        "{} {}",
                        s.setup.name,
                        if pick == 0 { "p50" } else { "p99" }
                    ))
                    .legend(move |(x, y)| {
                        PathElement::new(
                            vec![(x, y), (x + 20, y)],
                            color.stroke_width(pick * 2 + 1),
                        )
                    });
            }
            if let Some(knee) = s.knee.and_then(|k| s.points.iter().find(|p| p.load == k)) {
                chart
                    .draw_series([Circle::new(
                        (knee.load, knee.p99_ms.max(0.1)),
                        7,
                        color.filled(),
                    )])
                    .map_err(|e| plot(&e))?
                    .label(format!("{} knee at {:.0}", s.setup.name, knee.load))
                    .legend(move |(x, y)| Circle::new((x + 10, y), 5, color.filled()));
            }
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()
            .map_err(|e| plot(&e))?;
        root.present().map_err(|e| plot(&e))?;
    }
    Ok(svg)
}

/// Where the curve's axes end: a little past the highest load and past the
/// highest p99.9 (or the critical threshold, whichever is higher).
fn axis_ends(r: &CapacityReport) -> (f64, f64) {
    let points = || r.setups.iter().flat_map(|s| s.points.iter());
    let x_max = points().map(|p| p.load).fold(1.0, f64::max) * 1.05;
    let y_max = points().map(|p| p.p999_ms).fold(r.critical_ms, f64::max) * 1.2;
    (x_max, y_max)
}

fn html(r: &CapacityReport) -> Result<String, OutputError> {
    let md = markdown(r);
    let mut body = String::new();
    let parser = pulldown_cmark::Parser::new_ext(&md, pulldown_cmark::Options::ENABLE_TABLES);
    pulldown_cmark::html::push_html(&mut body, parser);
    let title = crate::report::escape_markup(&r.scenario);
    Ok(format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>Capacity: {title}</title>\
         <style>{STYLE}</style></head><body>{}{body}</body></html>",
        curve(r)?,
    ))
}

/// The page's look: readable tables, figures aligned for comparison.
const STYLE: &str = "body{font-family:system-ui,sans-serif;max-width:1200px;margin:2em auto;padding:0 1em;color:#222}\
table{border-collapse:collapse;margin:1em 0;font-size:14px}\
th,td{border:1px solid #ccc;padding:4px 8px;text-align:right;font-variant-numeric:tabular-nums}\
th{background:#f3f3f3}td:first-child,th:first-child{text-align:left}\
code{background:#f3f3f3;padding:1px 4px}";

#[cfg(test)]
mod tests {
    use super::super::search::Strategy;
    use super::super::{Point, PointRun, Setup, SetupResult, Vary};
    use super::*;
    use crate::verdict::Status;

    fn report() -> CapacityReport {
        let run = |load: f64, p99: f64, status| PointRun {
            load,
            status,
            operation: None,
            p50_ms: p99 / 3.0,
            p99_ms: p99,
            p999_ms: p99 * 1.5,
            offered_per_s: load,
            delivered_per_s: load * 100.0,
            loss_ratio: 0.0,
            bus_health: Some("healthy".into()),
            agrees: true,
            disagreement: None,
            notice_s: Some(1.0),
            bus_cpu_percent: Some(80.0),
            bus_peak_rss_bytes: Some(50 << 20),
            redis_cpu_percent: None,
            redis_memory_bytes: None,
            simulator_limited: None,
            integrity_failed: None,
        };
        let points = [
            (100.0, 3.0, Status::Healthy),
            (200.0, 4.0, Status::Healthy),
            (400.0, 90.0, Status::Warning),
            (800.0, 400.0, Status::Critical),
        ]
        .into_iter()
        .map(|(l, p, s)| Point::of(l, vec![run(l, p, s)]))
        .collect();
        let base = crate::scenario::Scenario::load(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../scenarios/quickstart.toml"
        ))
        .unwrap();
        CapacityReport {
            scenario: "t".into(),
            content_hash: "h".into(),
            vary: Vary::Rate,
            unit: "messages/s offered".into(),
            strategy: Strategy::Search {
                from: 100.0,
                to: 1000.0,
                refine: 2,
            },
            repeats: 1,
            point_duration_s: 5.0,
            warning_ms: 50.0,
            critical_ms: 200.0,
            setups: vec![SetupResult::new(
                Setup::parse("memory", &base).unwrap(),
                points,
            )],
            notes: vec!["n".into()],
        }
    }

    #[test]
    fn markdown_gives_the_answer_and_the_table() {
        let md = markdown(&report());
        assert!(md.contains("| memory | 200 | 400 |"), "{md}");
        assert!(md.contains("| 800 |"));
    }

    #[test]
    fn no_debug_text_and_a_found_limit_is_not_called_unreached() {
        let md = markdown(&report());
        assert!(
            md.contains("loads chosen by a search doubling from 100 (up to 1000) until critical, then up to 2 bisections per boundary."),
            "{md}"
        );
        assert!(!md.contains("Search {") && !md.contains("Sweep {"), "{md}");
        assert!(!md.contains("not reached"), "{md}");
    }

    #[test]
    fn a_search_that_stayed_below_critical_says_so_and_what_to_run() {
        let mut r = report();
        let points = r.setups[0].points[..3].to_vec();
        r.setups[0] = SetupResult::new(r.setups[0].setup.clone(), points);
        let md = markdown(&r);
        assert!(
            md.contains("| memory | 200 | ≥ 400 (not reached) |"),
            "{md}"
        );
        assert!(
            md.contains(
                "The highest load tried, 400 messages/s offered, was warning, not yet critical"
            ),
            "{md}"
        );
        assert!(
            md.contains("`--search --from 400`") && md.contains("`--from 400 --to 1600`"),
            "{md}"
        );
    }

    /// A point where the simulator could not keep its schedule says
    /// nothing of the bus: it is shown inconclusive, with what it measured,
    /// and is no bound (found at 1,000 messages/s with 5,000 subscribers:
    /// a p99 of 68 ms was called healthy, and 1,000 the highest healthy
    /// load).
    #[test]
    fn a_point_the_simulator_could_not_vouch_for_bounds_nothing() {
        let mut r = report();
        let mut points = r.setups[0].points[..3].to_vec();
        let top = &mut points[2];
        top.runs[0].simulator_limited = Some("its timers woke 15 ms late".into());
        top.runs[0].agrees = false;
        *top = Point::of(top.load, top.runs.clone());
        r.setups[0] = SetupResult::new(r.setups[0].setup.clone(), points);
        assert_eq!(r.setups[0].highest_healthy, Some(200.0));
        assert_eq!(r.setups[0].highest_below_critical, Some(200.0));
        assert_eq!(r.setups[0].disagreements, 0);
        let md = markdown(&r);
        assert!(
            md.contains("| memory | ≥ 200 (not reached) | ≥ 200 (not reached) |"),
            "{md}"
        );
        assert!(
            md.contains("| warning (inconclusive) | healthy | — |"),
            "{md}"
        );
        assert!(
            md.contains("the simulator was the bottleneck from 400 messages/s offered on")
                && md.contains(
                    "the highest load it could vouch for was 200 messages/s offered, healthy"
                ),
            "{md}"
        );
    }

    #[test]
    fn the_html_page_has_real_tables() {
        let page = html(&report()).unwrap();
        assert!(
            page.contains("<table>") && page.contains("<th>set-up</th>"),
            "{page}"
        );
        assert!(!page.contains("| --- |"), "raw Markdown left in the page");
        assert_eq!(page.matches("<table>").count(), 2);
    }

    #[test]
    fn the_curve_draws_thresholds_and_the_knee() {
        let svg = curve(&report()).unwrap();
        assert!(svg.starts_with("<svg"));
        assert!(svg.contains("warning 50 ms") && svg.contains("critical 200 ms"));
        assert!(svg.contains("knee at"));
    }

    #[test]
    fn all_three_files_are_written() {
        let dir = tempfile::tempdir().unwrap();
        write_all(&report(), dir.path()).unwrap();
        for f in ["capacity.json", "capacity.md", "capacity.html"] {
            assert!(dir.path().join(f).exists(), "{f}");
        }
        let back: CapacityReport = serde_json::from_str(
            &std::fs::read_to_string(dir.path().join("capacity.json")).unwrap(),
        )
        .unwrap();
        assert_eq!(back.setups[0].highest_healthy, Some(200.0));
    }
}
