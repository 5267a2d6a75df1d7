-- |EF error| statistics per labeller: studies, not_computable, no_volumes, mean, sd, median, q1, q3, iqr (the paper's Table II).
-- Over `ef_errors` (one row per study × labeller; a study whose EF cannot be computed counts as
-- an error of 100; no_volumes of them had no volumes of the labeller at all — with a replaced
-- `volumes`, the studies of `truth` it lacks). sd is the sample standard deviation; quartiles interpolate linearly (R's
-- default, type 7). `cinestream evaluate` runs this same query over its own per-study errors.
-- @param split text = NULL  only this split (NULL: every split)
-- @example cinestream sql --data ./data ef_error_stats --param split=test
-- @empty no study has both truth volumes (the `truth` view: `ingest --truth`, or --view/--table truth=…) and a labeller's volumes (`volumes`), or none of the split asked for
SELECT labeller,
       COUNT(*) AS studies,
       SUM(CASE WHEN not_computable THEN 1 ELSE 0 END) AS not_computable,
       SUM(CASE WHEN no_volumes THEN 1 ELSE 0 END) AS no_volumes,
       AVG(ef_error_pct) AS mean,
       STDDEV(ef_error_pct) AS sd,
       MEDIAN(ef_error_pct) AS median,
       percentile_cont(0.25) WITHIN GROUP (ORDER BY ef_error_pct) AS q1,
       percentile_cont(0.75) WITHIN GROUP (ORDER BY ef_error_pct) AS q3,
       percentile_cont(0.75) WITHIN GROUP (ORDER BY ef_error_pct)
         - percentile_cont(0.25) WITHIN GROUP (ORDER BY ef_error_pct) AS iqr
FROM ef_errors
WHERE ${split} IS NULL OR split = ${split}
GROUP BY labeller
ORDER BY labeller
