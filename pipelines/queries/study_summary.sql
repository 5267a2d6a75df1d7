-- One row per run of a transfer-learning study: the validation Dice LV/MY after the first epoch, at the raw and the smoothed peak, and at the end.
-- Over `study_log` (what `cinestream study` writes, or another group's log through a view such
-- as `authors_study_log`). `first_*` is the first validation point (after the first epoch),
-- `peak_*` the highest logged value with the images seen there, `smooth_peak_*` the highest
-- value of a loess fit of Dice on images seen (span 0.75, degree 2: ggplot's geom_smooth, which
-- the paper drew its curves with), `final_*` the last point (the exported model). `epochs` is
-- the number of epochs run (both stages), `points` the number of validation points.
-- @param study text = NULL  only this study (NULL: every study in the log)
-- @example cinestream sql --data ./data study_summary --format csv
-- @empty `study_log` has no rows: run `cinestream study`, or give another log with --table/--view (see authors_study_log)
SELECT study,
       run,
       start,
       subset,
       MAX(subset_images) AS subset_images,
       MAX(global_epoch) + 1 AS epochs,
       COUNT(*) AS points,
       MIN(images_seen) AS first_images,
       first_value(dice_lv ORDER BY images_seen) AS first_dice_lv,
       first_value(dice_my ORDER BY images_seen) AS first_dice_my,
       MAX(dice_lv) AS peak_dice_lv,
       first_value(images_seen ORDER BY dice_lv DESC, images_seen) AS peak_images_lv,
       MAX(dice_my) AS peak_dice_my,
       first_value(images_seen ORDER BY dice_my DESC, images_seen) AS peak_images_my,
       loess_peak(CAST(images_seen AS DOUBLE), dice_lv) AS smooth_peak_dice_lv,
       CAST(loess_peak_at(CAST(images_seen AS DOUBLE), dice_lv) AS BIGINT) AS smooth_peak_images_lv,
       loess_peak(CAST(images_seen AS DOUBLE), dice_my) AS smooth_peak_dice_my,
       CAST(loess_peak_at(CAST(images_seen AS DOUBLE), dice_my) AS BIGINT) AS smooth_peak_images_my,
       MAX(images_seen) AS final_images,
       last_value(dice_lv ORDER BY images_seen) AS final_dice_lv,
       last_value(dice_my ORDER BY images_seen) AS final_dice_my,
       MAX(seconds) AS seconds
FROM study_log
WHERE ${study} IS NULL OR study = ${study}
GROUP BY study, run, start, subset
ORDER BY study, start, 5 DESC, subset
