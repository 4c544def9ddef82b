"""Study ``ner``: finding mountain names in English text (BIO tags, one entity type)."""
