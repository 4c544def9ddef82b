"""Stage geoloc_train: train the 4-view geolocation network; dvclive logs loss and val km."""

from geolab.common.stage import train_stage
from geolab.geoloc.train import train

if __name__ == "__main__":
    train_stage(
        __doc__,
        "geoloc",
        [("dataset", "the geoloc_fetch dataset folder"), ("grid", "the geoloc_grid folder")],
        train,
    )
