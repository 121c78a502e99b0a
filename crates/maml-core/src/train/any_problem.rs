//! A problem file of any version, told apart by its fields: version 1 (a linear
//! model's `weight` and `bias`), version 2 (`model.layers` and `activation`), version 3
//! (`model.input` and a layer list).

use std::path::Path;

use burn::prelude::*;
use serde::{Deserialize, Serialize};

use crate::data::{Answer, Problem, read_text};
use crate::error::{MamlError, Result};
use crate::train::problems::{AnswerV2, ProblemV2, solve, solve_v2};
use crate::train::problems_v3::{AnswerV3, ProblemV3, solve_v3};

/// A problem file of either version.
#[derive(Debug, Clone, PartialEq)]
pub enum AnyProblem {
    /// Version 1: a linear model.
    V1(Problem),
    /// Version 2: an MLP, Meta-SGD, classification.
    V2(ProblemV2),
    /// Version 3: a layered model (conv nets, batch norm, pooling) on images.
    V3(ProblemV3),
}

/// The answer to a problem of either version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum AnyAnswer {
    /// Version 2 (`meta_grad.layers`).
    V2(AnswerV2),
    /// Version 1 (`meta_grad.weight`, `meta_grad.bias`).
    V1(Answer),
    /// Version 3 (`meta_grad.layers`, `{}` for layers without parameters).
    V3(AnswerV3),
}

impl AnyProblem {
    /// Parses and validates a problem of any version (version 2 has `model`, version 3
    /// a `model` with an `input` shape).
    pub fn from_json(text: &str, source_name: &str) -> Result<Self> {
        let value: serde_json::Value =
            serde_json::from_str(text).map_err(|e| MamlError::json(source_name, &e))?;
        if value.get("model").and_then(|m| m.get("input")).is_some() {
            let problem: ProblemV3 =
                serde_json::from_str(text).map_err(|e| MamlError::json(source_name, &e))?;
            problem.validate()?;
            Ok(Self::V3(problem))
        } else if value.get("model").is_some() {
            let problem: ProblemV2 =
                serde_json::from_str(text).map_err(|e| MamlError::json(source_name, &e))?;
            problem.validate()?;
            Ok(Self::V2(problem))
        } else {
            Problem::from_json(text, source_name).map(Self::V1)
        }
    }

    /// Reads a problem file of either version.
    pub fn load(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        Self::from_json(&read_text(path)?, &path.display().to_string())
    }

    /// Solves the problem on backend `B`.
    pub fn solve<B: Backend>(&self, device: &B::Device) -> Result<AnyAnswer> {
        match self {
            Self::V1(problem) => solve::<B>(problem, device).map(AnyAnswer::V1),
            Self::V2(problem) => solve_v2::<B>(problem, device).map(AnyAnswer::V2),
            Self::V3(problem) => solve_v3::<B>(problem, device).map(AnyAnswer::V3),
        }
    }
}
