//! Training: the trainer of any model ([`any_model::Trainer`]: meta steps with a
//! divergence guard, checkpoints through Burn's recorders, evaluation) and the pieces of
//! a meta step it is made of ([`guard`]), and MAML++'s schedules by meta step
//! ([`schedule`]).

pub mod any_model;
pub mod guard;
pub mod schedule;
