-- Pixel counts of every labelled image (study × labeller × slice × frame) with the geometry volumes need.
-- By default from the `labels` table: lv_pixels and my_pixels as ingest counted them, the pixel
-- area of the grid the mask lives on (mm²) and the empirical slice spacing (mm); the mask bytes
-- are never read. To get volumes from another labeller's counts, replace this view:
--   --table pixel_counts=counts.csv  with columns study_id, labeller, slice_index, frame_index,
--   lv_pixels, my_pixels, pixel_area_mm2, slice_spacing_mm.
-- pixel_area_mm2 is the area of a pixel of the grid the mask was drawn on. Where images were
-- padded to a square of max(X, Y) pixels and resized to S × S before labelling (as the authors'
-- network input was), a mask pixel covers max(X, Y)² · spacing_row · spacing_col / S² mm² of the
-- original image (X × Y pixels of spacing_row × spacing_col mm), e.g. a 256 × 208 image of
-- 1.4 mm pixels labelled at 128 × 128: 256² · 1.4² / 128² = 7.84 mm².
-- @example cinestream sql --data ./data "SELECT labeller, count(*) AS images, sum(lv_pixels) AS lv FROM pixel_counts GROUP BY labeller"
SELECT study_id, labeller, slice_index, frame_index, lv_pixels, my_pixels,
       pixel_spacing_row_mm * pixel_spacing_col_mm AS pixel_area_mm2,
       slice_spacing_mm
FROM labels
