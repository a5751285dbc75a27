//! Hyperparameter overrides: the reference config file and `--set` scoping.

use std::path::Path;

use aisle_models::ModelConfig;
use aisle_train::hyper::{
    file_overrides, model_configs, parse_overrides, seq_config, seq_keys, Overrides,
};
use aisle_train::Kind;

#[test]
fn the_reference_model_config_equals_the_defaults() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config/models.toml");
    let o = file_overrides(&path).unwrap();
    let models: Vec<String> = aisle_models::MODEL_NAMES
        .iter()
        .map(|s| s.to_string())
        .collect();
    let classical: Overrides = o
        .iter()
        .filter(|(m, _, _)| {
            !m.as_deref()
                .and_then(Kind::parse)
                .is_some_and(|k| matches!(k, Kind::Sequence(_)))
        })
        .cloned()
        .collect();
    let from_file = model_configs(&models, &classical).unwrap();
    for sm in aisle_seq::Arch::ALL.map(|a| a.name()) {
        let scoped: Overrides = o
            .iter()
            .filter(|(m, _, _)| m.as_deref() == Some(sm))
            .cloned()
            .collect();
        let (arch, cfg) = seq_config(sm, &scoped, None).unwrap();
        assert_eq!(
            cfg,
            aisle_seq::SeqConfig::for_arch(arch),
            "[{sm}] in config/models.toml"
        );
        for k in seq_keys() {
            assert!(scoped.iter().any(|(_, ok, _)| ok == &k), "{sm}.{k} missing");
        }
    }
    for (m, c) in models.iter().zip(&from_file) {
        let d = ModelConfig::default_for(m).unwrap();
        assert_eq!(
            &d, c,
            "config/models.toml disagrees with the defaults of {m}"
        );
        // Every key is documented in the file.
        for k in d.keys() {
            assert!(
                o.iter()
                    .any(|(om, ok, _)| om.as_deref() == Some(m.as_str()) && ok == &k),
                "{m}.{k} missing"
            );
        }
    }
}

#[test]
fn overrides_parse_and_scope() {
    let o = parse_overrides(&["factors=8".into(), "als.reg=0.5".into()]).unwrap();
    let c = model_configs(&["als".into(), "bpr".into()], &o).unwrap();
    assert_eq!(c[0].keys().len(), 6);
    let v = serde_json::to_value(&c[0]).unwrap();
    assert_eq!(
        (v["factors"].as_u64(), v["reg"].as_f64()),
        (Some(8), Some(0.5))
    );
    let v = serde_json::to_value(&c[1]).unwrap();
    assert_eq!(v["factors"].as_u64(), Some(8));
    assert!(parse_overrides(&["novalue".into()]).is_err());
    assert!(model_configs(
        &["pop".into()],
        &parse_overrides(&["factors=8".into()]).unwrap()
    )
    .is_err());
}
