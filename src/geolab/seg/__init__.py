"""Study ``seg``: semantic segmentation of the Dubai aerial tiles into 6 classes."""
