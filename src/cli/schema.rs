//! `cinestream schema`: a table's schema as the JSON kept in `schemas/`.

use anyhow::{Result, bail};

use cinestream::tables;

pub fn run(table: Option<&str>) -> Result<()> {
    let names: Vec<&str> = match table {
        Some(t) if tables::documented_schema(t).is_some() => vec![t],
        Some(t) => bail!("unknown table `{t}`; tables: {}", tables::DOCUMENTED.join(", ")),
        None => tables::DOCUMENTED.to_vec(),
    };
    for t in names {
        println!("{}", serde_json::to_string_pretty(&tables::schema_json(t).expect("known"))?);
    }
    Ok(())
}
