//! Property tests in f64 (ndarray), including finite differences.

// Its own binary: Burn fixes one float type per device type and process, and the
// `data` binary runs ndarray in f32.
#[path = "data/props.rs"]
mod props;

use burn_ndarray::NdArray;
use maml_core::Order;
use maml_core::data::LinearWeights;
use proptest::prelude::*;

type B = NdArray<f64>;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn autodiff_matches_closed_form(c in props::case()) {
        props::autodiff_matches_closed_form::<B>(&c, 1e-9)?;
    }

    #[test]
    fn batched_equals_per_task(c in props::case()) {
        props::batched_equals_per_task::<B>(&c, 1e-10)?;
    }

    #[test]
    fn orders_differ_by_the_support_hessian(c in props::case()) {
        props::orders_differ_by_the_support_hessian::<B>(&c, 1e-9)?;
    }

    #[test]
    fn hand_derived_matches_closed_form(c in props::case()) {
        props::hand_derived_matches_closed_form::<B>(&c, 1e-9)?;
    }

    /// Second order = central finite differences of the meta-loss (a quadratic in the
    /// initial weights, so the difference is exact up to rounding, ~1e-12 with h = 1e-3).
    #[test]
    fn second_order_matches_finite_differences(c in props::case()) {
        let config = c.config.clone().with_order(Order::Second);
        let g = props::auto::<B>(&c, &config).meta_grad;
        let theta: Vec<f64> = c.init.weight_flat().into_iter().chain(c.init.bias.clone()).collect();
        let d_w = c.init.d_in() * c.init.d_out();
        let h = 1e-3;
        let loss = |v: &[f64]| {
            let init = LinearWeights::from_flat(&v[..d_w], &v[d_w..], c.init.d_in());
            props::auto::<B>(&props::Case { init, ..c.clone() }, &config).meta_loss
        };
        let fd: Vec<f64> = (0..theta.len()).map(|i| {
            let (mut p, mut m) = (theta.clone(), theta.clone());
            p[i] += h;
            m[i] -= h;
            (loss(&p) - loss(&m)) / (2.0 * h)
        }).collect();
        let fd = LinearWeights::from_flat(&fd[..d_w], &fd[d_w..], c.init.d_in());
        prop_assert!(props::rel(&g, &fd) <= 1e-6, "{:?} vs {:?}", g, fd);
    }
}
