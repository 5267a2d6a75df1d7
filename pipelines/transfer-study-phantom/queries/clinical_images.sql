-- The labelled images of the clinical phantom's studies in one split (field strength below
-- 7 T): the base model (TL²'s start) learns them before the study moves it to the 7T domain.
-- @param clinical_split text = 'train'  the split to take studies from
-- @param masks_of text = 'phantom'  whose masks
-- @example cinestream select --data ./transfer-study-phantom/data --queries pipelines/transfer-study-phantom/queries --query clinical_images --name tsp_clinical_train
SELECT l.study_id, l.slice_index, l.frame_index, l.labeller
FROM labels l
JOIN studies s ON s.study_id = l.study_id
WHERE l.labeller = ${masks_of}
  AND s.split = ${clinical_split}
  AND s.field_strength_t < 7
