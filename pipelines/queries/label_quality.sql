-- Volumes against truth per study × labeller: differences, relative differences, EF error and confidence.
-- Joins `volumes` (any table with study_id, labeller, edv_ml, esv_ml will do) with `truth` on the
-- study id, or else on the Kaggle id of a derived id (123_rot90, 123_a → 123). Only studies with
-- truth. confidence = max(|ESV − truth ESV| / truth ESV, |EDV − truth EDV| / truth EDV).
-- ef_error_pct = |EF − truth EF|, 100 when EF cannot be computed. `preferred` is false for a
-- study whose `<id>_rot90` variant has a row for the same labeller: the variant's row is the one
-- used (as the authors did). split: the studies table's, else by Kaggle id.
-- @example cinestream sql --data ./data "SELECT study_id, labeller, confidence, ef_error_pct FROM label_quality ORDER BY confidence DESC"
WITH v AS (
    SELECT CAST(study_id AS VARCHAR) AS study_id, CAST(labeller AS VARCHAR) AS labeller,
           CAST(edv_ml AS DOUBLE) AS edv_ml, CAST(esv_ml AS DOUBLE) AS esv_ml
    FROM volumes
),
rot90 AS (
    SELECT DISTINCT study_id AS rot90_id, labeller AS rot90_labeller FROM v WHERE ends_with(study_id, '_rot90')
),
matched AS (
    SELECT v.*,
           COALESCE(t.systole_ml, tk.systole_ml) AS truth_esv_ml,
           COALESCE(t.diastole_ml, tk.diastole_ml) AS truth_edv_ml,
           r.rot90_id IS NULL AS preferred
    FROM v
    LEFT JOIN truth t ON t.study_id = v.study_id
    LEFT JOIN truth tk ON tk.study_id = CAST(kaggle_id(v.study_id) AS VARCHAR)
    LEFT JOIN rot90 r ON r.rot90_id = v.study_id || '_rot90' AND r.rot90_labeller = v.labeller
),
diffs AS (
    SELECT m.*,
           CASE WHEN edv_ml > 0 THEN 100 * (edv_ml - esv_ml) / edv_ml END AS ef_pct,
           100 * (truth_edv_ml - truth_esv_ml) / truth_edv_ml AS truth_ef_pct,
           (edv_ml - truth_edv_ml) / truth_edv_ml AS edv_rel_diff,
           (esv_ml - truth_esv_ml) / truth_esv_ml AS esv_rel_diff
    FROM matched m
    WHERE truth_esv_ml IS NOT NULL AND truth_edv_ml IS NOT NULL
)
SELECT d.study_id, d.labeller, COALESCE(s.split, kaggle_split(d.study_id)) AS split,
       d.edv_ml, d.esv_ml, d.ef_pct, d.truth_edv_ml, d.truth_esv_ml, d.truth_ef_pct,
       d.edv_ml - d.truth_edv_ml AS edv_diff_ml,
       d.esv_ml - d.truth_esv_ml AS esv_diff_ml,
       d.edv_rel_diff, d.esv_rel_diff,
       COALESCE(ABS(d.ef_pct - d.truth_ef_pct), 100) AS ef_error_pct,
       CASE WHEN d.edv_rel_diff IS NULL OR d.esv_rel_diff IS NULL THEN NULL
            WHEN ABS(d.esv_rel_diff) >= ABS(d.edv_rel_diff) THEN ABS(d.esv_rel_diff)
            ELSE ABS(d.edv_rel_diff) END AS confidence,
       d.preferred
FROM diffs d
LEFT JOIN studies s ON s.study_id = d.study_id
