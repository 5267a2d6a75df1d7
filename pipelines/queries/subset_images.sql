-- N random images of `subset_pool` (seeded, prefix-stable: the first N of one shuffle).
-- @param images integer = 100  how many images
-- @example cinestream select --data ./data --query subset_images --param images=500 --name n500
SELECT study_id, slice_index, frame_index, labeller, split, volunteer, image_rank
FROM subset_pool
WHERE image_rank <= ${images}
