#!/usr/bin/env python3
"""Generate the example sentiment model, deterministically (same bytes on every run).

Layout mirrors the real DistilBERT SST-2 ONNX export:

    sst2-tiny/config.json            id2label NEGATIVE/POSITIVE, model_type distilbert
    sst2-tiny/tokenizer.json         BERT-style WordPiece, loads with `tokenizers`
    sst2-tiny/tokenizer_config.json
    sst2-tiny/special_tokens_map.json
    sst2-tiny/vocab.txt
    sst2-tiny/README.md              model card (YAML front matter)
    sst2-tiny/onnx/model.onnx        inputs input_ids, attention_mask (int64 [batch, seq]);
                                     output logits (float32 [batch, 2])

The network is a lexicon-weighted bag of words: each token id gathers a 2-vector
(negative, positive evidence), masked by attention_mask, summed over the sequence, plus
a bias. Sentiment words carry strong weights; every other word a small deterministic
"noise" weight, so confidences vary like a real model's. It gets obviously positive and
obviously negative English right; negation and sarcasm it does not (like any bag of words).

Usage: python model/examples/generate.py [--out DIR] [--scale S] [--bias B] [--pad-mb N]
(--scale/--bias exist so tests can make altered models for the canary; --pad-mb makes
the ONNX N MiB bigger with embedding rows no token id reaches, for size benches and tests).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import struct
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from lexicon import NEGATIVE, NEUTRAL, POSITIVE  # noqa: E402

SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
MAX_LEN = 512
OPSET = 17
IR_VERSION = 8


def vocabulary() -> list[str]:
    words = sorted(set(POSITIVE) | set(NEGATIVE) | set(NEUTRAL))
    punct = list(".,!?;:'\"()-")
    return SPECIAL + punct + words


def _noise(word: str) -> tuple[float, float]:
    """Deterministic small weights for neutral words, from sha256 (no RNG state)."""
    d = hashlib.sha256(word.encode()).digest()
    a, b = struct.unpack(">HH", d[:4])
    return ((a / 65535.0) - 0.5) * 0.5, ((b / 65535.0) - 0.5) * 0.5


def weights(vocab: list[str], scale: float) -> list[list[float]]:
    rows = []
    for tok in vocab:
        if tok in POSITIVE:
            w = POSITIVE[tok]
            rows.append([-w * scale, w * scale])
        elif tok in NEGATIVE:
            w = NEGATIVE[tok]
            rows.append([w * scale, -w * scale])
        elif tok in SPECIAL or len(tok) == 1:
            rows.append([0.0, 0.0])
        else:
            n0, n1 = _noise(tok)
            rows.append([n0 * scale, n1 * scale])
    return rows


def build_onnx(vocab: list[str], scale: float, bias: float, pad_mb: int = 0) -> bytes:
    import onnx
    from onnx import TensorProto, helper, numpy_helper
    import numpy as np

    emb = np.asarray(weights(vocab, scale), dtype=np.float32)
    if pad_mb:
        # rows no token id reaches: a model of realistic size with the same outputs
        # (seeded noise, so the bytes do not compress away in an image layer)
        rows = pad_mb * (1 << 20) // (4 * emb.shape[1])
        pad = np.random.default_rng(0).standard_normal((rows, emb.shape[1]), dtype=np.float32)
        emb = np.concatenate([emb, pad * np.float32(1e-3)])
    b = np.asarray([-bias, bias], dtype=np.float32)
    nodes = [
        helper.make_node("Gather", ["embedding", "input_ids"], ["token_logits"], axis=0),
        helper.make_node("Cast", ["attention_mask"], ["mask_f"], to=TensorProto.FLOAT),
        helper.make_node("Unsqueeze", ["mask_f", "axes_2"], ["mask_3d"]),
        helper.make_node("Mul", ["token_logits", "mask_3d"], ["masked"]),
        helper.make_node("ReduceSum", ["masked", "axes_1"], ["summed"], keepdims=0),
        helper.make_node("Add", ["summed", "bias"], ["logits"]),
    ]
    graph = helper.make_graph(
        nodes,
        "sst2_tiny_bag_of_words",
        inputs=[
            helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "sequence"]),
            helper.make_tensor_value_info(
                "attention_mask", TensorProto.INT64, ["batch", "sequence"]
            ),
        ],
        outputs=[helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 2])],
        initializer=[
            numpy_helper.from_array(emb, "embedding"),
            numpy_helper.from_array(b, "bias"),
            numpy_helper.from_array(np.asarray([2], dtype=np.int64), "axes_2"),
            numpy_helper.from_array(np.asarray([1], dtype=np.int64), "axes_1"),
        ],
    )
    model = helper.make_model(
        graph,
        producer_name="release-example-generator",
        producer_version="1",
        opset_imports=[helper.make_opsetid("", OPSET)],
    )
    model.ir_version = IR_VERSION
    onnx.checker.check_model(model)
    return model.SerializeToString(deterministic=True)


def build_tokenizer(vocab: list[str]) -> str:
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors

    ids = {tok: i for i, tok in enumerate(vocab)}
    tok = Tokenizer(models.WordPiece(ids, unk_token="[UNK]", max_input_chars_per_word=100))
    tok.normalizer = normalizers.BertNormalizer(
        clean_text=True, handle_chinese_chars=True, strip_accents=None, lowercase=True
    )
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", ids["[CLS]"]), ("[SEP]", ids["[SEP]"])],
    )
    tok.decoder = decoders.WordPiece(prefix="##")
    tok.enable_truncation(max_length=MAX_LEN)
    for s in SPECIAL:
        tok.add_special_tokens([s])
    # tokenizers serialises maps in id order; re-dump with sorted keys for stable bytes
    return json.dumps(json.loads(tok.to_str()), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def config_json(vocab_size: int) -> str:
    cfg = {
        "_name_or_path": "release-example/sst2-tiny",
        "activation": "gelu",
        "architectures": ["DistilBertForSequenceClassification"],
        "finetuning_task": "sst-2",
        "id2label": {"0": "NEGATIVE", "1": "POSITIVE"},
        "label2id": {"NEGATIVE": 0, "POSITIVE": 1},
        "max_position_embeddings": MAX_LEN,
        "model_type": "distilbert",
        "pad_token_id": 0,
        "vocab_size": vocab_size,
    }
    return json.dumps(cfg, indent=2, sort_keys=True) + "\n"


MODEL_CARD = """---
language: en
license: apache-2.0
library_name: onnxruntime
pipeline_tag: text-classification
tags:
  - sentiment-analysis
  - example
datasets:
  - generated
---

# sst2-tiny

A small, deterministic sentiment model generated by `model/examples/generate.py` in the
`release` repository. Same layout as the DistilBERT SST-2 ONNX export (config.json,
tokenizer.json, onnx/model.onnx with inputs `input_ids` and `attention_mask` and output
`logits`), so everything that ships the real model can be exercised offline.

## Intended use
Tests, demos and the offline quick start of `release`. Not for production sentiment.

## Limitations
A lexicon-weighted bag of words: negation, sarcasm and context are not modelled.
"""


def generate(out: Path, scale: float = 1.0, bias: float = 0.0, pad_mb: int = 0) -> dict[str, bytes]:
    vocab = vocabulary()
    files = {
        "config.json": config_json(len(vocab)).encode(),
        "tokenizer.json": build_tokenizer(vocab).encode(),
        "tokenizer_config.json": (
            json.dumps(
                {
                    "do_lower_case": True,
                    "model_max_length": MAX_LEN,
                    "tokenizer_class": "DistilBertTokenizer",
                    "cls_token": "[CLS]",
                    "sep_token": "[SEP]",
                    "pad_token": "[PAD]",
                    "unk_token": "[UNK]",
                    "mask_token": "[MASK]",
                },
                indent=2,
                sort_keys=True,
            )
            + "\n"
        ).encode(),
        "special_tokens_map.json": (
            json.dumps(
                {
                    "cls_token": "[CLS]",
                    "mask_token": "[MASK]",
                    "pad_token": "[PAD]",
                    "sep_token": "[SEP]",
                    "unk_token": "[UNK]",
                },
                indent=2,
                sort_keys=True,
            )
            + "\n"
        ).encode(),
        "vocab.txt": ("\n".join(vocab) + "\n").encode(),
        "README.md": MODEL_CARD.encode(),
        "onnx/model.onnx": build_onnx(vocab, scale, bias, pad_mb),
    }
    for rel, data in files.items():
        p = out / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        tmp = p.with_name(f".{p.name}.tmp")
        tmp.write_bytes(data)
        os.chmod(tmp, 0o644)
        os.replace(tmp, p)
    return files


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--out", type=Path, default=HERE / "sst2-tiny")
    ap.add_argument(
        "--scale", type=float, default=1.0, help="multiply every weight (1.0 = the example)"
    )
    ap.add_argument(
        "--bias", type=float, default=0.0, help="logit bias towards POSITIVE (0.0 = none)"
    )
    ap.add_argument(
        "--pad-mb",
        type=int,
        default=0,
        help="grow the ONNX by this many MiB of embedding rows no token reaches (same "
        "outputs; benches and tests of image size use it)",
    )
    args = ap.parse_args()
    files = generate(args.out, args.scale, args.bias, args.pad_mb)
    print(f"wrote {len(files)} files to {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
