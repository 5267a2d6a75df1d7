-- The ED and ES images of the studies whose labels from one labeller are in the confidence set:
-- the paper's recipe in small (label with a model, keep the studies whose volumes agree with the
-- truth, learn those studies' ED/ES masks). One row per image, with that labeller's masks.
-- @param judged text = 'first-pass'  the labeller whose volumes were judged, and whose masks are learnt
-- @param threshold number = 0.05  the confidence limit (0.05 is p5, 0.15 is p15)
-- @param confident_split text = 'train'  the split to take studies from
-- @example cinestream select --data ./quickstart/data --queries pipelines/quickstart/queries --query confident_esed --name confident --param threshold=0.10
SELECT DISTINCT l.study_id, l.slice_index, l.frame_index, l.labeller, c.split, c.confidence
FROM confidence_sets c
JOIN esed_frames e ON e.study_id = c.study_id AND e.labeller = c.labeller
JOIN labels l ON l.study_id = e.study_id AND l.labeller = e.labeller AND l.frame_index = e.frame_index
WHERE c.labeller = ${judged}
  AND c.split = ${confident_split}
  AND COALESCE(c.confidence <= ${threshold}, false)
