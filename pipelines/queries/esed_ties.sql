-- Every frame tied for ED or ES: study_id, labeller, phase (ED | ES), frame_index, lv_ml, chosen (the frame `volumes` picks), tied_frames.
-- From `frame_volumes`: a frame is tied for ED when its LV volume equals the study's maximum, for
-- ES when it equals the minimum. `volumes` picks one of them by the rule of docs/science.md §1
-- (ED: the highest frame, ES: the lowest); references that keep every tied frame (the 7T one does)
-- are compared against this list. tied_frames > 1 marks a tie.
-- @example cinestream sql --data ./data "SELECT * FROM esed_ties WHERE tied_frames > 1"
WITH extremes AS (
    SELECT study_id, labeller, MAX(lv_ml) AS max_ml, MIN(lv_ml) AS min_ml
    FROM frame_volumes
    GROUP BY study_id, labeller
),
tied AS (
    SELECT f.study_id, f.labeller, 'ED' AS phase, f.frame_index, f.lv_ml
    FROM frame_volumes f JOIN extremes e ON e.study_id = f.study_id AND e.labeller = f.labeller
    WHERE f.lv_ml = e.max_ml
    UNION ALL
    SELECT f.study_id, f.labeller, 'ES' AS phase, f.frame_index, f.lv_ml
    FROM frame_volumes f JOIN extremes e ON e.study_id = f.study_id AND e.labeller = f.labeller
    WHERE f.lv_ml = e.min_ml
),
counted AS (
    SELECT t.*, COUNT(*) OVER (PARTITION BY study_id, labeller, phase) AS tied_frames
    FROM tied t
)
SELECT c.study_id, c.labeller, c.phase, c.frame_index, c.lv_ml,
       c.frame_index = CASE WHEN c.phase = 'ED' THEN v.ed_frame ELSE v.es_frame END AS chosen,
       c.tied_frames
FROM counted c
JOIN volumes v ON v.study_id = c.study_id AND v.labeller = c.labeller
ORDER BY c.study_id, c.labeller, c.phase, c.frame_index
