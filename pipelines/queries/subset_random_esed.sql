-- As many random images of `subset_pool` as `subset_esed` has: the control for training on ED/ES only.
-- The first images of the seed's shuffle, so it is prefix-stable like subset_images.
-- @example cinestream select --data ./data --query subset_random_esed --param seed=3 --name random_esed_s3
SELECT study_id, slice_index, frame_index, labeller, split, volunteer, image_rank
FROM subset_pool
WHERE image_rank <= (SELECT COUNT(*) FROM subset_esed)
