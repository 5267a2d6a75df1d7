-- The dataset's own ED/ES frames beside the `volumes` rule's, per study × labeller: study_id, labeller, dataset_ed_frame, ed_frame, dataset_es_frame, es_frame, ed_agrees, es_agrees.
-- Only studies whose source dataset gives ED/ES (ACDC's Info.cfg, the M&Ms CSV, ukbb or M&Ms-2
-- ED/ES copies of the cine volume). The rule's frames come from the labeller's masks: with
-- expert masks at ED and ES only (ACDC, M&Ms) it picks between those two frames.
-- @example cinestream sql --data ./data "SELECT * FROM dataset_esed WHERE NOT (ed_agrees AND es_agrees)"
SELECT v.study_id, v.labeller, s.dataset_ed_frame, v.ed_frame, s.dataset_es_frame, v.es_frame,
       s.dataset_ed_frame = v.ed_frame AS ed_agrees, s.dataset_es_frame = v.es_frame AS es_agrees
FROM volumes v JOIN studies s ON s.study_id = v.study_id
WHERE s.dataset_ed_frame IS NOT NULL
