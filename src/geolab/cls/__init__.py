"""Study ``cls``: land-cover classification of patches cut from the Dubai aerial tiles."""
