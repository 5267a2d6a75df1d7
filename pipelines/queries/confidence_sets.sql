-- Confidence-set membership per study × labeller: p5, p10, p15 (confidence ≤ 0.05, 0.10, 0.15) and in_set (≤ threshold).
-- One row per study and labeller: the preferred rows of `label_quality` (where an
-- `<id>_rot90` variant exists, the variant's). On the authors' table with the Kaggle truth this
-- selects 175 / 520 / 763 studies (p5: train 75, validate 27, test 73).
-- With qc=passed, only studies whose `label_qc` row for the same labeller passed (labels that
-- `cinestream label` checked); qc=any (the default) ignores quality control.
-- @param threshold number = 0.05  the confidence limit of `in_set` (0.05 is p5)
-- @param qc text = 'any'  `passed`: only studies that passed the labeller's quality control; `any`: all
-- @example cinestream sql --data ./data "SELECT split, count(*) FILTER (WHERE p5) AS p5, count(*) FILTER (WHERE p10) AS p10, count(*) FILTER (WHERE p15) AS p15 FROM confidence_sets GROUP BY split"
SELECT lq.study_id, lq.labeller, lq.split, lq.confidence,
       COALESCE(lq.confidence <= 0.05, false) AS p5,
       COALESCE(lq.confidence <= 0.10, false) AS p10,
       COALESCE(lq.confidence <= 0.15, false) AS p15,
       COALESCE(lq.confidence <= ${threshold}, false) AS in_set
FROM label_quality lq
LEFT JOIN label_qc q ON q.study_id = lq.study_id AND q.labeller = lq.labeller
WHERE lq.preferred AND (${qc} = 'any' OR COALESCE(q.passed, false))
