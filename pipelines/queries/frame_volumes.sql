-- LV and MY volume of every labelled frame, per study × labeller × frame_index.
-- Volume (mL) = pixels × pixel area (mm²) × slice spacing (mm) / 1000, summed over the frame's
-- slices (docs/science.md §1), from `pixel_counts`. When a study's grid is the same on every slice
-- (always, after curation) the pixel counts are summed first, so equal counts give equal volumes
-- and ties stay ties. Columns: study_id, labeller, frame_index, slices (labelled slices in the
-- frame), lv_pixels, my_pixels, lv_ml, my_ml.
-- @param labeller text = NULL  only this labeller's masks (NULL: every labeller)
-- @example cinestream sql --data ./data "SELECT frame_index, lv_ml FROM frame_volumes WHERE study_id = '1' ORDER BY frame_index"
SELECT study_id, labeller, frame_index,
       COUNT(*) AS slices,
       SUM(lv_pixels) AS lv_pixels,
       SUM(my_pixels) AS my_pixels,
       CASE WHEN MIN(pixel_area_mm2) = MAX(pixel_area_mm2) AND MIN(slice_spacing_mm) = MAX(slice_spacing_mm)
            THEN CAST(SUM(lv_pixels) AS DOUBLE) * MIN(pixel_area_mm2) * MIN(slice_spacing_mm) / 1000
            ELSE SUM(CAST(lv_pixels AS DOUBLE) * pixel_area_mm2 * slice_spacing_mm) / 1000 END AS lv_ml,
       CASE WHEN MIN(pixel_area_mm2) = MAX(pixel_area_mm2) AND MIN(slice_spacing_mm) = MAX(slice_spacing_mm)
            THEN CAST(SUM(my_pixels) AS DOUBLE) * MIN(pixel_area_mm2) * MIN(slice_spacing_mm) / 1000
            ELSE SUM(CAST(my_pixels AS DOUBLE) * pixel_area_mm2 * slice_spacing_mm) / 1000 END AS my_ml
FROM pixel_counts
WHERE ${labeller} IS NULL OR labeller = ${labeller}
GROUP BY study_id, labeller, frame_index
