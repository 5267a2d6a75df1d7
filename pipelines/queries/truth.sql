-- Truth volumes per study: study_id, systole_ml (ESV), diastole_ml (EDV).
-- By default the studies table's truth columns (from `ingest --truth`). Replace it with any
-- other source, e.g. the Kaggle CSVs: --view truth="SELECT * FROM kaggle_truth".
-- @example cinestream sql --data ./data "SELECT count(*) AS studies_with_truth FROM truth"
SELECT study_id, truth_esv_ml AS systole_ml, truth_edv_ml AS diastole_ml
FROM studies
WHERE truth_esv_ml IS NOT NULL AND truth_edv_ml IS NOT NULL
