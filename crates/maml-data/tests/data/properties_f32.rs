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
    fn orders_differ_by_the_support_hessian(c in props::case()) {
        props::orders_differ_by_the_support_hessian::<B>(&c, 1e-3)?;
    }

    #[test]
    fn hand_derived_matches_closed_form(c in props::case()) {
        props::hand_derived_matches_closed_form::<B>(&c, 5e-4)?;
    }
}
