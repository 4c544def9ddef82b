"""Schema of the ``geoloc`` section of params.yaml."""

from __future__ import annotations

import dataclasses
from typing import Literal

from geolab.geoloc.fetch import StreetViewParams
from geolab.geoloc.grid import GridParams


@dataclasses.dataclass
class SampleParams:
    """The offline sample (``geoloc.sample``): synthetic 4-view photos of real positions.

    Attributes:
        count: places rendered, sampled uniformly inside Croatia.
        size: side of each view in pixels.
    """

    count: int = 1000
    size: int = 64

    def validate(self) -> None:
        """Check the values."""
        if self.count < 10 or self.size < 16:
            raise ValueError("sample.count must be >= 10 and sample.size >= 16")


@dataclasses.dataclass
class GeolocParams:
    """The ``geoloc`` section (data, split and grid so far; the model comes with its stages).

    Attributes:
        source: ``sample`` (synthetic photos of real positions, offline) or ``streetview``
            (Google Street View Static API; needs ``GOOGLE_MAPS_API_KEY`` and the network).
        sample: the offline sample's options.
        fetch: the Street View fetcher's options.
        val_frac: share of places held out for validation (drawn with ``base.seed``).
        test_frac: share of places held out for the test.
        grid: the grid classes over Croatia.
    """

    source: Literal["sample", "streetview"] = "sample"
    sample: SampleParams = dataclasses.field(default_factory=SampleParams)
    fetch: StreetViewParams = dataclasses.field(default_factory=StreetViewParams)
    val_frac: float = 0.15
    test_frac: float = 0.15
    grid: GridParams = dataclasses.field(default_factory=GridParams)

    def validate(self) -> None:
        """Cross-key checks (called by the params loader)."""
        if not (0 < self.val_frac < 1 and 0 < self.test_frac < 1):
            raise ValueError("val_frac and test_frac must be in (0, 1)")
        if self.val_frac + self.test_frac >= 0.9:
            raise ValueError("val_frac + test_frac must leave at least 10 % for training")
