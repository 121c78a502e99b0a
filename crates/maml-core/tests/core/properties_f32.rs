//! Property tests in f32 (ndarray).

use crate::props;

use burn_ndarray::NdArray;
use proptest::prelude::*;

type B = NdArray<f32>;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn autodiff_matches_closed_form(c in props::case()) {
        props::autodiff_matches_closed_form::<B>(&c, 5e-4)?;
    }

    #[test]
    fn batched_equals_per_task(c in props::case()) {
        props::batched_equals_per_task::<B>(&c, 1e-4)?;
    }

    #[test]
    fn orders_agree_without_inner_steps(c in props::case()) {
        props::orders_agree_without_inner_steps::<B>(&c)?;
    }
}
