"""Text in and out of a keras-prompt export, as the Keras model does it.

Shared by the ONNX Runtime and LiteRT clients; needs only `sentencepiece`
and `numpy`. An export's JSON description carries the rule:

- encoding (the model's KerasHub preprocessor): SentencePiece ids truncated
  to `encoder_sequence_length - 1`, then `</s>`, then padding 0;
- decoding (keras-prompt's one detokenization rule): skip the decoder start
  token (column 0), end at the first `end_token_id`, drop the
  `strip_token_ids` and every id outside `[0, num_text_ids)`, then decode
  with the sentencepiece model that renders T5's sentinels as
  `<extra_id_N>`. No id ever fails the batch.

Example:
```python
text = PromptText(metadata, tokenizer_proto, detokenizer_proto)
ids, mask = text.encode(["rte hypothesis: ..."])
text.decode(generated_ids)
```
"""

import numpy as np
import sentencepiece


class PromptText:
    """Tokenizer and detokenizer of one export.

    Args:
        metadata: the export's JSON description (a dict).
        tokenizer_proto: serialized SentencePiece model for encoding.
        detokenizer_proto: serialized SentencePiece model for decoding
            (with the sentinels); defaults to `tokenizer_proto`.
    """

    def __init__(self, metadata, tokenizer_proto, detokenizer_proto=None):
        self.encoder_sequence_length = int(metadata["encoder_sequence_length"])
        self.end_token_id = int(metadata["end_token_id"])
        self.strip_token_ids = set(metadata["strip_token_ids"])
        self.num_text_ids = int(metadata["num_text_ids"])
        self.tokenizer = sentencepiece.SentencePieceProcessor(
            model_proto=tokenizer_proto
        )
        self.detokenizer = sentencepiece.SentencePieceProcessor(
            model_proto=detokenizer_proto or tokenizer_proto
        )

    def encode(self, texts, length=None):
        """Strings -> `(encoder_token_ids, encoder_padding_mask)` int32
        `[len(texts), length]` (default: the export's encoder length)."""
        length = int(length or self.encoder_sequence_length)
        token_ids = np.zeros((len(texts), length), np.int32)
        padding_mask = np.zeros((len(texts), length), np.int32)
        for row, pieces in enumerate(self.tokenizer.encode(list(texts))):
            pieces = list(pieces)[: length - 1] + [self.end_token_id]
            token_ids[row, : len(pieces)] = pieces
            padding_mask[row, : len(pieces)] = 1
        return token_ids, padding_mask

    def decode(self, token_ids):
        """Generated ids `[B, L]` (column 0 the start token) -> strings."""
        texts = []
        for row in np.asarray(token_ids):
            kept = []
            for token in row[1:].tolist():
                if token == self.end_token_id:
                    break
                if 0 <= token < self.num_text_ids and (
                    token not in self.strip_token_ids
                ):
                    kept.append(token)
            texts.append(self.detokenizer.decode(kept))
        return texts
