"""Predictions from an exported text classifier (task: sequence_classification), with onnxruntime and numpy:
the file carries its tokenizer, the name of the text column and the token limit, so a CSV of texts is read,
tokenized, padded with its mask and classified here."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from udlc.errors import SpecError, UdlcError
from udlc.runtime.predict import BATCH, Predictions, open_session


class TextClassifier:
    def __init__(self, path: str | Path, device: str = "cpu"):
        from udlc.data.text import tokenizer_from_json

        path = Path(path)
        self.session, meta = open_session(path, device)
        try:
            self.column, self.limit = meta["text_column"], int(meta["max_tokens"])
            self.classes = json.loads(meta["classes"])
            self.tokenizer = tokenizer_from_json(json.loads(meta["tokenizer"]))
        except (KeyError, ValueError) as e:
            raise UdlcError(f"{path}: its udlc metadata is damaged ({type(e).__name__}: {e}) — export it again "
                            "with `udlc export RUN_FOLDER`") from None
        self.inputs = [i.name for i in self.session.get_inputs()]

    def predict_texts(self, texts: list[str]) -> Predictions:
        try:
            ids = [self.tokenizer.encode(t)[:self.limit] for t in texts]
        except ValueError as e:
            raise UdlcError(f"a text cannot be encoded: {e}") from None
        probabilities = []
        for start in range(0, len(ids), BATCH):
            chunk = ids[start:start + BATCH]
            longest = max(1, max(len(i) for i in chunk))
            tokens = np.zeros((len(chunk), longest), np.int64)
            mask = np.zeros((len(chunk), longest), bool)
            for row, i in enumerate(chunk):
                tokens[row, :len(i)], mask[row, :len(i)] = i, True
            feed = {"tokens": tokens, "tokens_mask": mask}
            probabilities.append(self.session.run(["probabilities"], {n: feed[n] for n in self.inputs})[0])
        p = np.concatenate(probabilities)
        return Predictions("classification", p.argmax(1), p, self.classes)

    def predict_csv(self, path: str | Path) -> Predictions:
        from udlc.data.text import read_text_csv

        path = Path(path)
        try:
            texts, _ = read_text_csv(path, self.column, self.column)  # the text column read as its own label
        except SpecError as e:
            raise UdlcError(e.message + (f" ({e.hint})" if e.hint else "")) from None
        if not texts:
            raise UdlcError(f"{path.name} holds no rows to classify")
        return self.predict_texts(texts)
