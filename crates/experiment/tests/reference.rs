//! Each estimator against figures computed once with scipy 1.x and
//! statsmodels 0.14 (the script is in the comments beside each value).

use aisle_experiment::stats::{self, Msprt};

fn close(a: f64, b: f64, tol: f64) {
    assert!(
        (a - b).abs() <= tol * b.abs().max(1e-300),
        "{a} differs from the reference {b}"
    );
}

#[test]
fn normal_distribution_matches_scipy() {
    // norm.cdf(1.3), norm.ppf(0.975), norm.ppf(0.8)
    close(stats::normal_cdf(1.3), 0.903_199_515_414_389_7, 1e-10);
    close(stats::normal_quantile(0.975), 1.959_963_984_540_054, 1e-9);
    close(stats::normal_quantile(0.8), 0.841_621_233_572_914_3, 1e-9);
    close(stats::Z95, stats::normal_quantile(0.975), 1e-9);
}

#[test]
fn chi_square_sample_ratio_test_matches_scipy() {
    // chisquare([5100, 4900]) -> (4.0, 0.04550026389635857)
    let (s, p) = stats::chi_square_gof(&[5100, 4900], &[50.0, 50.0]);
    close(s, 4.0, 1e-12);
    close(p, 0.045_500_263_896_358_57, 1e-9);
    // chisquare([3400, 3300, 3300]) -> (2.0, 0.36787944117144245)
    let (s, p) = stats::chi_square_gof(&[3400, 3300, 3300], &[1.0, 1.0, 1.0]);
    close(s, 2.0, 1e-12);
    close(p, 0.367_879_441_171_442_45, 1e-9);
    // chisquare([2300, 7700], [2000, 8000]) -> (56.25, 6.381783345821795e-14)
    let (s, p) = stats::chi_square_gof(&[2300, 7700], &[20.0, 80.0]);
    close(s, 56.25, 1e-12);
    close(p, 6.381_783_345_821_795e-14, 1e-6);
    assert_eq!(
        stats::chi_square_gof(&[1000, 1000], &[50.0, 50.0]),
        (0.0, 1.0)
    );
}

#[test]
fn binomial_test_matches_scipy() {
    // binomtest(60, 100, 0.5).pvalue, binomtest(530, 1000, .5), binomtest(3, 20, .5)
    close(
        stats::binomial_test_half(60, 100),
        0.056_887_933_640_980_89,
        1e-9,
    );
    close(
        stats::binomial_test_half(530, 1000),
        0.062_023_195_098_363_43,
        1e-9,
    );
    close(
        stats::binomial_test_half(3, 20),
        0.002_576_828_002_929_687_5,
        1e-9,
    );
    close(
        stats::binomial_test_half(17, 20),
        0.002_576_828_002_929_687_5,
        1e-9,
    );
    assert_eq!(stats::binomial_test_half(50, 100), 1.0);
}

#[test]
fn wilson_interval_matches_statsmodels() {
    // proportion_confint(60, 100, alpha=0.05, method='wilson')
    let w = stats::wilson(60, 100);
    close(w.value, 0.6, 1e-15);
    close(w.low, 0.502_002_586_791_061_8, 1e-9);
    close(w.high, 0.690_598_713_567_541_1, 1e-9);
}

#[test]
fn two_sample_z_test_matches_statsmodels() {
    // CompareMeans(DescrStatsW(b), DescrStatsW(a)).ztest_ind(usevar='unequal')
    // -> (0.4325302363363878, 0.6653560813224084)
    let a = [3., 0., 1., 5., 2., 0., 4., 1.];
    let b = [2., 1., 0., 6., 3., 1., 5., 0., 2., 4.];
    let (ma, mb) = (stats::mean(&a), stats::mean(&b));
    close(ma.value, 2.0, 1e-15);
    close(ma.unit_var(), 3.428_571_428_571_428_4, 1e-12);
    let l = stats::lift(mb, ma);
    close(l.diff, 0.4, 1e-12);
    close(l.p_value, 0.665_356_081_322_408_4, 1e-9);
}

#[test]
fn relative_lift_interval_is_the_delta_method() {
    // t, c as below; lift = mean(t)/mean(c) - 1 with
    // var = vt/mc^2 + mt^2 vc/mc^4 -> (1.0833333, -1.3149459, 3.4816126);
    // p from ztest_ind(usevar='unequal') -> 0.17273003405739573
    let t = [1., 0., 1., 1., 0., 1., 1., 0.];
    let c = [0., 0., 1., 0., 1., 0., 0., 0., 1., 0.];
    let l = stats::lift(stats::mean(&t), stats::mean(&c));
    close(l.lift, 1.083_333_333_333_333_5, 1e-12);
    close(l.low, -1.314_945_913_838_778_2, 1e-9);
    close(l.high, 3.481_612_580_505_445, 1e-9);
    close(l.p_value, 0.172_730_034_057_395_73, 1e-9);
}

#[test]
fn ratio_metric_gets_the_delta_method_variance() {
    // r = sum(y)/sum(x); var = (s_yy - 2 r s_xy + r^2 s_xx) / (n xbar^2)
    // with numpy.cov(ddof=1) -> 0.22580645161290322, 0.0020764010780480353
    let y = [1., 0., 2., 1., 0., 3.];
    let x = [5., 3., 8., 4., 2., 9.];
    let r = stats::ratio(&y, &x);
    close(r.value, 0.225_806_451_612_903_22, 1e-12);
    close(r.var, 0.002_076_401_078_048_035_3, 1e-9);
    let e = r.interval();
    close(e.low, 0.136_495_706_253_980_05, 1e-9);
    close(e.high, 0.315_117_196_971_826_4, 1e-9);
}

#[test]
fn cuped_matches_the_closed_form() {
    // theta = cov(x, y) / var(x) -> 1.1807228915662649; var(y - theta (x - xbar))
    // -> 0.4096385542168675 (from 4.2666666666666675)
    let y = [3., 0., 1., 5., 2., 0., 4., 1., 2., 6.];
    let x = [2., 0., 1., 4., 2., 1., 3., 0., 1., 5.];
    let (adj, theta) = stats::cuped(&y, &[&x]);
    close(theta[0], 1.180_722_891_566_264_9, 1e-12);
    close(adj[0], 2.881_927_710_843_373_6, 1e-12);
    close(adj[9], 2.339_759_036_144_579, 1e-12);
    close(stats::mean(&adj).unit_var(), 0.409_638_554_216_867_5, 1e-9);
    close(stats::mean(&adj).value, stats::mean(&y).value, 1e-12);
}

#[test]
fn msprt_p_value_is_one_over_the_mixture_likelihood_ratio() {
    // p = min(1, 1/Lambda), Lambda = sqrt(v/(v+t2)) exp(d^2 t2 / (2 v (v+t2))), tau = 0.02:
    // (0.01, 1e-5) -> 0.04873963365444986; (0.02, 5e-6) -> 6.26512361205517e-17;
    // (0.001, 2e-6) -> 1.0
    let mut m = Msprt::new(0.02);
    close(m.look(0.01, 1e-5), 0.048_739_633_654_449_86, 1e-9);
    let mut m2 = Msprt::new(0.02);
    close(m2.look(0.02, 5e-6), 6.265_123_612_055_17e-17, 1e-6);
    let mut m3 = Msprt::new(0.02);
    assert_eq!(m3.look(0.001, 2e-6), 1.0);
}

#[test]
fn msprt_p_value_never_rises_between_looks() {
    let mut m = Msprt::new(0.02);
    let first = m.look(0.01, 1e-5);
    let second = m.look(0.0, 1e-6);
    assert_eq!(
        second, first,
        "a later, null-looking day keeps the earlier minimum"
    );
}

#[test]
fn sample_size_is_the_textbook_formula() {
    // n = (z_.975 + z_.8)^2 (s_t^2 + s_c^2) / delta^2: p = .10 vs .11 (variances .09, .0979)
    // -> 14,749 per arm (14,748.05 rounded up).
    let n = stats::users_per_arm(0.01, 0.0979, 0.09).unwrap();
    assert_eq!(n, (7.848_879_734_349_088f64 * 0.1879 / 0.0001).ceil());
    assert_eq!(stats::users_per_arm(0.0, 1.0, 1.0), None);
}

#[test]
fn cuped_with_two_covariates_is_least_squares() {
    // statsmodels OLS(y, add_constant([x1, x2])).params[1:] ->
    // (1.0128055878928985, 0.5098952270081488); adjusted y[0], y[9] ->
    // 3.0006984866123396, 2.452386495925495
    let y = [3., 0., 1., 5., 2., 0., 4., 1., 2., 6.];
    let x1 = [2., 0., 1., 4., 2., 1., 3., 0., 1., 5.];
    let x2 = [1., 1., 0., 2., 0., 0., 3., 1., 2., 2.];
    let (adj, theta) = stats::cuped(&y, &[&x1, &x2]);
    close(theta[0], 1.012_805_587_892_898_5, 1e-10);
    close(theta[1], 0.509_895_227_008_148_8, 1e-10);
    close(adj[0], 3.000_698_486_612_339_6, 1e-10);
    close(adj[9], 2.452_386_495_925_495, 1e-10);
}

#[test]
fn cuped_ignores_a_covariate_without_variance() {
    let y = [3., 0., 1., 5., 2.];
    let x = [2., 0., 1., 4., 2.];
    let flat = [7.; 5];
    let (_, one) = stats::cuped(&y, &[&x]);
    let (_, two) = stats::cuped(&y, &[&x, &flat]);
    close(two[0], one[0], 1e-12);
    assert_eq!(two[1], 0.0);
}
