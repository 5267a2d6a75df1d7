-- Pixel counts of every labelled image (study × labeller × slice × frame) with the geometry volumes need.
-- By default from the `labels` table: lv_pixels and my_pixels as ingest counted them, the pixel
-- area of the grid the mask lives on (mm²) and the empirical slice spacing (mm); the mask bytes
-- are never read. To get volumes from another labeller's counts, replace this view:
--   --table pixel_counts=counts.csv  with columns study_id, labeller, slice_index, frame_index,
--   lv_pixels, my_pixels, pixel_area_mm2, slice_spacing_mm.
-- @example cinestream sql --data ./data "SELECT labeller, count(*) AS images, sum(lv_pixels) AS lv FROM pixel_counts GROUP BY labeller"
SELECT study_id, labeller, slice_index, frame_index, lv_pixels, my_pixels,
       pixel_spacing_row_mm * pixel_spacing_col_mm AS pixel_area_mm2,
       slice_spacing_mm
FROM labels
