//! Reading back what a plot drew: the polylines of an SVG written by
//! plotters (`<polyline … stroke="#RRGGBB" … points="x,y x,y "/>`), and a
//! check that a line's points are the values it was drawn from.

/// One `<polyline>`: its stroke colour (`#rrggbb`, lower case) and points
/// in pixels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Polyline {
    pub stroke: String,
    pub points: Vec<(i32, i32)>,
}

/// Every `<polyline>` of `svg`, in document order.
pub fn polylines(svg: &str) -> Vec<Polyline> {
    let attribute = |element: &str, name: &str| -> Option<String> {
        let start = element.find(&format!(" {name}=\""))? + name.len() + 3;
        let len = element[start..].find('"')?;
        Some(element[start..start + len].to_string())
    };
    svg.split("<polyline")
        .skip(1)
        .filter_map(|rest| {
            let element = &rest[..rest.find("/>")?];
            let points = attribute(element, "points")?
                .split_whitespace()
                .map(|p| {
                    let (x, y) = p.split_once(',').expect("x,y");
                    (x.parse().expect("x"), y.parse().expect("y"))
                })
                .collect();
            Some(Polyline {
                stroke: attribute(element, "stroke")?.to_ascii_lowercase(),
                points,
            })
        })
        .collect()
}

/// `#rrggbb` of an RGB triple, as [`Polyline::stroke`] holds it.
pub fn hex(rgb: (u8, u8, u8)) -> String {
    format!("#{:02x}{:02x}{:02x}", rgb.0, rgb.1, rgb.2)
}

/// Checks that pixel coordinates `pixels` plot `values` on a linear axis:
/// the map from value to pixel that the two most distant values define
/// puts every value within a pixel of where it was drawn (pixels are whole
/// numbers). Returns what differs.
pub fn check_linear(pixels: &[i32], values: &[f64]) -> Result<(), String> {
    if pixels.len() != values.len() {
        return Err(format!(
            "{} points for {} values",
            pixels.len(),
            values.len()
        ));
    }
    let lo = (0..values.len()).min_by(|&a, &b| values[a].total_cmp(&values[b]));
    let hi = (0..values.len()).max_by(|&a, &b| values[a].total_cmp(&values[b]));
    let (Some(lo), Some(hi)) = (lo, hi) else {
        return Ok(());
    };
    if values[hi] == values[lo] {
        return match pixels.iter().all(|&p| p == pixels[lo]) {
            true => Ok(()),
            false => Err("a constant series drawn at several heights".into()),
        };
    }
    let scale = f64::from(pixels[hi] - pixels[lo]) / (values[hi] - values[lo]);
    for (i, (&p, &v)) in pixels.iter().zip(values).enumerate() {
        let want = f64::from(pixels[lo]) + (v - values[lo]) * scale;
        if (f64::from(p) - want).abs() > 1.5 {
            return Err(format!(
                "point {i}: value {v} drawn at {p}, expected {want:.1}"
            ));
        }
    }
    Ok(())
}
