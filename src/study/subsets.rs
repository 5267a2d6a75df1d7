//! A study's training subsets, drawn from the labelled images of its training volunteers:
//!
//! - `full`: every image;
//! - `v<k>`: every image of the first k volunteers of one seeded volunteer order, so v1 ⊂ v3 ⊂ v7;
//! - `r<k>`: the first |v<k>| images of one seeded permutation of all images, so the r-subsets
//!   are prefixes of one permutation and r1 ⊂ r3 ⊂ r7;
//! - `esed`: the ED and ES frames (all slices) of every volunteer, by the `volumes` rule;
//! - `r_esed`: the same permutation's first |esed| images.
//!
//! Or they are read from a membership file shaped like the authors' `image_subsets.tsv` (file,
//! Id, frame, slice, then TRUE/FALSE per subset), to rerun a published split. Either way they are
//! recorded in `study_subsets` (one row per image × subset, with the ranks that drew it) and
//! written as `subsets.tsv` in the authors' shape.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use arrow::array::{ArrayRef, AsArray, BooleanArray, Int32Array, Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Int32Type, Int64Type};

use super::config::{StudyConfig, SubsetKind};
use crate::query::Session;
use crate::query::read::{self, ReadError, quote};

/// One labelled training image and its place in the seeded orders.
#[derive(Debug, Clone, PartialEq)]
pub struct PoolImage {
    pub study_id: String,
    pub slice_index: i32,
    pub frame_index: i32,
    /// The person: the source study (the halves of a split repeated stack are one volunteer).
    pub volunteer: String,
    /// 1-based rank in the seed's image permutation.
    pub image_rank: i64,
    /// 1-based rank of the volunteer in the seed's volunteer order.
    pub volunteer_rank: i64,
    /// An ED or ES frame of its study (the `esed_frames` rule on the truth labeller's masks).
    pub esed: bool,
}

/// Images of each subset, as indices into the pool (in pool order).
pub type Drawn = BTreeMap<String, Vec<usize>>;

const CONTEXT: &str = "the study's training pool";

/// The training pool: the truth labeller's images of the training studies, with their ranks.
pub async fn pool(session: &Session, cfg: &StudyConfig) -> Result<Vec<PoolImage>, ReadError> {
    let labeller = quote(&cfg.labeller);
    let sql = format!(
        "WITH pool AS (
            SELECT l.study_id, l.slice_index, l.frame_index, COALESCE(s.source_study_id, l.study_id) AS volunteer,
                   CAST(l.study_id AS VARCHAR) || '/' || CAST(l.slice_index AS VARCHAR) || '/' || CAST(l.frame_index AS VARCHAR) AS image_key
            FROM labels l JOIN studies s ON s.study_id = l.study_id
            WHERE l.labeller = {labeller} AND l.study_id IN (SELECT study_id FROM studies WHERE {train})
        ), esed AS (
            SELECT DISTINCT study_id, frame_index FROM esed_frames WHERE labeller = {labeller}
        )
        SELECT p.study_id, p.slice_index, p.frame_index, p.volunteer,
               ROW_NUMBER() OVER (ORDER BY shuffle_key({seed}, p.image_key), p.image_key) AS image_rank,
               DENSE_RANK() OVER (ORDER BY shuffle_key({seed}, p.volunteer), p.volunteer) AS volunteer_rank,
               e.study_id IS NOT NULL AS esed
        FROM pool p LEFT JOIN esed e ON e.study_id = p.study_id AND e.frame_index = p.frame_index
        ORDER BY p.study_id, p.slice_index, p.frame_index",
        train = cfg.train,
        seed = cfg.seed as i64,
    );
    let mut out = Vec::new();
    for b in read::collect(session, &sql, CONTEXT).await? {
        let text = |c: &str| read::column(&b, c, &DataType::Utf8, CONTEXT);
        let int = |c: &str, t: &DataType| read::column(&b, c, t, CONTEXT);
        let (ids, vols) = (text("study_id")?, text("volunteer")?);
        let (slices, frames) = (int("slice_index", &DataType::Int32)?, int("frame_index", &DataType::Int32)?);
        let (ranks, vranks) = (int("image_rank", &DataType::Int64)?, int("volunteer_rank", &DataType::Int64)?);
        let esed = read::column(&b, "esed", &DataType::Boolean, CONTEXT)?;
        let (ids, vols, esed) = (ids.as_string::<i32>(), vols.as_string::<i32>(), esed.as_boolean());
        let (slices, frames) = (slices.as_primitive::<Int32Type>(), frames.as_primitive::<Int32Type>());
        let (ranks, vranks) = (ranks.as_primitive::<Int64Type>(), vranks.as_primitive::<Int64Type>());
        for r in 0..b.num_rows() {
            out.push(PoolImage {
                study_id: ids.value(r).to_string(),
                slice_index: slices.value(r),
                frame_index: frames.value(r),
                volunteer: vols.value(r).to_string(),
                image_rank: ranks.value(r),
                volunteer_rank: vranks.value(r),
                esed: esed.value(r),
            });
        }
    }
    Ok(out)
}

/// Draws every subset of `names` from the pool (pure).
pub fn draw(pool: &[PoolImage], names: &[String]) -> Result<Drawn, String> {
    let volunteers = pool.iter().map(|p| p.volunteer_rank).max().unwrap_or(0) as usize;
    let by_rank = {
        let mut idx: Vec<usize> = (0..pool.len()).collect();
        idx.sort_by_key(|i| pool[*i].image_rank);
        idx
    };
    let first = |n: usize| {
        let mut v: Vec<usize> = by_rank[..n.min(by_rank.len())].to_vec();
        v.sort_unstable();
        v
    };
    let of_volunteers = |k: usize| -> Result<Vec<usize>, String> {
        if k > volunteers {
            return Err(format!("subset v{k}/r{k}: the training set has only {volunteers} volunteers"));
        }
        Ok((0..pool.len()).filter(|i| pool[*i].volunteer_rank as usize <= k).collect())
    };
    let esed: Vec<usize> = (0..pool.len()).filter(|i| pool[*i].esed).collect();
    let mut out = Drawn::new();
    for name in names {
        let images = match SubsetKind::parse(name).ok_or_else(|| format!("unknown subset `{name}`"))? {
            SubsetKind::Full => (0..pool.len()).collect(),
            SubsetKind::Volunteers(k) => of_volunteers(k)?,
            SubsetKind::Random(k) => first(of_volunteers(k)?.len()),
            SubsetKind::Esed => esed.clone(),
            SubsetKind::RandomEsed => first(esed.len()),
        };
        if images.is_empty() {
            return Err(format!("subset `{name}` has no images (no ED/ES frames found? check the `volumes` of the truth labeller)"));
        }
        out.insert(name.clone(), images);
    }
    Ok(out)
}

/// Reads the subsets from a membership file shaped like the authors' `image_subsets.tsv`:
/// `Id` is the study (or its volunteer), `slice` and `frame` the indices. Every image it names
/// must be in the pool; every subset asked for but `full` must be one of its columns.
pub fn from_membership(pool: &[PoolImage], text: &str, names: &[String], origin: &str) -> Result<Drawn, String> {
    let mut lines = text.lines().filter(|l| !l.trim().is_empty());
    let header: Vec<&str> = lines.next().ok_or_else(|| format!("{origin}: the file is empty"))?.split('\t').map(str::trim).collect();
    let col = |n: &str| {
        header.iter().position(|h| *h == n).ok_or_else(|| format!("{origin}: no `{n}` column (the authors' image_subsets.tsv has file, Id, frame, slice, then one TRUE/FALSE column per subset)"))
    };
    let (id, frame, slice) = (col("Id")?, col("frame")?, col("slice")?);
    let wanted: Vec<(&String, Option<usize>)> =
        names.iter().map(|n| if n == "full" { Ok((n, None)) } else { col(n).map(|c| (n, Some(c))) }).collect::<Result<_, _>>()?;
    let index: HashMap<(&str, i32, i32), usize> = pool
        .iter()
        .enumerate()
        .flat_map(|(i, p)| {
            [((p.study_id.as_str(), p.slice_index, p.frame_index), i), ((p.volunteer.as_str(), p.slice_index, p.frame_index), i)]
        })
        .collect();
    let mut out: Drawn = names.iter().map(|n| (n.clone(), Vec::new())).collect();
    let mut missing = Vec::new();
    let mut rows = 0usize;
    for (line_no, line) in lines.enumerate() {
        let v: Vec<&str> = line.split('\t').map(str::trim).collect();
        let get = |c: usize| v.get(c).copied().unwrap_or("");
        let number = |c: usize| get(c).parse::<i32>().map_err(|_| format!("{origin} line {}: `{}` is not an index", line_no + 2, get(c)));
        let key = (get(id), number(slice)?, number(frame)?);
        rows += 1;
        let Some(&i) = index.get(&key) else {
            missing.push(format!("{} slice {} frame {}", key.0, key.1, key.2));
            continue;
        };
        for (name, c) in &wanted {
            let member = match c {
                None => true,
                Some(c) => match get(*c).to_ascii_uppercase().as_str() {
                    "TRUE" | "1" => true,
                    "FALSE" | "0" => false,
                    other => return Err(format!("{origin} line {}: `{other}` in column {name} is not TRUE or FALSE", line_no + 2)),
                },
            };
            if member {
                out.get_mut(*name).expect("every name has a list").push(i);
            }
        }
    }
    if !missing.is_empty() {
        return Err(format!(
            "{origin} names {} of its {rows} images that are not labelled training images of the data (e.g. {}); check study.train, study.labeller and that slice/frame count from 0 as `frames` does",
            missing.len(),
            missing.iter().take(3).cloned().collect::<Vec<_>>().join("; ")
        ));
    }
    for (name, images) in &mut out {
        images.sort_unstable();
        if images.is_empty() {
            return Err(format!("{origin}: subset `{name}` has no images"));
        }
    }
    Ok(out)
}

/// The subsets in the authors' shape: file, Id, frame, slice, then TRUE/FALSE per subset (not
/// `full`), one row per pool image.
pub fn subsets_tsv(pool: &[PoolImage], drawn: &Drawn) -> String {
    let names: Vec<&String> = drawn.keys().filter(|n| n.as_str() != "full").collect();
    let members: Vec<BTreeSet<usize>> = names.iter().map(|n| drawn[*n].iter().copied().collect()).collect();
    let mut s = format!("file\tId\tframe\tslice{}\n", names.iter().map(|n| format!("\t{n}")).collect::<String>());
    for (i, p) in pool.iter().enumerate() {
        s.push_str(&format!(
            "{}_slice{:03}_frame{:03}\t{}\t{}\t{}",
            p.study_id, p.slice_index, p.frame_index, p.study_id, p.frame_index, p.slice_index
        ));
        for m in &members {
            s.push_str(if m.contains(&i) { "\tTRUE" } else { "\tFALSE" });
        }
        s.push('\n');
    }
    s
}

/// The `study_subsets` rows of a study: one per image × subset.
pub fn batch(study: &str, pool: &[PoolImage], drawn: &Drawn) -> RecordBatch {
    let rows: Vec<(&str, &PoolImage)> = drawn.iter().flat_map(|(n, idx)| idx.iter().map(move |i| (n.as_str(), &pool[*i]))).collect();
    let columns: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from(vec![study; rows.len()])),
        Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.0))),
        Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.1.study_id.as_str()))),
        Arc::new(Int32Array::from_iter_values(rows.iter().map(|r| r.1.slice_index))),
        Arc::new(Int32Array::from_iter_values(rows.iter().map(|r| r.1.frame_index))),
        Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.1.volunteer.as_str()))),
        Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.1.image_rank))),
        Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.1.volunteer_rank))),
        Arc::new(BooleanArray::from_iter(rows.iter().map(|r| Some(r.1.esed)))),
    ];
    RecordBatch::try_new(crate::tables::schemas::study_subsets(), columns).expect("columns match the schema")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 4 volunteers × 2 slices × 5 frames; ED/ES at frames 0 and 2.
    fn pool() -> Vec<PoolImage> {
        let mut v = Vec::new();
        for vol in 0..4 {
            for s in 0..2 {
                for f in 0..5 {
                    v.push(PoolImage {
                        study_id: format!("{}", 10 + vol),
                        slice_index: s,
                        frame_index: f,
                        volunteer: format!("{}", 10 + vol),
                        image_rank: 0,
                        volunteer_rank: [3, 1, 4, 2][vol as usize],
                        esed: f == 0 || f == 2,
                    });
                }
            }
        }
        // A permutation of the 40 images.
        for (i, p) in v.iter_mut().enumerate() {
            p.image_rank = ((i * 17) % 40) as i64 + 1;
        }
        v
    }

    fn names(n: &[&str]) -> Vec<String> {
        n.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn subsets_nest_and_share_one_permutation() {
        let p = pool();
        let d = draw(&p, &names(&["full", "v3", "v1", "r3", "r1", "esed", "r_esed"])).unwrap();
        let set = |n: &str| d[n].iter().copied().collect::<BTreeSet<usize>>();
        assert_eq!(d["full"].len(), 40);
        assert_eq!((d["v3"].len(), d["v1"].len(), d["r3"].len(), d["r1"].len()), (30, 10, 30, 10));
        assert!(set("v1").is_subset(&set("v3")) && set("r1").is_subset(&set("r3")));
        assert!(d["v1"].iter().all(|i| p[*i].volunteer == "11"), "volunteer rank 1 is study 11");
        assert_eq!((d["esed"].len(), d["r_esed"].len()), (16, 16));
        // Every r-subset is a prefix of the one permutation.
        for n in ["r1", "r3", "r_esed"] {
            let max = d[n].iter().map(|i| p[*i].image_rank).max().unwrap();
            assert_eq!(max as usize, d[n].len(), "{n}");
        }
        assert!(draw(&p, &names(&["v5"])).unwrap_err().contains("only 4 volunteers"));
    }

    #[test]
    fn a_membership_file_is_read_and_checked() {
        let p = pool();
        let text =
            "file\tId\tframe\tslice\tv1\tesed\n11_a\t11\t0\t0\tTRUE\tTRUE\n11_b\t11\t1\t0\tTRUE\tFALSE\n12_a\t12\t2\t1\tFALSE\tTRUE\n";
        let d = from_membership(&p, text, &names(&["full", "v1", "esed"]), "m.tsv").unwrap();
        assert_eq!((d["full"].len(), d["v1"].len(), d["esed"].len()), (3, 2, 2));
        let err = from_membership(&p, text, &names(&["r3"]), "m.tsv").unwrap_err();
        assert!(err.contains("no `r3` column"), "{err}");
        let bad = format!("{text}99_x\t99\t0\t0\tTRUE\tTRUE\n");
        let err = from_membership(&p, &bad, &names(&["v1"]), "m.tsv").unwrap_err();
        assert!(err.contains("1 of its 4 images") && err.contains("99 slice 0 frame 0"), "{err}");
        // What we write reads back as the same subsets.
        let drawn = draw(&p, &names(&["full", "v3", "r3", "esed"])).unwrap();
        assert_eq!(from_membership(&p, &subsets_tsv(&p, &drawn), &names(&["full", "v3", "r3", "esed"]), "ours").unwrap(), drawn);
    }
}
