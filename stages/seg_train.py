"""Stage seg_train: train the segmentation model; dvclive logs loss and val mIoU per epoch."""

from geolab.common.stage import train_stage
from geolab.seg.train import train

if __name__ == "__main__":
    train_stage(__doc__, "seg", [("patches", "seg_prepare's .npz")], train)
