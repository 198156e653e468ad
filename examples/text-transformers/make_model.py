"""Build two tiny BERT models from a config (random weights, no downloads, a few seconds) and write them next
to this file as Hugging Face ``save_pretrained`` folders (``config.json``, ``model.safetensors``, tokenizer files):

- ``classifier/``: ``BertForSequenceClassification`` with ``id2label`` negative/neutral/positive —
  ``mldeploy.yaml`` serves it (labels with scores);
- ``embedder/``: ``BertModel`` for feature extraction (mean-pooled embedding vectors);
- ``sample.json``: a few request texts for the parity check and ``mldeploy predict``.

The WordPiece tokenizer is trained on a small built-in corpus with the ``tokenizers`` library.

    pip install 'mldeploy[text]'
    python examples/text-transformers/make_model.py && mldeploy -f examples/text-transformers package
"""

from __future__ import annotations

import json
from pathlib import Path

HERE = Path(__file__).resolve().parent
MAX_LENGTH = 64  # max_position_embeddings: longer texts are truncated
LABELS = ["negative", "neutral", "positive"]
CORPUS = [
    "the service was quick and the staff were friendly",
    "terrible experience, the order arrived late and cold",
    "an average product that does what it says",
    "i love this phone, the battery lasts for days",
    "the screen cracked after a week, very disappointed",
    "delivery was on time and the package was intact",
    "not bad, not great, just fine for the price",
    "customer support never answered my emails",
    "excellent quality and a beautiful design",
    "the manual is confusing but the device works",
    "worst purchase of the year, do not buy it",
    "it is okay, i expected a little more",
]
SAMPLE = ["the staff were friendly and quick", "the order arrived cold and late",
          "an okay device for the price", "excellent battery"]


def _tokenizer(folder: Path):
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import BertTokenizerFast

    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece()
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    trainer = trainers.WordPieceTrainer(vocab_size=400, special_tokens=specials, show_progress=False)
    tok.train_from_iterator(CORPUS * 4, trainer)
    cls, sep = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = processors.TemplateProcessing(single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1",
                                                       special_tokens=[("[CLS]", cls), ("[SEP]", sep)])
    fast = BertTokenizerFast(tokenizer_object=tok, model_max_length=MAX_LENGTH, unk_token="[UNK]",
                             pad_token="[PAD]", cls_token="[CLS]", sep_token="[SEP]", mask_token="[MASK]")
    fast.save_pretrained(folder)
    return fast


def main(out: Path = HERE) -> Path:
    import torch
    from transformers import BertConfig, BertForSequenceClassification, BertModel
    from transformers.utils import logging

    logging.disable_progress_bar()
    torch.manual_seed(0)
    # one tokenizer, saved next to both models: WordPiece training is not deterministic across runs (ties between
    # equally frequent merges), so two trainings could disagree on the vocabulary size the models are built for
    folders = [out / name for name in ("classifier", "embedder")]
    for folder in folders:
        folder.mkdir(parents=True, exist_ok=True)
    tokenizer = _tokenizer(folders[0])
    tokenizer.save_pretrained(folders[1])
    vocab = len(tokenizer)
    common = {"vocab_size": vocab, "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2,
              "intermediate_size": 64, "max_position_embeddings": MAX_LENGTH,
              "initializer_range": 0.5}  # wide random weights: outputs that differ between texts
    clf = BertForSequenceClassification(BertConfig(**common, id2label=dict(enumerate(LABELS)),
                                                   label2id={n: i for i, n in enumerate(LABELS)})).eval()
    clf.save_pretrained(out / "classifier")
    BertModel(BertConfig(**common), add_pooling_layer=False).eval().save_pretrained(out / "embedder")
    (out / "sample.json").write_text(json.dumps({"inputs": SAMPLE}) + "\n")
    return out / "classifier"


if __name__ == "__main__":
    print(f"wrote {main()}")
