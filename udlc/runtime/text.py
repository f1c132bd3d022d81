"""Predictions from an exported text classifier (task: sequence_classification), with onnxruntime and numpy:
the file carries its tokenizer, the name of the text column and the token limit, so a CSV of texts is read,
tokenized, padded with its mask and classified here, one answer per row, keyed by the row's line (or an id
column's cell)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from udlc.errors import UdlcError
from udlc.runtime.files import Opened, damaged, opened
from udlc.runtime.predict import BATCH, Predictions
from udlc.runtime.rows import column_index, read_csv_rows, refuse_blank_rows, refuse_id
from udlc.tasks.served import TEXT_CLASSES


class TextClassifier:
    serves = (TEXT_CLASSES,)
    reads = "a text classifier"

    def __init__(self, path: str | Path | Opened, device: str = "cpu"):
        from udlc.data.text import tokenizer_from_json

        file = opened(path, device, self)
        self.session, meta = file.session, file.meta
        try:
            self.column, self.limit = meta["text_column"], int(meta["max_tokens"])
            self.classes = json.loads(meta["classes"])
            self.tokenizer = tokenizer_from_json(json.loads(meta["tokenizer"]))
            # sentence pairs (udlc.data.pairs): the tokenizer has [SEP], and the two columns are a JSON list
            pairs = "[SEP]" in getattr(self.tokenizer, "specials", ()) and self.column.startswith("[")
            self.columns = json.loads(self.column) if pairs else [self.column]
        except (KeyError, ValueError) as e:
            raise damaged(file.path, e) from None
        self.inputs = [i.name for i in self.session.get_inputs()]

    def answer_file(self, inputs: Path, id_column: str | None = None) -> str:
        """`udlc predict`: each text of a CSV's text column with its class and the classes' probabilities."""
        if Path(inputs).suffix.lower() != ".csv":
            refuse_id(id_column, inputs)
        return self.predict_csv(inputs, id_column).to_csv()

    def encode(self, text: str | list[str]) -> tuple[np.ndarray, np.ndarray]:
        """A text's ids and token types; a sentence pair's as `[CLS] first [SEP] second [SEP]`, types 0 then 1."""
        if len(self.columns) == 2:
            from udlc.data.pairs import encode_pair

            if isinstance(text, str) or len(text) != 2:
                raise UdlcError(f"the model reads pairs of texts ({' and '.join(self.columns)}), not one text: "
                                "give a CSV with both columns")
            return encode_pair(self.tokenizer, text[0], text[1], self.limit)
        ids = self.tokenizer.encode(text)[:self.limit]
        return ids, np.zeros_like(ids)

    def predict_texts(self, texts: list[str] | list[list[str]], where: list[str] | None = None) -> Predictions:
        """Each text's (or pair's) class; `where` names each text in an error (a file's line), else its position."""
        ids = []
        for i, text in enumerate(texts):
            try:
                ids.append(self.encode(text))
            except ValueError as e:  # a char tokenizer exported before it had an unknown id
                at = where[i] if where else f"text {i + 1}"
                raise UdlcError(f"{at}: {e} — this model file's tokenizer has no id for them: export the run "
                                "again with this udlc (its char tokenizer maps them to an unknown id), or "
                                "drop them from the text") from None
        probabilities = []
        for start in range(0, len(ids), BATCH):
            chunk = ids[start:start + BATCH]
            longest = max(1, max(len(i) for i, _ in chunk))
            tokens = np.zeros((len(chunk), longest), np.int64)
            types = np.zeros((len(chunk), longest), np.int64)
            mask = np.zeros((len(chunk), longest), bool)
            for row, (i, t) in enumerate(chunk):
                tokens[row, :len(i)], types[row, :len(i)], mask[row, :len(i)] = i, t, True
            feed = {"tokens": tokens, "tokens_mask": mask, "token_types": types}
            probabilities.append(self.session.run(["probabilities"], {n: feed[n] for n in self.inputs})[0])
        p = np.concatenate(probabilities)
        return Predictions("classification", p.argmax(1), p, self.classes)

    def predict_csv(self, path: str | Path, id_column: str | None = None) -> Predictions:
        """A CSV with a header naming the text column (others are ignored): one answer per row, keyed by its
        line or by its cell of `id_column`. An empty row or text cell is an error naming its line."""
        path = Path(path)
        rows, lines = read_csv_rows(path)
        header, rows, lines = [h.strip() for h in rows[0]], rows[1:], lines[1:]
        if not rows:
            raise UdlcError(f"{path} has a header row but no texts — add a row per text below it")
        refuse_blank_rows(rows, lines, str(path), "a text")
        text_ats = [column_index(header, c, str(path), "the model reads its texts from") for c in self.columns]
        key_at = None if id_column is None else column_index(header, id_column, str(path), "--id names the answers by")
        texts, keys = [], []
        for row, line in zip(rows, lines):
            cells = [c.strip() for c in row]
            for column, text_at in zip(self.columns, text_ats):
                if text_at >= len(row) or not cells[text_at]:
                    raise UdlcError(f"{path} line {line}: column '{column}' is empty — give the text to classify, "
                                    "or delete the line")
            texts.append([row[a] for a in text_ats] if len(text_ats) == 2 else row[text_ats[0]])
            keys.append(str(line) if key_at is None else (cells[key_at] if key_at < len(row) else ""))
        predictions = self.predict_texts(texts, [f"{path} line {line}" for line in lines])
        predictions.keys, predictions.key_name = keys, id_column or "line"
        return predictions
