//! `maml graph PROBLEM --out FILE.svg|.dot|.json`: the computation graph of one meta step
//! of a problem file, for its order or `--order`, with the trace's numbers (`--values`).

use std::path::PathBuf;

use burn::prelude::Backend;
use clap::Args;
use maml_backends::dispatch_with;
use maml_burn::backend::BackendJob;
use maml_burn::maml_core::Order;
use maml_burn::maml_data::graph::render::write_graph;
use maml_burn::maml_data::graph::values::write_values;
use maml_burn::maml_data::graph::{GraphOptions, MetaGraph, meta_graph};
use maml_burn::maml_data::problem::Problem;

use crate::error::CliError;
use crate::{BackendArgs, parse};

/// `maml graph` arguments.
#[derive(Debug, Args)]
pub struct GraphArgs {
    /// The problem file (any version; see docs/problem-schema.md).
    pub problem: PathBuf,
    /// The picture: FILE.svg (drawn in pure Rust), FILE.dot (Graphviz) or FILE.json (the
    /// nodes and edges).
    #[arg(long)]
    pub out: PathBuf,
    /// first or second [default: the problem's].
    #[arg(long, value_parser = parse::<Order>)]
    pub order: Option<Order>,
    /// Write each node's number from one meta step (the initial and fast weights, the
    /// losses, the meta-gradient on the backward edges).
    #[arg(long)]
    pub values: bool,
    /// Inner steps drawn one by one (at least 2); more are folded into one node.
    #[arg(long, default_value_t = 3)]
    pub max_steps: usize,
    #[allow(missing_docs)] // a flattened group: its fields document themselves
    #[command(flatten)]
    pub backend: BackendArgs,
}

/// The values of one meta step, on the chosen backend.
struct Values<'a> {
    graph: &'a mut MetaGraph,
    problem: &'a Problem,
}

impl BackendJob for Values<'_> {
    type Output = ();
    type Error = CliError;
    fn run<B: Backend>(self, device: &B::Device) -> Result<(), CliError> {
        Ok(write_values::<B>(self.graph, self.problem, device)?)
    }
}

/// `maml graph`.
pub fn graph(args: GraphArgs) -> Result<(), CliError> {
    let extension = args.out.extension().and_then(|e| e.to_str());
    if !matches!(extension, Some("svg" | "dot" | "gv" | "json")) {
        return Err(CliError::Usage(format!(
            "invalid --out {}: expected a file ending in .svg, .dot or .json",
            args.out.display()
        )));
    }
    let problem = Problem::load(&args.problem)?;
    let options = GraphOptions {
        order: args.order,
        max_steps: args.max_steps,
    };
    let mut graph = meta_graph(&problem, &options)?;
    if args.values {
        let job = Values {
            graph: &mut graph,
            problem: &problem,
        };
        let b = args.backend;
        dispatch_with(b.backend, b.precision, b.threads, job)?;
    }
    write_graph(&graph, &args.out)?;
    eprintln!(
        "wrote {} ({} nodes, {} edges)",
        args.out.display(),
        graph.nodes.len(),
        graph.edges.len()
    );
    Ok(())
}
