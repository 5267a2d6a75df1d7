-- The authors' 7T transfer-study log in the shape of `study_log`: one row per run × epoch.
-- Register their per-epoch log (train_log_combined.csv: epoch, train_loss, valid_loss, diceLV,
-- diceMY, time, model) as `authors_log` and their subset membership (image_subsets.tsv: one row
-- per training image, TRUE/FALSE per subset) as `authors_subsets`, then use this view as
-- `study_log`. `model` names the start (plainLearn = R, imagenetTransferLearn = TL,
-- doubleTransferLearn = TL2) and, after `_`, the subset (none: full). Each run is two stages of
-- equal length (frozen at lr 1e-4, then unfrozen at 1e-5; R is never frozen), so a run's first
-- half of epochs is stage 0. Images seen count whole batches of 8, as fastai (and our trainer)
-- drop the last partial batch: (epoch + 1) · 8 · ⌊N / 8⌋. `seconds` sums the epochs' times.
-- @example cinestream sql --table authors_log=7T/train_log_combined.csv --table authors_subsets=7T/image_subsets.tsv --view study_log="SELECT * FROM authors_study_log" study_summary
-- @empty `authors_log` has no rows, or none of its models has a subset that `authors_subsets` has a column for
WITH flags AS (
    SELECT upper(CAST(v7 AS VARCHAR)) = 'TRUE' AS v7, upper(CAST(v3 AS VARCHAR)) = 'TRUE' AS v3,
           upper(CAST(v1 AS VARCHAR)) = 'TRUE' AS v1, upper(CAST(r7 AS VARCHAR)) = 'TRUE' AS r7,
           upper(CAST(r3 AS VARCHAR)) = 'TRUE' AS r3, upper(CAST(r1 AS VARCHAR)) = 'TRUE' AS r1,
           upper(CAST(esed AS VARCHAR)) = 'TRUE' AS esed, upper(CAST(r_esed AS VARCHAR)) = 'TRUE' AS r_esed
    FROM authors_subsets
),
sizes AS (
    SELECT 'full' AS subset, COUNT(*) AS n FROM flags
    UNION ALL SELECT 'v7', SUM(CASE WHEN v7 THEN 1 ELSE 0 END) FROM flags
    UNION ALL SELECT 'v3', SUM(CASE WHEN v3 THEN 1 ELSE 0 END) FROM flags
    UNION ALL SELECT 'v1', SUM(CASE WHEN v1 THEN 1 ELSE 0 END) FROM flags
    UNION ALL SELECT 'r7', SUM(CASE WHEN r7 THEN 1 ELSE 0 END) FROM flags
    UNION ALL SELECT 'r3', SUM(CASE WHEN r3 THEN 1 ELSE 0 END) FROM flags
    UNION ALL SELECT 'r1', SUM(CASE WHEN r1 THEN 1 ELSE 0 END) FROM flags
    UNION ALL SELECT 'esed', SUM(CASE WHEN esed THEN 1 ELSE 0 END) FROM flags
    UNION ALL SELECT 'r_esed', SUM(CASE WHEN r_esed THEN 1 ELSE 0 END) FROM flags
),
runs AS (
    SELECT CAST(model AS VARCHAR) AS run,
           CASE WHEN model LIKE 'plainLearn%' THEN 'R'
                WHEN model LIKE 'imagenetTransferLearn%' THEN 'TL'
                WHEN model LIKE 'doubleTransferLearn%' THEN 'TL2'
                ELSE split_part(CAST(model AS VARCHAR), '_', 1) END AS start,
           CASE WHEN strpos(CAST(model AS VARCHAR), '_') > 0
                THEN substr(CAST(model AS VARCHAR), strpos(CAST(model AS VARCHAR), '_') + 1)
                ELSE 'full' END AS subset,
           CAST(epoch AS INT) AS global_epoch,
           COUNT(*) OVER (PARTITION BY model) / 2 AS stage_epochs,
           CAST(train_loss AS DOUBLE) AS train_loss,
           CAST(valid_loss AS DOUBLE) AS valid_loss,
           CAST("diceLV" AS DOUBLE) AS dice_lv,
           CAST("diceMY" AS DOUBLE) AS dice_my,
           CASE WHEN split_part(CAST("time" AS VARCHAR), ':', 3) = ''
                THEN CAST(split_part(CAST("time" AS VARCHAR), ':', 1) AS DOUBLE) * 60
                     + CAST(split_part(CAST("time" AS VARCHAR), ':', 2) AS DOUBLE)
                ELSE CAST(split_part(CAST("time" AS VARCHAR), ':', 1) AS DOUBLE) * 3600
                     + CAST(split_part(CAST("time" AS VARCHAR), ':', 2) AS DOUBLE) * 60
                     + CAST(split_part(CAST("time" AS VARCHAR), ':', 3) AS DOUBLE) END AS epoch_seconds
    FROM authors_log
),
staged AS (
    SELECT r.*, CASE WHEN r.global_epoch < r.stage_epochs THEN 0 ELSE 1 END AS stage, s.n AS subset_images
    FROM runs r
    JOIN sizes s ON s.subset = r.subset
)
SELECT 'authors_7T' AS study,
       run,
       start,
       subset,
       CAST(subset_images AS BIGINT) AS subset_images,
       CAST(stage AS INT) AS stage,
       CAST(global_epoch - stage * stage_epochs AS INT) AS epoch,
       global_epoch,
       CAST((global_epoch + 1) * (subset_images / 8) AS BIGINT) AS steps,
       CAST((global_epoch + 1) * (subset_images / 8) * 8 AS BIGINT) AS images_seen,
       CASE WHEN stage = 0 THEN 1e-4 ELSE 1e-5 END AS lr_max,
       stage = 0 AND start <> 'R' AS frozen,
       train_loss,
       valid_loss,
       dice_lv,
       dice_my,
       SUM(epoch_seconds) OVER (PARTITION BY run ORDER BY global_epoch) AS seconds
FROM staged
