"""The learned segmentation stage: SAM proposes segments, CLIP names them, the garment is the union of the
segments named as garment (see :mod:`modamoda_inference.segmentation.stage`)."""
