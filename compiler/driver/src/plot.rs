//! `strata eval --plot`: accuracy against plane count for every method, as a standalone SVG.
//!
//! Written directly as SVG text: the chart is a handful of polylines, and this keeps the
//! compiler free of font and rendering dependencies.

use std::fmt::Write;

use crate::eval::{CostReport, EvalReport};

const W: f64 = 640.0;
const H: f64 = 400.0;
const LEFT: f64 = 64.0;
const RIGHT: f64 = 150.0;
const TOP: f64 = 24.0;
const BOTTOM: f64 = 48.0;

fn colour(method: &str) -> &'static str {
    match method {
        "strata" => "#1f77b4",
        "dedicated-qat" => "#ff7f0e",
        "nested-ptq" => "#8c564b",
        "dedicated-ptq" => "#2ca02c",
        "naive-truncation" => "#d62728",
        "strata-mixed" => "#9467bd",
        _ => "#555555",
    }
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// The SVG element, its white background and the chart's title.
fn open(title: &str, pw: f64) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(s, r#"<rect width="{W}" height="{H}" fill="white"/>"#);
    let _ = writeln!(
        s,
        r#"<text x="{}" y="16" text-anchor="middle" font-size="14">{}</text>"#,
        LEFT + pw / 2.0,
        escape(title)
    );
    s
}

/// The plot area's frame.
fn frame(s: &mut String, pw: f64, ph: f64) {
    let _ = writeln!(
        s,
        r##"<rect x="{LEFT}" y="{TOP}" width="{pw}" height="{ph}" fill="none" stroke="#333"/>"##
    );
}

/// Renders the report's top-1 accuracy (percent) against planes; FP32 is a dashed line.
pub fn accuracy_svg(report: &EvalReport, title: &str) -> String {
    let planes: Vec<u8> = report.rows.iter().filter_map(|r| r.planes).collect();
    let (x_min, x_max) = match (planes.iter().min(), planes.iter().max()) {
        (Some(&a), Some(&b)) if a < b => (a as f64, b as f64),
        (Some(&a), _) => (a as f64 - 1.0, a as f64 + 1.0),
        _ => (1.0, 8.0),
    };
    let y_lo = report
        .rows
        .iter()
        .map(|r| r.top1 * 100.0)
        .fold(100.0, f64::min);
    let y_min = ((y_lo / 10.0).floor() * 10.0).clamp(0.0, 90.0);
    let (y_max, pw, ph) = (100.0, W - LEFT - RIGHT, H - TOP - BOTTOM);
    let x = |v: f64| LEFT + (v - x_min) / (x_max - x_min) * pw;
    let y = |v: f64| TOP + (y_max - v) / (y_max - y_min) * ph;
    let mut s = open(title, pw);
    // Axes, grid and ticks.
    frame(&mut s, pw, ph);
    let mut tick = y_min;
    while tick <= y_max + 1e-9 {
        let _ = writeln!(
            s,
            r##"<line x1="{LEFT}" x2="{}" y1="{y0:.1}" y2="{y0:.1}" stroke="#ddd"/><text x="{}" y="{:.1}" text-anchor="end">{tick:.0}</text>"##,
            LEFT + pw,
            LEFT - 6.0,
            y(tick) + 4.0,
            y0 = y(tick)
        );
        tick += if y_max - y_min > 30.0 { 10.0 } else { 5.0 };
    }
    for k in (x_min as u32)..=(x_max as u32) {
        let _ = writeln!(
            s,
            r#"<text x="{:.1}" y="{}" text-anchor="middle">{k}</text>"#,
            x(k as f64),
            TOP + ph + 16.0
        );
    }
    let _ = writeln!(
        s,
        r#"<text x="{}" y="{}" text-anchor="middle">planes k</text>"#,
        LEFT + pw / 2.0,
        H - 10.0
    );
    let _ = writeln!(
        s,
        r#"<text transform="translate(16,{}) rotate(-90)" text-anchor="middle">top-1 (%)</text>"#,
        TOP + ph / 2.0
    );
    // Series.
    let mut legend_y = TOP + 10.0;
    let mut methods: Vec<&str> = Vec::new();
    for r in &report.rows {
        if !methods.contains(&r.method) {
            methods.push(r.method);
        }
    }
    for method in methods {
        let c = colour(method);
        let rows: Vec<_> = report.rows.iter().filter(|r| r.method == method).collect();
        if let [only] = rows.as_slice() {
            if only.planes.is_none() {
                let yv = y(only.top1 * 100.0);
                let _ = writeln!(
                    s,
                    r#"<line x1="{LEFT}" x2="{}" y1="{yv:.1}" y2="{yv:.1}" stroke="{c}" stroke-dasharray="6 4"/>"#,
                    LEFT + pw
                );
            }
        }
        let mut pts: Vec<(f64, f64)> = rows
            .iter()
            .filter_map(|r| r.planes.map(|k| (x(k as f64), y(r.top1 * 100.0))))
            .collect();
        pts.sort_by(|a, b| a.0.total_cmp(&b.0));
        if !pts.is_empty() {
            let list: Vec<String> = pts.iter().map(|(a, b)| format!("{a:.1},{b:.1}")).collect();
            let _ = writeln!(
                s,
                r#"<polyline points="{}" fill="none" stroke="{c}" stroke-width="2"/>"#,
                list.join(" ")
            );
            for (a, b) in &pts {
                let _ = writeln!(s, r#"<circle cx="{a:.1}" cy="{b:.1}" r="3" fill="{c}"/>"#);
            }
        }
        let lx = LEFT + pw + 12.0;
        let dash = if rows.iter().all(|r| r.planes.is_none()) {
            r#" stroke-dasharray="6 4""#
        } else {
            ""
        };
        let _ = writeln!(
            s,
            r#"<line x1="{lx}" x2="{}" y1="{legend_y}" y2="{legend_y}" stroke="{c}" stroke-width="2"{dash}/><text x="{}" y="{}">{}</text>"#,
            lx + 20.0,
            lx + 26.0,
            legend_y + 4.0,
            escape(method)
        );
        legend_y += 18.0;
    }
    s.push_str("</svg>\n");
    s
}

/// `strata eval --adaptive --plot`: top-1 (percent) against average bit-operations (fraction
/// of the full-plane model's) for uniform plane counts, the stored per-layer choice and each
/// adaptive policy; a point up and to the left of the uniform line is a better trade.
pub fn pareto_svg(report: &CostReport, title: &str) -> String {
    let y_lo = report
        .rows
        .iter()
        .map(|r| r.top1 * 100.0)
        .fold(100.0, f64::min);
    let y_hi = report
        .rows
        .iter()
        .map(|r| r.top1 * 100.0)
        .fold(0.0, f64::max);
    // A tight band around the points: the differences that matter are fractions of a point.
    let y_min = (y_lo - 0.5).floor().max(0.0);
    let y_max = (y_hi + 0.5).ceil().min(100.0).max(y_min + 1.0);
    let (x_min, x_max) = (0.0, 1.05);
    let (pw, ph) = (W - LEFT - RIGHT, H - TOP - BOTTOM);
    let x = |v: f64| LEFT + (v - x_min) / (x_max - x_min) * pw;
    let y = |v: f64| TOP + (y_max - v) / (y_max - y_min) * ph;
    let mut s = open(title, pw);
    frame(&mut s, pw, ph);
    let step = ((y_max - y_min) / 8.0).max(0.1);
    let step = [0.1, 0.2, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .find(|&s| s >= step)
        .unwrap_or(10.0);
    let mut tick = y_min;
    while tick <= y_max + 1e-9 {
        let _ = writeln!(
            s,
            r##"<line x1="{LEFT}" x2="{}" y1="{y0:.1}" y2="{y0:.1}" stroke="#ddd"/><text x="{}" y="{:.1}" text-anchor="end">{tick:.1}</text>"##,
            LEFT + pw,
            LEFT - 6.0,
            y(tick) + 4.0,
            y0 = y(tick)
        );
        tick += step;
    }
    for i in 0..=10 {
        let v = i as f64 / 10.0;
        let _ = writeln!(
            s,
            r#"<text x="{:.1}" y="{}" text-anchor="middle">{v:.1}</text>"#,
            x(v),
            TOP + ph + 16.0
        );
    }
    let _ = writeln!(
        s,
        r#"<text x="{}" y="{}" text-anchor="middle">bit-operations (fraction of {} planes)</text>"#,
        LEFT + pw / 2.0,
        H - 10.0,
        report.full_planes
    );
    let _ = writeln!(
        s,
        r#"<text transform="translate(16,{}) rotate(-90)" text-anchor="middle">top-1 (%)</text>"#,
        TOP + ph / 2.0
    );
    let mut legend_y = TOP + 10.0;
    for (method, c) in [
        ("uniform", colour("strata")),
        ("strata-mixed", colour("strata-mixed")),
        ("adaptive", "#e377c2"),
    ] {
        let rows: Vec<_> = report.rows.iter().filter(|r| r.method == method).collect();
        if rows.is_empty() {
            continue;
        }
        let pts: Vec<(f64, f64, &str)> = rows
            .iter()
            .map(|r| (x(r.bit_ops), y(r.top1 * 100.0), r.label.as_str()))
            .collect();
        if pts.len() > 1 {
            let list: Vec<String> = pts
                .iter()
                .map(|(a, b, _)| format!("{a:.1},{b:.1}"))
                .collect();
            let _ = writeln!(
                s,
                r#"<polyline points="{}" fill="none" stroke="{c}" stroke-width="2"/>"#,
                list.join(" ")
            );
        }
        for (a, b, label) in &pts {
            let _ = writeln!(
                s,
                r#"<circle cx="{a:.1}" cy="{b:.1}" r="3.5" fill="{c}"/><text x="{:.1}" y="{:.1}" font-size="10" fill="{c}">{}</text>"#,
                a + 5.0,
                b - 5.0,
                escape(label)
            );
        }
        let lx = LEFT + pw + 12.0;
        let _ = writeln!(
            s,
            r#"<line x1="{lx}" x2="{}" y1="{legend_y}" y2="{legend_y}" stroke="{c}" stroke-width="2"/><text x="{}" y="{}">{method}</text>"#,
            lx + 20.0,
            lx + 26.0,
            legend_y + 4.0
        );
        legend_y += 18.0;
    }
    s.push_str("</svg>\n");
    s
}
