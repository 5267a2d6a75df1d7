-- The labelled images subsets are drawn from: one row per image × labeller of a split, with its volunteer.
-- volunteer is the source study (the two halves of a split repeated stack are one person).
-- Also ranks every image by shuffle_key(seed, key): `image_rank` 1, 2, … is one fixed shuffle per
-- seed, so the first n images of a seed contain the first m < n (prefix-stable subsets).
-- @param pool_split text = 'train'  the split to draw from (NULL: every split)
-- @param labeller text = NULL  only this labeller's masks (NULL: every labeller)
-- @param seed integer = 1  the shuffle
-- @example cinestream sql --data ./data "SELECT volunteer, count(*) FROM subset_pool GROUP BY volunteer"
WITH pool AS (
    SELECT l.study_id, l.slice_index, l.frame_index, l.labeller, l.split,
           COALESCE(s.source_study_id, l.study_id) AS volunteer,
           CAST(l.study_id AS VARCHAR) || '/' || CAST(l.slice_index AS VARCHAR) || '/' ||
               CAST(l.frame_index AS VARCHAR) || '/' || CAST(l.labeller AS VARCHAR) AS image_key
    FROM labels l
    LEFT JOIN studies s ON s.study_id = l.study_id
    WHERE (${pool_split} IS NULL OR l.split = ${pool_split})
      AND (${labeller} IS NULL OR l.labeller = ${labeller})
)
SELECT study_id, slice_index, frame_index, labeller, split, volunteer,
       ROW_NUMBER() OVER (ORDER BY shuffle_key(${seed}, image_key), image_key) AS image_rank
FROM pool
