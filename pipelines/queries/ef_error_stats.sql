-- |EF error| statistics per labeller: studies, not_computable, mean, sd, median, q1, q3, iqr (the paper's Table II).
-- Over the preferred rows of `label_quality`, plus every ingested study with truth that the
-- labeller gave no volumes for. A study whose EF cannot be computed counts as an error of 100.
-- sd is the sample standard deviation; quartiles interpolate linearly (R's default, type 7).
-- @param split text = NULL  only this split (NULL: every split)
-- @example cinestream sql --data ./data ef_error_stats --param split=test
WITH q AS (
    SELECT study_id, labeller, ef_pct, ef_error_pct
    FROM label_quality
    WHERE preferred AND (${split} IS NULL OR split = ${split})
),
labellers AS (SELECT DISTINCT labeller FROM q),
unlabelled AS (
    SELECT s.study_id, l.labeller
    FROM studies s CROSS JOIN labellers l
    WHERE s.truth_edv_ml IS NOT NULL AND s.truth_esv_ml IS NOT NULL
      AND (${split} IS NULL OR s.split = ${split})
      AND NOT EXISTS (SELECT 1 FROM q WHERE q.study_id = s.study_id AND q.labeller = l.labeller)
),
errors AS (
    SELECT labeller, ef_error_pct, ef_pct IS NULL AS not_computable FROM q
    UNION ALL
    SELECT labeller, CAST(100 AS DOUBLE) AS ef_error_pct, true AS not_computable FROM unlabelled
)
SELECT labeller,
       COUNT(*) AS studies,
       SUM(CASE WHEN not_computable THEN 1 ELSE 0 END) AS not_computable,
       AVG(ef_error_pct) AS mean,
       STDDEV(ef_error_pct) AS sd,
       MEDIAN(ef_error_pct) AS median,
       percentile_cont(0.25) WITHIN GROUP (ORDER BY ef_error_pct) AS q1,
       percentile_cont(0.75) WITHIN GROUP (ORDER BY ef_error_pct) AS q3,
       percentile_cont(0.75) WITHIN GROUP (ORDER BY ef_error_pct)
         - percentile_cont(0.25) WITHIN GROUP (ORDER BY ef_error_pct) AS iqr
FROM errors
GROUP BY labeller
ORDER BY labeller
