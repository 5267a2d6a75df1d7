-- |EF error| per study × labeller against the truth: study_id, labeller, split, ef_pct, truth_ef_pct, ef_error_pct, not_computable, no_volumes.
-- The preferred rows of `label_quality` (so `truth` and `volumes` may be replaced), plus every
-- study of `truth` that a labeller gave no volumes for (no_volumes; with a replaced `volumes`,
-- every study of `truth` the replacement lacks). A study whose EF cannot be computed (no
-- volumes, or EDV 0) counts as an error of 100 (docs/science.md §1). `cinestream evaluate`
-- replaces this view with its own per-study errors, so its statistics come from the same
-- `ef_error_stats`.
-- @example cinestream sql --data ./data "SELECT labeller, count(*) AS studies, sum(CASE WHEN no_volumes THEN 1 ELSE 0 END) AS unlabelled FROM ef_errors GROUP BY labeller ORDER BY labeller"
-- @empty no study has both truth volumes (the `truth` view: `ingest --truth`, or --view/--table truth=…) and a labeller's volumes (`volumes`)
WITH q AS (
    SELECT study_id, labeller, split, ef_pct, truth_ef_pct, ef_error_pct
    FROM label_quality
    WHERE preferred
),
labellers AS (SELECT DISTINCT labeller FROM q),
unlabelled AS (
    SELECT t.study_id, l.labeller, COALESCE(s.split, kaggle_split(t.study_id)) AS split,
           100 * (t.diastole_ml - t.systole_ml) / t.diastole_ml AS truth_ef_pct
    FROM truth t
    CROSS JOIN labellers l
    LEFT JOIN studies s ON s.study_id = t.study_id
    WHERE t.diastole_ml IS NOT NULL AND t.systole_ml IS NOT NULL
      AND NOT EXISTS (SELECT 1 FROM q WHERE q.labeller = l.labeller
                      AND (q.study_id = t.study_id OR CAST(kaggle_id(q.study_id) AS VARCHAR) = t.study_id))
)
SELECT study_id, labeller, split, ef_pct, truth_ef_pct, ef_error_pct, ef_pct IS NULL AS not_computable, false AS no_volumes FROM q
UNION ALL
SELECT study_id, labeller, split, CAST(NULL AS DOUBLE) AS ef_pct, truth_ef_pct, CAST(100 AS DOUBLE) AS ef_error_pct, true AS not_computable, true AS no_volumes FROM unlabelled
