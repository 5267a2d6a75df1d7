-- Confidence-set membership per study × labeller: p5, p10, p15 (confidence ≤ 0.05, 0.10, 0.15) and in_set (≤ threshold).
-- One row per study and labeller: the preferred rows of `label_quality` (where an
-- `<id>_rot90` variant exists, the variant's). On the authors' table with the Kaggle truth this
-- selects 175 / 520 / 763 studies (p5: train 75, validate 27, test 73).
-- @param threshold number = 0.05  the confidence limit of `in_set` (0.05 is p5)
-- @example cinestream sql --data ./data "SELECT split, count(*) FILTER (WHERE p5) AS p5, count(*) FILTER (WHERE p10) AS p10, count(*) FILTER (WHERE p15) AS p15 FROM confidence_sets GROUP BY split"
SELECT study_id, labeller, split, confidence,
       COALESCE(confidence <= 0.05, false) AS p5,
       COALESCE(confidence <= 0.10, false) AS p10,
       COALESCE(confidence <= 0.15, false) AS p15,
       COALESCE(confidence <= ${threshold}, false) AS in_set
FROM label_quality
WHERE preferred
