//! A dataset's mask values → cinestream's classes (0 background, 1 LV, 2 MY, 3 RV), declared in
//! TOML like model contracts. The shipped maps (`pipelines/datasets/*.toml`) are built in;
//! `--class-map FILE` gives another.

use std::collections::BTreeMap;

use serde::Deserialize;

/// A class map file that cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("class map `{file}`: {message}")]
pub struct ClassMapError {
    pub file: String,
    pub message: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ClassMapFile {
    name: String,
    labels: BTreeMap<String, String>,
}

/// Mask value → our class.
#[derive(Debug, Clone, PartialEq)]
pub struct ClassMap {
    /// Its name (`acdc`, …) and where it came from, for messages.
    pub name: String,
    pub source: String,
    /// `ours[v]`: our class of the dataset's value `v`; `None` outside the map.
    ours: [Option<u8>; 256],
}

pub const SHIPPED: [(&str, &str); 3] = [
    ("acdc", include_str!("../../../pipelines/datasets/acdc.toml")),
    ("mnms", include_str!("../../../pipelines/datasets/mnms.toml")),
    ("ukbb", include_str!("../../../pipelines/datasets/ukbb.toml")),
];

impl ClassMap {
    /// Parses a class map; `source` names it in errors.
    pub fn parse(text: &str, source: &str) -> Result<ClassMap, ClassMapError> {
        let bad = |message: String| ClassMapError { file: source.to_string(), message };
        let f: ClassMapFile = toml::from_str(text).map_err(|e| bad(e.to_string()))?;
        let mut ours = [None; 256];
        for (value, class) in &f.labels {
            let v: u8 = value.trim().parse().map_err(|_| bad(format!("`{value}` is not a mask value (0–255)")))?;
            let c = match class.as_str() {
                "background" => 0,
                "lv" => 1,
                "my" => 2,
                "rv" => 3,
                other => return Err(bad(format!("class `{other}` of value {v} is none of background, lv, my, rv"))),
            };
            ours[v as usize] = Some(c);
        }
        if ours[0] != Some(0) {
            return Err(bad("value 0 must be `background`".into()));
        }
        Ok(ClassMap { name: f.name, source: source.to_string(), ours })
    }

    /// The shipped map of a dataset layout (`acdc`, `mnms`, `ukbb`).
    pub fn shipped(name: &str) -> ClassMap {
        let (_, text) = SHIPPED.iter().find(|(n, _)| *n == name).unwrap_or(&SHIPPED[2]);
        ClassMap::parse(text, &format!("pipelines/datasets/{name}.toml")).expect("shipped class maps parse")
    }

    /// Our class of a mask value; `None` when the value is outside the map (or not an integer).
    pub fn class_of(&self, value: f64) -> Option<u8> {
        if value.fract() != 0.0 || !(0.0..256.0).contains(&value) {
            return None;
        }
        self.ours[value as usize]
    }

    /// `0 background, 1 rv, …` for messages.
    pub fn describe(&self) -> String {
        const NAMES: [&str; 4] = ["background", "lv", "my", "rv"];
        let parts: Vec<String> =
            self.ours.iter().enumerate().filter_map(|(v, c)| c.map(|c| format!("{v} {}", NAMES[c as usize]))).collect();
        format!("{} ({}: {})", self.name, self.source, parts.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_maps_turn_dataset_values_into_ours() {
        let acdc = ClassMap::shipped("acdc");
        assert_eq!([0.0, 1.0, 2.0, 3.0].map(|v| acdc.class_of(v)), [Some(0), Some(3), Some(2), Some(1)]);
        let mnms = ClassMap::shipped("mnms");
        assert_eq!([1.0, 3.0].map(|v| mnms.class_of(v)), [Some(1), Some(3)]);
        assert_eq!((acdc.class_of(4.0), acdc.class_of(1.5), acdc.class_of(-1.0)), (None, None, None));
        assert!(acdc.describe().contains("1 rv"), "{}", acdc.describe());
        let err = ClassMap::parse("name = \"x\"\n[labels]\n0 = \"background\"\n1 = \"aorta\"\n", "x.toml").unwrap_err();
        assert!(err.to_string().contains("aorta"), "{err}");
        assert!(ClassMap::parse("name = \"x\"\n[labels]\n1 = \"lv\"\n", "x.toml").is_err(), "0 must be background");
    }
}
