//! The HTML report's charts, drawn with plotters into inline SVG strings.

use hdrhistogram::Histogram;
use plotters::prelude::*;

use super::DRAIN;
use super::ReportError;
use super::model::{HealthSample, Report};
use crate::metrics::{Operation, SecondLatency, SeriesRow};

const SIZE: (u32, u32) = (860, 320);

/// A chart's drawing error, as text (plotters' error type is generic over
/// the backend).
fn plot_error(err: impl std::fmt::Display) -> ReportError {
    ReportError::Plot(err.to_string())
}

/// The upper end of an axis holding `max`: a little headroom, never empty.
fn axis_end(max: f64) -> f64 {
    if max.is_finite() && max > 0.0 {
        max * 1.1
    } else {
        1.0
    }
}

/// What every time chart marks: the phases' starts, where the drain
/// begins, and (on latency) the limits of publish→delivery.
#[derive(Debug, Clone, Default, PartialEq)]
pub(super) struct Marks {
    /// Each phase's name and start (s).
    pub phases: Vec<(String, f64)>,
    /// Where the seconds after the last phase begin (s).
    pub drain_from: Option<f64>,
    /// publish→delivery's warning and critical limits (ms).
    pub limits: Option<(f64, f64)>,
}

impl Marks {
    /// The marks of `report`, with publish→delivery's limits.
    pub(super) fn of(report: &Report) -> Self {
        let phases = report
            .phases
            .iter()
            .filter(|p| p.name != DRAIN)
            .map(|p| (p.name.clone(), p.start_s))
            .collect();
        let drain_from = report
            .phases
            .iter()
            .find(|p| p.name == DRAIN)
            .map(|p| p.start_s);
        Self {
            phases,
            drain_from,
            limits: None,
        }
        .limits_of(report, Operation::PublishDelivery)
    }

    /// The same marks with `op`'s warning and critical limits.
    pub(super) fn limits_of(mut self, report: &Report, op: Operation) -> Self {
        self.limits = report
            .verdicts
            .operation(op)
            .map(|v| (v.warning_ms, v.critical_ms));
        self
    }
}

/// The timed operations with at least one second of latencies in `series`,
/// in report order: one latency chart each.
pub(super) fn timed_operations(series: &[SeriesRow]) -> Vec<Operation> {
    Operation::PER_SECOND
        .into_iter()
        .filter(|op| series.iter().any(|r| r.operation(*op).is_some()))
        .collect()
}

/// One operation's latency p50 and p99 per second, against its own limits
/// (`marks`).
pub(super) fn latency_over_time(
    series: &[SeriesRow],
    op: Operation,
    marks: &Marks,
) -> Result<String, ReportError> {
    let points = |pick: fn(&SecondLatency) -> f64| -> Vec<(f64, f64)> {
        series
            .iter()
            .filter_map(|r| r.operation(op).map(|l| (r.second as f64, pick(l))))
            .collect()
    };
    let p50 = points(|l| l.p50_ms);
    let p99 = points(|l| l.p99_ms);
    // The warning line stays in view however low the latencies are.
    let warning = marks.limits.map_or(0.0, |(w, _)| w);
    let y_max = axis_end(p99.iter().chain(&p50).map(|p| p.1).fold(warning, f64::max));
    let x_max = axis_end(series.len() as f64);
    let lines = [Line::new("p50", p50, BLUE), Line::new("p99", p99, RED)];
    line_chart(
        &format!("{op} latency per second ({})", what_is_timed(op)),
        "seconds",
        "ms",
        (x_max, y_max),
        &lines,
        marks,
        true,
    )
}

/// What a timed operation's latency runs over, for its chart's title.
fn what_is_timed(op: Operation) -> &'static str {
    match op {
        Operation::PublishDelivery => "planned publish → each recipient",
        Operation::DirectRtt => "planned request → its response",
        Operation::QueueWait => "planned enqueue → claim",
        _ => "per second",
    }
}

/// Messages sent and delivered per second.
pub(super) fn throughput_over_time(
    series: &[SeriesRow],
    marks: &Marks,
) -> Result<String, ReportError> {
    let sent: Vec<(f64, f64)> = series
        .iter()
        .map(|r| (r.second as f64, r.sent as f64))
        .collect();
    let delivered: Vec<(f64, f64)> = series
        .iter()
        .map(|r| (r.second as f64, r.delivered as f64))
        .collect();
    // Sends and deliveries differ by the fan-out (500k deliveries/s from
    // 5k sends/s): on one axis the sends would lie flat at zero, so they
    // get the right-hand axis of their own.
    let y_max = axis_end(delivered.iter().map(|p| p.1).fold(0.0, f64::max));
    let sent_max = axis_end(sent.iter().map(|p| p.1).fold(0.0, f64::max));
    let x_max = axis_end(series.len() as f64);
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, SIZE).into_drawing_area();
        root.fill(&WHITE).map_err(plot_error)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(
                "Throughput per second (a publish to N subscribers is 1 sent, N delivered)",
                ("sans-serif", 18),
            )
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(70)
            .right_y_label_area_size(60)
            .build_cartesian_2d(0f64..x_max, 0f64..y_max)
            .map_err(plot_error)?
            .set_secondary_coord(0f64..x_max, 0f64..sent_max);
        let whole = |v: &f64| format!("{v:.0}");
        chart
            .configure_mesh()
            .x_desc("seconds")
            .y_desc("delivered / s")
            .y_label_formatter(&whole)
            .draw()
            .map_err(plot_error)?;
        chart
            .configure_secondary_axes()
            .y_desc("sent / s")
            .y_label_formatter(&whole)
            .draw()
            .map_err(plot_error)?;
        draw_marks(&mut chart, marks, false, (x_max, y_max))?;
        chart
            .draw_series(LineSeries::new(delivered, GREEN))
            .map_err(plot_error)?
            .label("delivered, every recipient (left axis)")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], GREEN));
        chart
            .draw_secondary_series(LineSeries::new(sent, BLUE))
            .map_err(plot_error)?
            .label("sent, scheduled sends (right axis)")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLUE));
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()
            .map_err(plot_error)?;
        root.present().map_err(plot_error)?;
    }
    Ok(svg)
}

/// Agents connected to the bus over time, as its nodes counted them
/// (`/ws/stats`), all nodes together.
pub(super) fn connections_over_time(
    timeline: &[HealthSample],
    duration_s: f64,
    marks: &Marks,
) -> Result<String, ReportError> {
    let mut by_time: Vec<(f64, f64)> = Vec::new();
    for sample in timeline {
        let Some(open) = sample.connections else {
            continue;
        };
        // Samples of one poll (one per node) land within a second.
        match by_time.last_mut() {
            Some((at, sum)) if (sample.at_s - *at).abs() < 0.5 => *sum += open as f64,
            _ => by_time.push((sample.at_s, open as f64)),
        }
    }
    let y_max = axis_end(by_time.iter().map(|p| p.1).fold(0.0, f64::max));
    let lines = [Line::new("connections", by_time, BLUE)];
    line_chart(
        "Agents connected (the bus nodes' open connections)",
        "seconds",
        "connections",
        (axis_end(duration_s), y_max),
        &lines,
        marks,
        false,
    )
}

/// Highest "nines" on the percentile axis: p99.99.
const NINES: f64 = 4.0;

/// The percentile curve of one operation: latency against percentile on
/// the usual HDR axis, where 1, 2, 3, 4 mean p90, p99, p99.9, p99.99.
pub(super) fn latency_distribution(
    op: Operation,
    histogram: &Histogram<u64>,
) -> Result<String, ReportError> {
    let points: Vec<(f64, f64)> = (0..=80)
        .map(|step| {
            let nines = f64::from(step) * NINES / 80.0;
            let quantile = 1.0 - 10f64.powf(-nines);
            let value = histogram.value_at_quantile(quantile) as f64 / 1000.0;
            (nines, value)
        })
        .collect();
    let y_max = axis_end(histogram.max() as f64 / 1000.0);
    let title = format!("{op}: latency by percentile");
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, SIZE).into_drawing_area();
        root.fill(&WHITE).map_err(plot_error)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 18))
            .margin(12)
            .margin_right(40)
            .x_label_area_size(36)
            .y_label_area_size(60)
            .build_cartesian_2d(0f64..NINES, 0f64..y_max)
            .map_err(plot_error)?;
        chart
            .configure_mesh()
            .x_desc("percentile")
            .y_desc("ms")
            .x_labels(5)
            .x_label_formatter(&|nines| percentile_label(*nines))
            .draw()
            .map_err(plot_error)?;
        chart
            .draw_series(LineSeries::new(points, &BLUE))
            .map_err(plot_error)?;
        root.present().map_err(plot_error)?;
    }
    Ok(svg)
}

/// "p0", "p90", "p99", "p99.9", ... for a position on the nines axis.
fn percentile_label(nines: f64) -> String {
    let percentile = 100.0 * (1.0 - 10f64.powf(-nines));
    let text = format!("{percentile:.4}");
    let text = text.trim_end_matches('0').trim_end_matches('.');
    format!("p{text}")
}

/// The bus's own health over time, as a step line over healthy (0),
/// degraded (1) and unhealthy (2).
pub(super) fn health_timeline(
    samples: &[HealthSample],
    duration_s: f64,
) -> Result<String, ReportError> {
    let mut points = Vec::new();
    for (i, sample) in samples.iter().enumerate() {
        let level = sample.level() as u8 as f64;
        let until = samples
            .get(i + 1)
            .map_or(duration_s.max(sample.at_s), |n| n.at_s);
        points.push((sample.at_s, level));
        points.push((until, level));
    }
    let x_max = axis_end(duration_s.max(points.last().map_or(0.0, |p| p.0)));
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (SIZE.0, 200)).into_drawing_area();
        root.fill(&WHITE).map_err(plot_error)?;
        let caption = match samples.is_empty() {
            true => "Bus health (no samples)",
            false => "Bus health (/health)",
        };
        let mut chart = ChartBuilder::on(&root)
            .caption(caption, ("sans-serif", 18))
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(90)
            .build_cartesian_2d(0f64..x_max, -0.2f64..2.2)
            .map_err(plot_error)?;
        chart
            .configure_mesh()
            .x_desc("seconds")
            .y_labels(3)
            .y_label_formatter(&|level| level_label(*level).to_owned())
            .draw()
            .map_err(plot_error)?;
        chart
            .draw_series(LineSeries::new(points, BLUE.stroke_width(2)))
            .map_err(plot_error)?;
        root.present().map_err(plot_error)?;
    }
    Ok(svg)
}

fn level_label(level: f64) -> &'static str {
    match level.round() as i64 {
        0 => "healthy",
        1 => "degraded",
        2 => "unhealthy",
        _ => "",
    }
}

/// One named, coloured line of a chart.
struct Line {
    name: &'static str,
    points: Vec<(f64, f64)>,
    color: RGBColor,
}

impl Line {
    fn new(name: &'static str, points: Vec<(f64, f64)>, color: RGBColor) -> Self {
        Self {
            name,
            points,
            color,
        }
    }
}

/// A chart of named lines sharing the axes `0..x_max`, `0..y_max`.
fn line_chart(
    title: &str,
    x_desc: &str,
    y_desc: &str,
    (x_max, y_max): (f64, f64),
    lines: &[Line],
    marks: &Marks,
    with_limits: bool,
) -> Result<String, ReportError> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, SIZE).into_drawing_area();
        root.fill(&WHITE).map_err(plot_error)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 18))
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(60)
            .build_cartesian_2d(0f64..x_max, 0f64..y_max)
            .map_err(plot_error)?;
        chart
            .configure_mesh()
            .x_desc(x_desc)
            .y_desc(y_desc)
            .draw()
            .map_err(plot_error)?;
        draw_marks(&mut chart, marks, with_limits, (x_max, y_max))?;
        for line in lines {
            let color = line.color;
            chart
                .draw_series(LineSeries::new(line.points.iter().copied(), color))
                .map_err(plot_error)?
                .label(line.name)
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()
            .map_err(plot_error)?;
        root.present().map_err(plot_error)?;
    }
    Ok(svg)
}

type Chart<'a, 'b> = ChartContext<
    'a,
    SVGBackend<'b>,
    Cartesian2d<plotters::coord::types::RangedCoordf64, plotters::coord::types::RangedCoordf64>,
>;

/// The drain shaded and labelled, phase starts as labelled vertical lines,
/// and (on latency charts) the limits as labelled horizontal lines.
fn draw_marks(
    chart: &mut Chart<'_, '_>,
    marks: &Marks,
    with_limits: bool,
    (x_max, y_max): (f64, f64),
) -> Result<(), ReportError> {
    let label = |text: String, at: (f64, f64), color: RGBColor| {
        Text::new(text, at, ("sans-serif", 12).into_font().color(&color))
    };
    if let Some(from) = marks.drain_from.filter(|f| *f < x_max) {
        let shade = Rectangle::new(
            [(from, 0.0), (x_max, y_max)],
            RGBColor(235, 235, 235).filled(),
        );
        chart.draw_series([shade]).map_err(plot_error)?;
        chart
            .draw_series([label("drain".to_owned(), (from, y_max * 0.97), BLACK)])
            .map_err(plot_error)?;
    }
    for (name, start) in &marks.phases {
        let line = PathElement::new(
            vec![(*start, 0.0), (*start, y_max)],
            RGBColor(150, 150, 150),
        );
        chart.draw_series([line]).map_err(plot_error)?;
        chart
            .draw_series([label(
                name.clone(),
                (*start, y_max * 0.92),
                RGBColor(90, 90, 90),
            )])
            .map_err(plot_error)?;
    }
    if let Some((warning, critical)) = marks.limits.filter(|_| with_limits) {
        for (value, name, color) in [
            (warning, "warning", RGBColor(200, 140, 0)),
            (critical, "critical", RED),
        ] {
            if value > y_max {
                continue;
            }
            let line = PathElement::new(vec![(0.0, value), (x_max, value)], color.stroke_width(2));
            chart.draw_series([line]).map_err(plot_error)?;
            let text = format!("{name} {} ms", super::text::ms(value));
            chart
                .draw_series([label(text, (x_max * 0.8, value), color)])
                .map_err(plot_error)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentile_labels_read_as_nines() {
        assert_eq!(percentile_label(0.0), "p0");
        assert_eq!(percentile_label(1.0), "p90");
        assert_eq!(percentile_label(2.0), "p99");
        assert_eq!(percentile_label(3.0), "p99.9");
    }

    #[test]
    fn empty_data_still_draws() {
        let none = Marks::default();
        let op = Operation::PublishDelivery;
        assert!(
            latency_over_time(&[], op, &none)
                .unwrap()
                .starts_with("<svg")
        );
        assert!(timed_operations(&[]).is_empty());
        assert!(
            throughput_over_time(&[], &none)
                .unwrap()
                .contains("Throughput")
        );
        assert!(
            connections_over_time(&[], 0.0, &none)
                .unwrap()
                .contains("Agents connected")
        );
        assert!(health_timeline(&[], 0.0).unwrap().contains("no samples"));
    }

    #[test]
    fn time_charts_mark_limits_phases_and_the_drain() {
        let series: Vec<SeriesRow> = (0..12)
            .map(|second| SeriesRow {
                second,
                sent: 10,
                delivered: 100,
                errors: 0,
                p50_ms: Some(3.0),
                p99_ms: Some(9.0),
                operations: vec![SecondLatency {
                    operation: Operation::QueueWait,
                    samples: 100,
                    p50_ms: 3.0,
                    p99_ms: 9.0,
                }],
            })
            .collect();
        assert_eq!(timed_operations(&series), vec![Operation::QueueWait]);
        let marks = Marks {
            phases: vec![("base".into(), 0.0), ("burst".into(), 6.0)],
            drain_from: Some(10.0),
            limits: Some((50.0, 200.0)),
        };
        let latency = latency_over_time(&series, Operation::QueueWait, &marks).unwrap();
        for text in [
            "warning 50",
            "base",
            "burst",
            "drain",
            "queue_wait",
            "enqueue → claim",
        ] {
            assert!(latency.contains(text), "{text} not in the latency chart");
        }
        // The critical line is off the chart's scale (9 ms data, 50 ms
        // warning): not drawn rather than drawn outside.
        assert!(!latency.contains("critical 200"));
        let throughput = throughput_over_time(&series, &marks).unwrap();
        assert!(throughput.contains("burst") && !throughput.contains("warning"));
        let timeline = [HealthSample {
            at_s: 1.0,
            status: "healthy".into(),
            checks_ms: Default::default(),
            node: Some("n".into()),
            connections: Some(40),
        }];
        assert!(
            connections_over_time(&timeline, 12.0, &marks)
                .unwrap()
                .contains("connections")
        );
    }
}
