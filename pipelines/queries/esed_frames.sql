-- The ED and ES frame of each study × labeller, one row per phase: study_id, labeller, phase (ED | ES), frame_index, lv_ml.
-- From `volumes`: ED = maximum LV volume (ties → the highest frame), ES = minimum (ties → the
-- lowest). Labelling only these frames is the "90% fewer labels" subset of the transfer study.
-- @example cinestream sql --data ./data "SELECT * FROM esed_frames ORDER BY study_id, phase"
SELECT study_id, labeller, 'ED' AS phase, ed_frame AS frame_index, edv_ml AS lv_ml FROM volumes
UNION ALL
SELECT study_id, labeller, 'ES' AS phase, es_frame AS frame_index, esv_ml AS lv_ml FROM volumes
