-- All images of N volunteers chosen by seed (the transfer study's N = 14, 7, 3, 1), from `subset_pool`.
-- Volunteers are ranked by shuffle_key(seed, volunteer): for one seed the 7 chosen are among the
-- 14, the 3 among the 7, and so on.
-- @param volunteers integer = 14  how many volunteers
-- @param seed integer = 1  the shuffle
-- @example cinestream select --data ./data --query subset_volunteers --param volunteers=3 --param seed=2 --name v3_s2
WITH ranked AS (
    SELECT volunteer, ROW_NUMBER() OVER (ORDER BY shuffle_key(${seed}, volunteer), volunteer) AS volunteer_rank
    FROM (SELECT DISTINCT volunteer FROM subset_pool) v
)
SELECT p.study_id, p.slice_index, p.frame_index, p.labeller, p.split, p.volunteer, r.volunteer_rank
FROM subset_pool p
JOIN ranked r ON r.volunteer = p.volunteer
WHERE r.volunteer_rank <= ${volunteers}
