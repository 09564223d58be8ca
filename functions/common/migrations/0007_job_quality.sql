-- The inference engine's quality report for a job: {"score": 0..1, "threshold": 0..1}, from the job's metadata
-- document (the container writes it beside the result; the async endpoint keeps only the image). Set once, in
-- the transaction that makes the job final (a success, or a low_confidence refusal); NULL when the engine gave
-- none. The jobs table's grants and row-level security policies cover the new column.

ALTER TABLE jobs
    ADD COLUMN quality jsonb CHECK (
        quality IS NULL OR (
            jsonb_typeof(quality) = 'object'
            AND jsonb_typeof(quality -> 'score') = 'number'
            AND jsonb_typeof(quality -> 'threshold') = 'number'
            AND (quality ->> 'score')::numeric BETWEEN 0 AND 1
            AND (quality ->> 'threshold')::numeric BETWEEN 0 AND 1
        )
    );
