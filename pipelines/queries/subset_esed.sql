-- The ED and ES images of every study of `subset_pool`: all slices of the two frames `esed_frames` names.
-- phase is ED, ES, or ED+ES when one frame is both (a single-frame study).
-- @example cinestream select --data ./data --query subset_esed --name esed
SELECT p.study_id, p.slice_index, p.frame_index, p.labeller, p.split, p.volunteer, e.phase
FROM subset_pool p
JOIN (
    SELECT study_id, labeller, frame_index, string_agg(phase, '+' ORDER BY phase) AS phase
    FROM esed_frames
    GROUP BY study_id, labeller, frame_index
) e ON e.study_id = p.study_id AND e.labeller = p.labeller AND e.frame_index = p.frame_index
