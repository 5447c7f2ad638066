//! ASCII sparklines for LATENCY GRAPH, drawn as Redis's `sparkline.c` draws them (filled,
//! linear scale): each sample is a column of `rows` character rows, each row three levels
//! (`_`, `o`, `#`, with `|` below the top of a bar), then a blank row and each sample's label
//! written downwards. More samples than `columns` wrap into further blocks.

/// Appends the sparkline of `points` (value, label) to `out`, in blocks of `columns` samples.
pub(super) fn render(out: &mut String, points: &[(f64, String)], columns: usize, rows: usize) {
    let Some(min) = points.iter().map(|p| p.0).reduce(f64::min) else {
        return;
    };
    let max = points.iter().map(|p| p.0).fold(min, f64::max);
    let labels = points.iter().any(|p| !p.1.is_empty());
    for (n, block) in points.chunks(columns.max(1)).enumerate() {
        if n != 0 {
            out.push('\n');
        }
        render_block(out, block, Scale { min, max, rows }, labels);
    }
}

/// The vertical scale shared by every block.
#[derive(Clone, Copy)]
struct Scale {
    min: f64,
    max: f64,
    rows: usize,
}

fn render_block(out: &mut String, block: &[(f64, String)], scale: Scale, labels: bool) {
    const FILL: [char; 3] = ['_', 'o', '#'];
    let levels = FILL.len() as i64;
    let steps = levels * scale.rows as i64;
    // Every sample equal: all at the bottom level, as in Redis.
    let range = Some(scale.max - scale.min)
        .filter(|r| *r > 0.0)
        .unwrap_or(1.0);
    // The level of each sample, 0..steps: truncated twice, as Redis's
    // `(int) (relval*steps)/relmax` does.
    let step: Vec<i64> = block
        .iter()
        .map(|(v, _)| ((((v - scale.min) * steps as f64) as i64) as f64 / range) as i64)
        .map(|s| s.clamp(0, steps - 1))
        .collect();
    let mut row = 0usize;
    loop {
        let mut line = vec![' '; block.len()];
        let mut more = false;
        if row < scale.rows {
            more = true;
            for (j, s) in step.iter().enumerate() {
                let index = s - (scale.rows - row - 1) as i64 * levels;
                if (0..levels).contains(&index) {
                    line[j] = FILL[index as usize];
                } else if index >= levels {
                    line[j] = '|';
                }
            }
        } else if labels && row - scale.rows < LABEL_MARGIN_TOP {
            more = true;
        } else {
            let at = row - scale.rows - LABEL_MARGIN_TOP;
            for (j, (_, label)) in block.iter().enumerate() {
                if let Some(c) = label.chars().nth(at) {
                    line[j] = c;
                    more = true;
                }
            }
        }
        if !more {
            return;
        }
        out.extend(line);
        out.push('\n');
        row += 1;
    }
}

/// Blank rows between the bars and the labels.
const LABEL_MARGIN_TOP: usize = 1;
