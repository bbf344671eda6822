//! A small SVG writer for the report's charts: grouped bars, histograms and
//! bytes-over-time step areas, as inline `<svg>` text.
//!
//! Hand-written rather than `plotters`: the charts are three simple shapes,
//! the output must carry `data-*` attributes the Chromium test reads back,
//! every string (a DUT controls some case messages and names) must be escaped
//! in one audited place, and it costs no dependency or font handling.
//!
//! Contract: each chart with data is one `<svg class="chart"
//! data-chart="<kind>" data-id="<id>">` whose marks (`<rect>` or `<path>`)
//! carry `class="mark"` and `data-v` (the value). Non-finite values (NaN,
//! infinities) are never drawn; negative values are drawn as zero. A chart
//! without one finite, non-zero value is not drawn at all: the writer returns
//! a `<p class="nodata">` saying so, so a chart on the page always has data.

use std::fmt::Write as _;

use crate::series::Series;

/// Chart width in SVG user units (the CSS scales it to the page).
const W: f64 = 640.0;
/// Chart height.
const H: f64 = 220.0;
/// Left margin (y-axis labels).
const ML: f64 = 64.0;
/// Right margin.
const MR: f64 = 12.0;
/// Top margin (title).
const MT: f64 = 28.0;
/// Bottom margin (x-axis labels).
const MB: f64 = 44.0;

/// Escapes text for HTML/SVG element content and attribute values.
pub fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            // Control characters (a DUT's console can emit any byte) are
            // shown as U+FFFD rather than passed to the page.
            c if c.is_control() && c != '\n' && c != '\t' => out.push('\u{fffd}'),
            c => out.push(c),
        }
    }
    out
}

/// A value for display: integers without decimals, others with up to 3
/// significant decimals; `–` for a non-finite value.
pub fn num(v: f64) -> String {
    if !v.is_finite() {
        return "–".to_string();
    }
    if v == v.trunc() && v.abs() < 1e15 {
        return format!("{v:.0}");
    }
    let a = v.abs();
    let text = if a >= 100.0 {
        format!("{v:.1}")
    } else if a >= 1.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.4}")
    };
    // `0.6880` → `0.688`, `12.50` → `12.5` (there is always a '.' here).
    let text = text.trim_end_matches('0').trim_end_matches('.');
    if text == "-0" {
        "0".to_string()
    } else {
        text.to_string()
    }
}

/// One bar.
#[derive(Clone, Debug, PartialEq)]
pub struct Bar {
    /// Legend label (e.g. `lwm2m`, `study mqtt-aws`).
    pub label: String,
    /// The value; non-finite values are not drawn.
    pub value: f64,
    /// CSS class picking the colour (`lwm2m`, `mqtt-aws`, `mqtt-plain`,
    /// `study`, `up`, `down`, ...).
    pub class: String,
}

/// A group of bars under one x label.
#[derive(Clone, Debug, PartialEq)]
pub struct Group {
    /// The x label.
    pub label: String,
    /// The bars, left to right.
    pub bars: Vec<Bar>,
}

/// A CSS class name from free text: letters, digits and `-` only.
pub fn class_name(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect()
}

fn drawable(v: f64) -> Option<f64> {
    v.is_finite().then_some(v.max(0.0))
}

/// A rounded axis maximum at or above `max` (1, 2, 2.5, 5 × 10^k).
fn nice_max(max: f64) -> f64 {
    if max <= 0.0 || !max.is_finite() {
        return 1.0;
    }
    let exp = max.log10().floor();
    let base = 10f64.powf(exp);
    for m in [1.0, 2.0, 2.5, 5.0, 10.0] {
        if m * base >= max {
            return m * base;
        }
    }
    10.0 * base
}

fn no_data(id: &str, title: &str) -> String {
    format!(
        "<p class=\"nodata\" data-nodata=\"{}\">{}: no data</p>\n",
        esc(id),
        esc(title)
    )
}

fn open(svg: &mut String, kind: &str, id: &str, title: &str, unit: &str, max: f64) {
    let _ = write!(
        svg,
        "<svg class=\"chart\" data-chart=\"{kind}\" data-id=\"{}\" viewBox=\"0 0 {W} {H}\" \
         role=\"img\" aria-label=\"{}\" xmlns=\"http://www.w3.org/2000/svg\">\
         <title>{}</title>\
         <text class=\"ct\" x=\"{ML}\" y=\"16\">{}</text>",
        esc(id),
        esc(title),
        esc(title),
        esc(title)
    );
    // Axis and three grid lines with labels.
    for i in 0..=2 {
        let v = max * f64::from(i) / 2.0;
        let y = MT + (H - MT - MB) * (1.0 - f64::from(i) / 2.0);
        let _ = write!(
            svg,
            "<line class=\"grid\" x1=\"{ML}\" y1=\"{y:.1}\" x2=\"{:.1}\" y2=\"{y:.1}\"/>\
             <text class=\"ax\" x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
            W - MR,
            ML - 4.0,
            y + 4.0,
            esc(&num(v))
        );
    }
    let _ = write!(
        svg,
        "<text class=\"ax\" x=\"4\" y=\"{:.1}\">{}</text>",
        MT - 6.0,
        esc(unit)
    );
}

/// Grouped bars: one group per x label, one bar per entry (our variants,
/// the study's figures), on a shared linear axis from zero.
pub fn bars(kind: &str, id: &str, title: &str, unit: &str, groups: &[Group]) -> String {
    let max = groups
        .iter()
        .flat_map(|g| g.bars.iter())
        .filter_map(|b| drawable(b.value))
        .fold(0.0f64, f64::max);
    if max <= 0.0 || groups.is_empty() {
        return no_data(id, title);
    }
    let max = nice_max(max);
    let mut svg = String::new();
    open(&mut svg, kind, id, title, unit, max);
    let plot_w = W - ML - MR;
    let plot_h = H - MT - MB;
    let gw = plot_w / groups.len() as f64;
    for (gi, g) in groups.iter().enumerate() {
        let gx = ML + gw * gi as f64;
        let n = g.bars.len().max(1) as f64;
        let bw = (gw * 0.8 / n).min(60.0);
        let start = gx + (gw - bw * n) / 2.0;
        for (bi, b) in g.bars.iter().enumerate() {
            let Some(v) = drawable(b.value) else { continue };
            let h = plot_h * v / max;
            let x = start + bw * bi as f64;
            let _ = write!(
                svg,
                "<rect class=\"mark {}\" data-v=\"{}\" x=\"{x:.1}\" y=\"{:.1}\" width=\"{:.1}\" \
                 height=\"{h:.1}\"><title>{}: {} {}</title></rect>",
                class_name(&b.class),
                num(b.value),
                MT + plot_h - h,
                (bw - 2.0).max(1.0),
                esc(&b.label),
                esc(&num(b.value)),
                esc(unit)
            );
        }
        let _ = write!(
            svg,
            "<text class=\"ax\" x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>",
            gx + gw / 2.0,
            H - MB + 14.0,
            esc(&g.label)
        );
    }
    legend(&mut svg, groups.iter().flat_map(|g| g.bars.iter()));
    svg.push_str("</svg>\n");
    svg
}

fn legend<'a>(svg: &mut String, bars: impl Iterator<Item = &'a Bar>) {
    let mut seen: Vec<(&str, &str)> = Vec::new();
    for b in bars {
        if !seen.iter().any(|(l, _)| *l == b.label) {
            seen.push((&b.label, &b.class));
        }
    }
    let mut x = ML;
    for (label, class) in seen {
        let _ = write!(
            svg,
            "<rect class=\"key {}\" x=\"{x:.1}\" y=\"{:.1}\" width=\"10\" height=\"10\"/>\
             <text class=\"ax\" x=\"{:.1}\" y=\"{:.1}\">{}</text>",
            class_name(class),
            H - 16.0,
            x + 14.0,
            H - 7.0,
            esc(label)
        );
        x += 24.0 + 7.0 * label.chars().count() as f64;
    }
}

/// A histogram: buckets (the `x` of each point) on the x axis, one bar per
/// series in each bucket (e.g. up and down frame lengths).
pub fn histogram(id: &str, title: &str, series: &[(&str, &Series)]) -> String {
    let mut xs: Vec<f64> = series
        .iter()
        .flat_map(|(_, s)| s.points.iter().map(|p| p.x))
        .filter(|x| x.is_finite())
        .collect();
    xs.sort_by(f64::total_cmp);
    xs.dedup();
    let x_unit = series.first().map(|(_, s)| s.x_unit.as_str()).unwrap_or("");
    let groups: Vec<Group> = xs
        .iter()
        .enumerate()
        .map(|(i, &x)| {
            let label = match xs.get(i + 1) {
                Some(next) => format!("{}–{}", num(x), num(next - 1.0)),
                None => format!("{}+", num(x)),
            };
            Group {
                label,
                bars: series
                    .iter()
                    .map(|(class, s)| Bar {
                        label: s.name.clone(),
                        value: s
                            .points
                            .iter()
                            .find(|p| p.x == x)
                            .map(|p| p.y)
                            .unwrap_or(0.0),
                        class: class.to_string(),
                    })
                    .collect(),
            }
        })
        .collect();
    let unit = series.first().map(|(_, s)| s.unit.as_str()).unwrap_or("");
    let title = if x_unit.is_empty() {
        title.to_string()
    } else {
        format!("{title} (buckets in {x_unit})")
    };
    bars("histogram", id, &title, unit, &groups)
}

/// Bytes over time: one step area per series (e.g. up and down), bins of
/// `series.bin` seconds, on a shared time axis.
pub fn timeline(id: &str, title: &str, series: &[(&str, &Series)]) -> String {
    let pts = || {
        series
            .iter()
            .flat_map(|(_, s)| s.points.iter())
            .filter(|p| p.x.is_finite() && p.y.is_finite())
    };
    let max_y = pts().map(|p| p.y.max(0.0)).fold(0.0f64, f64::max);
    if max_y <= 0.0 {
        return no_data(id, title);
    }
    let bin_of = |s: &Series| s.bin.filter(|b| b.is_finite() && *b > 0.0).unwrap_or(1.0);
    let t_end = series
        .iter()
        .flat_map(|(_, s)| {
            let b = bin_of(s);
            s.points
                .iter()
                .filter(|p| p.x.is_finite())
                .map(move |p| p.x + b)
        })
        .fold(0.0f64, f64::max)
        .max(1e-9);
    let max = nice_max(max_y);
    let unit = series.first().map(|(_, s)| s.unit.as_str()).unwrap_or("");
    let per = series
        .first()
        .map(|(_, s)| format!("{unit} per {} s", num(bin_of(s))))
        .unwrap_or_default();
    let mut svg = String::new();
    open(&mut svg, "timeline", id, title, &per, max);
    let plot_w = W - ML - MR;
    let plot_h = H - MT - MB;
    let base = MT + plot_h;
    let sx = |t: f64| ML + plot_w * (t / t_end).clamp(0.0, 1.0);
    let sy = |v: f64| base - plot_h * (v.max(0.0) / max).min(1.0);
    let mut legend_bars = Vec::new();
    for (class, s) in series {
        let b = bin_of(s);
        let mut d = String::new();
        let mut total = 0.0;
        let mut any = false;
        for p in s.points.iter().filter(|p| p.x.is_finite()) {
            // A non-finite value is a gap: drawn as zero.
            let v = if p.y.is_finite() { p.y } else { 0.0 };
            total += v.max(0.0);
            if !any {
                let _ = write!(d, "M{:.1},{base:.1}", sx(p.x));
                any = true;
            }
            let _ = write!(
                d,
                " L{:.1},{:.1} L{:.1},{:.1}",
                sx(p.x),
                sy(v),
                sx(p.x + b),
                sy(v)
            );
        }
        if !any || total <= 0.0 {
            continue;
        }
        let _ = write!(d, " V{base:.1} Z");
        let _ = write!(
            svg,
            "<path class=\"mark {}\" data-v=\"{}\" d=\"{d}\"><title>{}: {} {} in all</title></path>",
            class_name(class),
            num(total),
            esc(&s.name),
            esc(&num(total)),
            esc(unit)
        );
        legend_bars.push(Bar {
            label: s.name.clone(),
            value: total,
            class: class.to_string(),
        });
    }
    for i in 0..=4 {
        let t = t_end * f64::from(i) / 4.0;
        let _ = write!(
            svg,
            "<text class=\"ax\" x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{} s</text>",
            sx(t),
            H - MB + 14.0,
            esc(&num((t * 10.0).round() / 10.0))
        );
    }
    legend(&mut svg, legend_bars.iter());
    svg.push_str("</svg>\n");
    svg
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::series::{Point, SeriesKind};

    fn s(name: &str, kind: SeriesKind, ys: &[f64]) -> Series {
        Series {
            name: name.into(),
            kind,
            x_unit: "s".into(),
            unit: "B".into(),
            bin: Some(1.0),
            points: ys
                .iter()
                .enumerate()
                .map(|(i, &y)| Point { x: i as f64, y })
                .collect(),
        }
    }

    #[test]
    fn escapes_markup_quotes_and_control_characters() {
        assert_eq!(
            esc("<script>alert('x')</script> & \"q\"\u{1b}[31m"),
            "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;q&quot;\u{fffd}[31m"
        );
    }

    #[test]
    fn a_hostile_label_cannot_open_an_element() {
        let g = [Group {
            label: "</text><script>x()</script>".into(),
            bars: vec![Bar {
                label: "\"><img src=x onerror=y>".into(),
                value: 3.0,
                class: "lwm2m\" onclick=\"z".into(),
            }],
        }];
        let svg = bars("bars", "id\"x", "t<", "B", &g);
        assert!(!svg.contains("<script"), "{svg}");
        assert!(!svg.contains("<img"), "{svg}");
        assert!(!svg.contains("onclick=\""), "{svg}");
        assert!(svg.contains("data-id=\"id&quot;x\""), "{svg}");
    }

    #[test]
    fn bars_draw_one_mark_per_finite_value_and_skip_nan() {
        let g = [Group {
            label: "steady-state".into(),
            bars: vec![
                Bar {
                    label: "lwm2m".into(),
                    value: 179.0,
                    class: "lwm2m".into(),
                },
                Bar {
                    label: "mqtt".into(),
                    value: f64::NAN,
                    class: "mqtt-aws".into(),
                },
                Bar {
                    label: "study".into(),
                    value: f64::INFINITY,
                    class: "study".into(),
                },
            ],
        }];
        let svg = bars("bars", "b", "Bytes", "B", &g);
        assert_eq!(svg.matches("class=\"mark").count(), 1, "{svg}");
        assert!(svg.contains("data-v=\"179\""));
        assert!(!svg.contains("NaN") && !svg.contains("inf"), "{svg}");
    }

    #[test]
    fn no_data_gives_a_paragraph_not_an_empty_chart() {
        let empty = s("net.l2_bytes.up", SeriesKind::Timeline, &[]);
        let zeros = s("net.l2_bytes.down", SeriesKind::Timeline, &[0.0, 0.0]);
        let nan = s("x", SeriesKind::Timeline, &[f64::NAN]);
        for out in [
            timeline("t", "Bytes", &[("up", &empty), ("down", &zeros)]),
            timeline("t", "Bytes", &[("up", &nan)]),
            histogram("h", "Lengths", &[("up", &empty)]),
            bars("bars", "b", "B", "B", &[]),
        ] {
            assert!(out.starts_with("<p class=\"nodata\""), "{out}");
            assert!(!out.contains("data-chart"), "{out}");
        }
    }

    #[test]
    fn timeline_draws_a_closed_step_area_per_series_with_data() {
        let up = s("net.l2_bytes.up", SeriesKind::Timeline, &[92.0, 0.0, 46.0]);
        let down = s("net.l2_bytes.down", SeriesKind::Timeline, &[0.0, 0.0, 0.0]);
        let svg = timeline("t", "Bytes over time", &[("up", &up), ("down", &down)]);
        assert_eq!(svg.matches("<path class=\"mark up\"").count(), 1, "{svg}");
        assert!(
            !svg.contains("mark down"),
            "an all-zero series is not drawn"
        );
        assert!(svg.contains("data-v=\"138\""), "{svg}");
        assert!(svg.contains(" Z\""), "{svg}");
    }

    #[test]
    fn histogram_labels_buckets_by_their_bounds() {
        let mut h = s("net.frame_len.up", SeriesKind::Histogram, &[0.0, 2.0, 1.0]);
        for (p, x) in h.points.iter_mut().zip([0.0, 80.0, 160.0]) {
            p.x = x;
        }
        let svg = histogram("h", "Frame lengths", &[("up", &h)]);
        assert!(svg.contains(">80–159<"), "{svg}");
        assert!(svg.contains(">160+<"), "{svg}");
        assert_eq!(svg.matches("class=\"mark").count(), 3);
    }

    #[test]
    fn numbers_for_humans() {
        assert_eq!(num(179.0), "179");
        assert_eq!(num(0.688), "0.688");
        assert_eq!(num(12.5), "12.5");
        assert_eq!(num(1234.56), "1234.6");
        assert_eq!(num(-0.00001), "0");
        assert_eq!(num(f64::NAN), "–");
        assert_eq!(num(f64::NEG_INFINITY), "–");
    }

    #[test]
    fn nice_axis_maxima() {
        assert_eq!(nice_max(179.0), 200.0);
        assert_eq!(nice_max(1.0), 1.0);
        assert_eq!(nice_max(2100.0), 2500.0);
        assert_eq!(nice_max(f64::NAN), 1.0);
    }
}
