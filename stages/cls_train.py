"""Stage cls_train: train the patch classifier; dvclive logs loss and accuracy per epoch."""

from geolab.cls.train import train
from geolab.common.stage import train_stage

if __name__ == "__main__":
    train_stage(__doc__, "cls", [("patches", "cls_prepare's .npz")], train)
