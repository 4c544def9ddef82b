"""Study ``geoloc``: where in Croatia four street-level photos (N/E/S/W) were taken."""
