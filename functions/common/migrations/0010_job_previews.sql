-- Small WebP previews of a job, made once by the pipeline in the results bucket (functions/common/previews.py):
--
-- preview_key: the customer's photo as a WebP (long side 1024 px, upright, sRGB, no metadata), written by the
--              validation step from the image it decoded; browsers cannot show HEIC or TIFF, so the viewer's
--              "before" side uses it. previews/{tenant}/{job}/original.webp
-- thumb_key:   the result as a WebP thumbnail (long side 320 px, alpha kept) for lists, written once when the
--              result is recorded. previews/{tenant}/{job}/thumb.webp
--
-- NULL when the preview could not be made (it is best effort and never fails a job) and for jobs from before this
-- migration. The jobs table's grants and row-level security policies cover the new columns.

ALTER TABLE jobs
    ADD COLUMN preview_key text CHECK (preview_key IS NULL OR length(preview_key) <= 1024),
    ADD COLUMN thumb_key text CHECK (thumb_key IS NULL OR length(thumb_key) <= 1024);
