-- Every labelled frame of the studies in a confidence set, as frame keys for `cinestream select`.
-- The studies with confidence ≤ threshold in the chosen splits, each frame with the labeller whose
-- volumes were judged (its masks are the training labels). The base model trains on the set's
-- train + test studies and validates on its validate studies (docs/science.md §3).
-- @param threshold number = 0.05  the confidence limit (0.05 = p5, 0.10 = p10, 0.15 = p15)
-- @param splits text = 'train,test'  comma-separated splits to take studies from
-- @example cinestream select --data ./data --query confidence_frames --name p5_train --param splits=train,test
SELECT l.study_id, l.slice_index, l.frame_index, l.labeller, c.split, c.confidence
FROM confidence_sets c
JOIN labels l ON l.study_id = c.study_id AND l.labeller = c.labeller
WHERE COALESCE(c.confidence <= ${threshold}, false)
  AND array_has(string_to_array(${splits}, ','), c.split)
