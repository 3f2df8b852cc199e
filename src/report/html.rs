//! The HTML of a report: one self-contained page per scenario (its data as
//! JSON, drawn by a small inline script into inline SVG; nothing is loaded
//! from anywhere) and the index.

use super::IndexEntry;
use serde_json::Value;
use std::fmt::Write as _;

const CSS: &str = include_str!("page.css");
const SCRIPT: &str = include_str!("page.js");

pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// JSON that can sit inside a `<script>` element (no `</script>` in it).
fn script_json(data: &Value) -> String {
    data.to_string()
        .replace("</", "<\\/")
        .replace("<!--", "<\\!--")
}

pub fn page(data: &Value) -> String {
    let name = escape(data["name"].as_str().unwrap_or_default());
    let verdict = if data["passed"].as_bool() == Some(true) {
        "<span class=\"pass\">PASS</span>"
    } else {
        "<span class=\"fail\">FAIL</span>"
    };
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
<title>{name} — peerloop report</title><style>{CSS}</style></head>\n<body>\
<header><a href=\"index.html\">all scenarios</a><h1>{verdict} {name}</h1>\
<p id=\"summary\"></p></header>\
<section id=\"problems\"></section>\
<section><h2>Messages</h2><div id=\"filters\"></div>\
<div id=\"diagram-wrap\"><div id=\"heads\"></div><div id=\"diagram\"></div></div>\
<div id=\"detail\" class=\"detail\">Hover over or click an arrow to see its frame.</div></section>\
<section><h2>Topology at the end</h2><div id=\"topology\"></div></section>\
<section><h2>Machines</h2><div id=\"machines\"></div></section>\
<script type=\"application/json\" id=\"data\">{}</script>\
<script>{SCRIPT}</script></body></html>\n",
        script_json(data)
    )
}

pub fn index(entries: &[IndexEntry]) -> String {
    let passed = entries.iter().filter(|e| e.passed).count();
    let mut rows = String::new();
    for e in entries {
        let problem = e.problems.first().map(|p| escape(p)).unwrap_or_default();
        let more = if e.problems.len() > 1 {
            format!(" (and {} more)", e.problems.len() - 1)
        } else {
            String::new()
        };
        let _ = writeln!(
            rows,
            "<tr class=\"{cls}\"><td><a href=\"{href}\">{name}</a></td><td class=\"{cls}\">{verdict}</td>\
<td>{secs:.1} s</td><td>{problem}{more}</td>\
<td><a href=\"{stem}.frames.log\">frames</a> · <a href=\"{stem}.shiviz.log\">ShiViz</a></td></tr>",
            cls = if e.passed { "pass" } else { "fail" },
            href = escape(&super::page_name(&e.name)),
            name = escape(&e.name),
            verdict = if e.passed { "PASS" } else { "FAIL" },
            secs = e.seconds,
            stem = escape(&super::file_safe(&e.name)),
        );
    }
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>peerloop report</title>\
<style>{CSS}</style></head><body><header><h1>peerloop test report</h1>\
<p id=\"totals\">{passed} passed, {failed} failed</p></header>\
<table id=\"scenarios\"><thead><tr><th>scenario</th><th>verdict</th><th>duration</th><th>first problem</th><th>logs</th></tr></thead>\
<tbody>\n{rows}</tbody></table></body></html>\n",
        failed = entries.len() - passed
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_cannot_close_the_script_element() {
        let data = serde_json::json!({"name": "x", "label": "</script><script>alert(1)</script>"});
        let html = page(&data);
        assert_eq!(
            html.matches("</script>").count(),
            2,
            "only the page's own two"
        );
    }
}
