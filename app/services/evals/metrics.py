"""The text_similarity metrics, implemented plainly over lower-cased word tokens (no NLP library):
fuzzy_match (difflib's ratio), BLEU (up to 4-grams, add-one smoothing above unigrams, brevity penalty),
GLEU (Google BLEU: min of n-gram precision and recall, 1–4-grams pooled), METEOR (exact unigram matches,
recall-weighted F-mean, fragmentation penalty) and ROUGE-1…5 (n-gram F1) and ROUGE-L (LCS F1).
`cosine` needs embeddings and lives with the graders."""
from __future__ import annotations

import math
import re
from collections import Counter
from difflib import SequenceMatcher

_WORD = re.compile(r"\w+", re.UNICODE)


def tokens(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def _ngrams(words: list[str], n: int) -> Counter:
    return Counter(tuple(words[i:i + n]) for i in range(len(words) - n + 1))


def fuzzy_match(a: str, b: str) -> float:
    return SequenceMatcher(None, a, b).ratio()


def bleu(hypothesis: str, reference: str, max_n: int = 4) -> float:
    hyp, ref = tokens(hypothesis), tokens(reference)
    if not hyp or not ref:
        return 0.0
    logs = 0.0
    for n in range(1, max_n + 1):
        h = _ngrams(hyp, n)
        overlap = sum((h & _ngrams(ref, n)).values())
        total = max(len(hyp) - n + 1, 0)
        if n == 1:
            if overlap == 0:
                return 0.0
            p = overlap / total
        else:
            p = (overlap + 1) / (total + 1)
        logs += math.log(p) / max_n
    penalty = 1.0 if len(hyp) > len(ref) else math.exp(1 - len(ref) / len(hyp))
    return penalty * math.exp(logs)


def gleu(hypothesis: str, reference: str, max_n: int = 4) -> float:
    hyp, ref = tokens(hypothesis), tokens(reference)
    h_all, r_all = Counter(), Counter()
    for n in range(1, max_n + 1):
        h_all.update(_ngrams(hyp, n))
        r_all.update(_ngrams(ref, n))
    h_total, r_total = sum(h_all.values()), sum(r_all.values())
    if not h_total or not r_total:
        return 0.0
    overlap = sum((h_all & r_all).values())
    return min(overlap / h_total, overlap / r_total)


def meteor(hypothesis: str, reference: str) -> float:
    hyp, ref = tokens(hypothesis), tokens(reference)
    if not hyp or not ref:
        return 0.0
    used = [False] * len(ref)
    alignment: list[int] = []  # reference position of each matched hypothesis word, in hypothesis order
    for word in hyp:
        for j, candidate in enumerate(ref):
            if not used[j] and candidate == word:
                used[j] = True
                alignment.append(j)
                break
    matches = len(alignment)
    if matches == 0:
        return 0.0
    precision, recall = matches / len(hyp), matches / len(ref)
    f_mean = 10 * precision * recall / (recall + 9 * precision)
    chunks = 1 + sum(1 for a, b in zip(alignment, alignment[1:]) if b != a + 1)
    return f_mean * (1 - 0.5 * (chunks / matches) ** 3)


def rouge_n(hypothesis: str, reference: str, n: int) -> float:
    h, r = _ngrams(tokens(hypothesis), n), _ngrams(tokens(reference), n)
    overlap = sum((h & r).values())
    if not overlap:
        return 0.0
    precision, recall = overlap / sum(h.values()), overlap / sum(r.values())
    return 2 * precision * recall / (precision + recall)


def rouge_l(hypothesis: str, reference: str) -> float:
    hyp, ref = tokens(hypothesis), tokens(reference)
    if not hyp or not ref:
        return 0.0
    previous = [0] * (len(ref) + 1)
    for word in hyp:
        row = [0]
        for j, candidate in enumerate(ref):
            row.append(previous[j] + 1 if word == candidate else max(previous[j + 1], row[j]))
        previous = row
    lcs = previous[-1]
    if not lcs:
        return 0.0
    precision, recall = lcs / len(hyp), lcs / len(ref)
    return 2 * precision * recall / (precision + recall)


def similarity(metric: str, hypothesis: str, reference: str) -> float:
    """Every metric but cosine; scores in [0, 1]."""
    if metric == "fuzzy_match":
        return fuzzy_match(hypothesis, reference)
    if metric == "bleu":
        return bleu(hypothesis, reference)
    if metric == "gleu":
        return gleu(hypothesis, reference)
    if metric == "meteor":
        return meteor(hypothesis, reference)
    if metric == "rouge_l":
        return rouge_l(hypothesis, reference)
    if metric.startswith("rouge_") and metric[6:].isdigit():
        return rouge_n(hypothesis, reference, int(metric[6:]))
    raise ValueError(metric)


def cosine(a: list[float], b: list[float]) -> float:
    dot = sum(x * y for x, y in zip(a, b))
    norm = math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b))
    return dot / norm if norm else 0.0
