-- Per study × labeller: ED and ES frame, EDV, ESV, SV, EF, myocardial mass at ED, and the LV volume of every frame.
-- From `frame_volumes` by the rule of docs/science.md §1: ED = the frame of maximum LV volume (ties →
-- the highest frame_index), ES = the frame of minimum LV volume (ties → the lowest).
-- EF (%) = 100 × (EDV − ESV) / EDV, NULL when EDV is 0 (nothing labelled). Myocardial mass (g) =
-- MY volume at ED × 1.05 g/mL. Columns: study_id, labeller, frames, slices (most labelled slices
-- in a frame), incomplete_frames (frames with fewer labelled slices than that), ed_frame,
-- es_frame, edv_ml, esv_ml, sv_ml, ef_pct, myo_mass_ed_g, lv_ml_per_frame (by frame_index).
-- @example cinestream sql --data ./data "SELECT study_id, labeller, edv_ml, esv_ml, ef_pct FROM volumes ORDER BY ef_pct"
WITH ranked AS (
    SELECT f.*,
           ROW_NUMBER() OVER (PARTITION BY study_id, labeller ORDER BY lv_ml DESC, frame_index DESC) AS ed_rank,
           ROW_NUMBER() OVER (PARTITION BY study_id, labeller ORDER BY lv_ml ASC, frame_index ASC) AS es_rank,
           MAX(slices) OVER (PARTITION BY study_id, labeller) AS max_slices
    FROM frame_volumes f
),
per_study AS (
    SELECT study_id, labeller,
           COUNT(*) AS frames,
           MAX(slices) AS slices,
           SUM(CASE WHEN slices < max_slices THEN 1 ELSE 0 END) AS incomplete_frames,
           MAX(CASE WHEN ed_rank = 1 THEN frame_index END) AS ed_frame,
           MAX(CASE WHEN es_rank = 1 THEN frame_index END) AS es_frame,
           MAX(CASE WHEN ed_rank = 1 THEN lv_ml END) AS edv_ml,
           MAX(CASE WHEN es_rank = 1 THEN lv_ml END) AS esv_ml,
           MAX(CASE WHEN ed_rank = 1 THEN my_ml END) AS my_ed_ml,
           array_agg(lv_ml ORDER BY frame_index) AS lv_ml_per_frame
    FROM ranked
    GROUP BY study_id, labeller
)
SELECT study_id, labeller, frames, slices, incomplete_frames, ed_frame, es_frame, edv_ml, esv_ml,
       edv_ml - esv_ml AS sv_ml,
       CASE WHEN edv_ml > 0 THEN 100 * (edv_ml - esv_ml) / edv_ml END AS ef_pct,
       my_ed_ml * 1.05 AS myo_mass_ed_g,
       lv_ml_per_frame
FROM per_study
