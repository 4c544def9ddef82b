"""Study ``match``: Sentinel-2 image matching across seasons, with known homographies."""
