"""Stage ner_train: fine-tune the token classifier; dvclive logs loss and F1 per epoch."""

from pathlib import Path

from geolab.common.stage import train_stage
from geolab.ner.dataset import read_jsonl
from geolab.ner.train import train


def _sentences(data: str) -> list:
    return read_jsonl(Path(data))


if __name__ == "__main__":
    train_stage(__doc__, "ner", [("data", "dataset .jsonl")], train, load=_sentences)
