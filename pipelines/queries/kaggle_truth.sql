-- The Kaggle truth CSVs as one truth table: study_id, systole_ml, diastole_ml.
-- Register train.csv and validate.csv (Id,Systole,Diastole) as `kaggle_volumes` and
-- solution.csv (Id = <id>_Systole or <id>_Diastole, Volume, Usage) as `kaggle_solution`.
-- @example cinestream sql --table kaggle_volumes=truth/train.csv,truth/validate.csv --table kaggle_solution=truth/solution.csv kaggle_truth
SELECT CAST("Id" AS VARCHAR) AS study_id,
       CAST("Systole" AS DOUBLE) AS systole_ml,
       CAST("Diastole" AS DOUBLE) AS diastole_ml
FROM kaggle_volumes
UNION ALL
SELECT split_part(CAST("Id" AS VARCHAR), '_', 1) AS study_id,
       MAX(CASE WHEN split_part(CAST("Id" AS VARCHAR), '_', 2) = 'Systole' THEN CAST("Volume" AS DOUBLE) END) AS systole_ml,
       MAX(CASE WHEN split_part(CAST("Id" AS VARCHAR), '_', 2) = 'Diastole' THEN CAST("Volume" AS DOUBLE) END) AS diastole_ml
FROM kaggle_solution
GROUP BY split_part(CAST("Id" AS VARCHAR), '_', 1)
