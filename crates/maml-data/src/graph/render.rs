//! A [`MetaGraph`] as Graphviz DOT, and as SVG drawn in pure Rust by the `layout-rs`
//! crate (DOT in, SVG out: no Graphviz install needed).
//!
//! Meta-parameters are ellipses, data and computations boxes, the meta-loss a double
//! circle. The edges into the support gradients are dashed (grey where this order cuts
//! them), the meta-gradient's backward path is red.

use std::path::Path;

use maml_core::data::write_atomic;
use maml_core::error::{MamlError, Result};

use super::{EdgeKind, MetaGraph, NodeKind};

/// A DOT string literal.
fn quote(text: &str) -> String {
    let escaped = text
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n");
    format!("\"{escaped}\"")
}

fn node_attributes(kind: NodeKind) -> &'static str {
    match kind {
        NodeKind::MetaParameter => "shape=ellipse, style=filled, fillcolor=lightyellow",
        NodeKind::StepSize => "shape=ellipse, style=filled, fillcolor=lightyellow",
        NodeKind::FastWeight => "shape=ellipse",
        NodeKind::QueryLoss => "shape=doublecircle",
        NodeKind::Fold => "shape=box, style=filled, fillcolor=lightgray",
        NodeKind::Data => "shape=box, style=filled, fillcolor=aliceblue",
        NodeKind::SupportLoss
        | NodeKind::Gradient
        | NodeKind::Direction
        | NodeKind::Operation
        | NodeKind::MetaGradient => "shape=box",
    }
}

/// The graph in Graphviz's DOT language, left to right. `title`: with the title and
/// notes as the graph's label (Graphviz draws it; the SVG writer adds its own).
pub fn to_dot(graph: &MetaGraph, title: bool) -> String {
    let mut dot = String::from("digraph meta_step {\n  rankdir=LR;\n");
    if title {
        let mut text = graph.title.clone();
        for note in &graph.notes {
            text.push('\n');
            text.push_str(note);
        }
        dot.push_str(&format!("  labelloc=t;\n  label={};\n", quote(&text)));
    }
    for node in &graph.nodes {
        let label = match &node.value {
            Some(value) => format!("{}\n{value}", node.label),
            None => node.label.clone(),
        };
        dot.push_str(&format!(
            "  {} [label={}, {}];\n",
            quote(&node.id),
            quote(&label),
            node_attributes(node.kind)
        ));
    }
    for edge in &graph.edges {
        let mut attributes = Vec::new();
        match (edge.kind, edge.cut) {
            (EdgeKind::Gradient, true) => attributes.push("style=dashed, color=gray".into()),
            (EdgeKind::Gradient, false) => attributes.push("style=dashed".to_string()),
            (EdgeKind::Backward, _) => attributes.push("color=red, fontcolor=red".into()),
            (EdgeKind::Forward, _) => {}
        }
        if let Some(label) = &edge.label {
            attributes.push(format!("label={}", quote(label)));
        }
        dot.push_str(&format!(
            "  {} -> {}{};\n",
            quote(&edge.from),
            quote(&edge.to),
            match attributes.is_empty() {
                true => String::new(),
                false => format!(" [{}]", attributes.join(", ")),
            }
        ));
    }
    dot.push_str("}\n");
    dot
}

/// XML text.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// The graph drawn as SVG by `layout-rs`, with the title and notes above it on a white
/// background.
pub fn to_svg(graph: &MetaGraph) -> Result<String> {
    let dot = to_dot(graph, false);
    let failed = |why: String| MamlError::Shape {
        location: "the graph's layout".into(),
        detail: why,
    };
    // layout-rs asserts on inputs it cannot draw: its panic becomes an error.
    let drawn = std::panic::catch_unwind(|| -> std::result::Result<String, String> {
        let mut parser = layout::gv::DotParser::new(&dot);
        let ast = parser.process()?;
        let mut builder = layout::gv::GraphBuilder::new();
        builder.visit_graph(&ast);
        let mut visual = builder.get();
        let mut svg = layout::backends::svg::SVGWriter::new();
        visual.do_it(false, false, false, &mut svg);
        Ok(svg.finalize())
    })
    .map_err(|_| failed("layout-rs stopped on this graph".into()))?
    .map_err(failed)?;
    with_title(&drawn, graph).ok_or_else(|| failed("layout-rs wrote no <svg> header".into()))
}

/// Moves the drawing down to make room for the title and notes (by widening the view
/// box upwards) and paints a white background.
fn with_title(svg: &str, graph: &MetaGraph) -> Option<String> {
    let start = svg.find("<svg ")?;
    let end = start + svg[start..].find('>')?;
    let header = &svg[start..end];
    let number = |name: &str| -> Option<f64> {
        let at = header.find(&format!("{name}=\""))? + name.len() + 2;
        header[at..].split('"').next()?.parse().ok()
    };
    let (width, height) = (number("width")?, number("height")?);
    let lines = 1 + graph.notes.len();
    let top = 14.0 + 22.0 * lines as f64;
    let (width, full) = (width.max(640.0), height + top);
    let mut out = String::with_capacity(svg.len() + 1024);
    out.push_str(&svg[..start]);
    out.push_str(&format!(
        "<svg width=\"{width}\" height=\"{full}\" viewBox=\"0 {} {width} {full}\" \
         xmlns=\"http://www.w3.org/2000/svg\">",
        -top
    ));
    out.push_str(&format!(
        "<rect x=\"0\" y=\"{}\" width=\"{width}\" height=\"{full}\" fill=\"white\"/>",
        -top
    ));
    let mut y = -top + 26.0;
    out.push_str(&format!(
        "<text x=\"12\" y=\"{y}\" font-family=\"sans-serif\" font-size=\"18\">{}</text>",
        escape(&graph.title)
    ));
    for note in &graph.notes {
        y += 22.0;
        out.push_str(&format!(
            "<text x=\"12\" y=\"{y}\" font-family=\"sans-serif\" font-size=\"13\" \
             fill=\"#444\">{}</text>",
            escape(note)
        ));
    }
    out.push_str(&svg[end + 1..]);
    Some(out)
}

/// Writes `graph` to `path` (atomically) in the format its extension names: `.svg`
/// ([`to_svg`]), `.dot` or `.gv` ([`to_dot`] with the title), `.json` (the structure).
pub fn write_graph(graph: &MetaGraph, path: &Path) -> Result<()> {
    let text = match path.extension().and_then(|e| e.to_str()) {
        Some("svg") => to_svg(graph)?,
        Some("dot" | "gv") => to_dot(graph, true),
        Some("json") => serde_json::to_string_pretty(graph).expect("graphs serialise"),
        _ => {
            return Err(MamlError::InvalidHyperparameter {
                name: "graph file",
                value: path.display().to_string(),
                reason: "must end in .svg, .dot or .json",
            });
        }
    };
    write_atomic(path, text.as_bytes())
}
