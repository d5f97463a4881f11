//! Markdown output: tables and number formatting.

use std::fmt::Write;
use std::time::Duration;

#[derive(Debug, Clone, Default)]
pub struct Table {
    pub header: Vec<String>,
    pub rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new(header: &[&str]) -> Table {
        Table {
            header: header.iter().map(|h| h.to_string()).collect(),
            rows: Vec::new(),
        }
    }

    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    pub fn render(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "| {} |", self.header.join(" | "));
        let aligns: Vec<&str> = self
            .header
            .iter()
            .enumerate()
            .map(|(i, _)| if i == 0 { "---" } else { "--:" })
            .collect();
        let _ = writeln!(s, "|{}|", aligns.join("|"));
        for r in &self.rows {
            let _ = writeln!(s, "| {} |", r.join(" | "));
        }
        s
    }
}

#[derive(Debug, Clone, Default)]
pub struct Section {
    pub title: String,
    pub text: String,
    pub tables: Vec<Table>,
    pub notes: Vec<String>,
    /// Problems a smoke run must fail on (errors, stalls where none are expected).
    pub problems: Vec<String>,
}

impl Section {
    pub fn render(&self) -> String {
        let mut s = format!("## {}\n\n", self.title);
        if !self.text.is_empty() {
            s.push_str(self.text.trim_end());
            s.push_str("\n\n");
        }
        for t in &self.tables {
            s.push_str(&t.render());
            s.push('\n');
        }
        for n in &self.notes {
            let _ = writeln!(s, "- {n}");
        }
        if !self.notes.is_empty() {
            s.push('\n');
        }
        s
    }
}

/// µs below a millisecond (one decimal), ms above.
pub fn us(v: f64) -> String {
    if !v.is_finite() {
        return "—".into();
    }
    if v.abs() >= 10_000.0 {
        format!("{:.1} ms", v / 1000.0)
    } else if v.abs() >= 1000.0 {
        format!("{:.2} ms", v / 1000.0)
    } else {
        format!("{v:.1} µs")
    }
}

/// Signed, for "added" figures.
pub fn added_us(v: f64) -> String {
    if !v.is_finite() {
        return "—".into();
    }
    let s = us(v.abs());
    if v < 0.0 {
        format!("−{s}")
    } else {
        format!("+{s}")
    }
}

pub fn opt_us(v: Option<f64>) -> String {
    v.map(us).unwrap_or_else(|| "—".into())
}

pub fn opt_added(v: Option<f64>) -> String {
    v.map(added_us).unwrap_or_else(|| "—".into())
}

pub fn ratio(v: Option<f64>) -> String {
    match v {
        Some(r) if r.is_finite() => format!("{r:.2}×"),
        _ => "—".into(),
    }
}

pub fn mb(bytes: Option<u64>) -> String {
    bytes
        .map(|b| format!("{:.1} MB", b as f64 / 1_048_576.0))
        .unwrap_or_else(|| "—".into())
}

pub fn secs(v: Option<f64>) -> String {
    match v {
        Some(s) if s < 1.0 => format!("{:.0} ms", s * 1000.0),
        Some(s) => format!("{s:.2} s"),
        None => "—".into(),
    }
}

pub fn dur_us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}
