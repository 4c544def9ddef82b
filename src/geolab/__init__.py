"""geolab: reproducible geospatial ML studies under one DVC stage graph."""

__version__ = "0.1.0"
