"""How far a preset's answers move from the first preset's: next-token agreement on a fixed
text, and an exact-match score on a question set with known answers.

Agreement reads the whole next-token distribution at every position of the same text (LMDeploy's
`get_logits` on both engines, transformers' logits on the CPU): the share of positions whose most
likely token is the same as the reference's, and the mean KL divergence KL(reference || preset)
in nats. Both are 1 and 0 for identical weights and settings; KV quantization and AWQ move them.
"""

from __future__ import annotations

import json
import re
import string
from dataclasses import dataclass

import numpy as np

from backends import NextTokenLogprobs

from .prompts import DATA_DIR

# Written for this project: short questions with one exact answer (arithmetic, facts, words).
BUILTIN_QUESTIONS = DATA_DIR / "questions.jsonl"
MAX_QUESTIONS = 500
AGREEMENT_TOKENS = 512  # positions of the perplexity text compared
_ANSWER_FORMAT = "Answer with only the answer: a number, a word or a name. No explanation, no full sentence."
_EXAMPLES = (("What is 2 + 2?", "4"), ("What colour is the sky on a clear day?", "Blue"))
_FLOAT16_FLOOR = np.log(np.float32(2.0**-24))  # float16's smallest positive value
_ARTICLES = re.compile(r"\b(a|an|the)\b")


@dataclass(frozen=True)
class Agreement:
    """A preset's next-token distributions against the reference's, on the same tokens."""

    top1: float  # share of positions where the most likely next token is the same
    mean_kl: float  # mean KL(reference || this preset), nats
    positions: int


def agreement(reference: NextTokenLogprobs, other: NextTokenLogprobs) -> Agreement:
    """ValueError where the two cannot be compared (another tokenizer or vocabulary)."""
    if reference.token_ids != other.token_ids:
        raise ValueError("the text was tokenized differently (another tokenizer than the first preset's)")
    p, q = _finite(reference.logprobs), _finite(other.logprobs)
    if p.shape != q.shape:
        raise ValueError(f"another vocabulary than the first preset's ({q.shape[1]:,} vs {p.shape[1]:,} entries)")
    top1 = float(np.mean(p.argmax(axis=1) == q.argmax(axis=1)))
    kl = (np.exp(p) * (p - q)).sum(axis=1)
    return Agreement(top1, float(kl.mean()), p.shape[0])


def _finite(logprobs) -> np.ndarray:
    """float32 log-probabilities; float16's underflow (-inf, far in the tail) becomes the log of
    its smallest step, so that a token one side all but rules out costs much, not infinitely much."""
    return np.maximum(np.asarray(logprobs, np.float32), _FLOAT16_FLOOR)


@dataclass(frozen=True)
class Question:
    question: str
    answers: tuple[str, ...]  # any of them counts


def load_questions(text: str, source: str = "your questions") -> list[Question]:
    """JSONL of {"question": ..., "answer": ...} (answer: a string or a list of accepted strings);
    ValueError names the line and what is wrong with it."""
    questions = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except ValueError as exc:
            raise ValueError(f"{source}, line {number}: not JSON ({exc.args[0]})") from exc
        if not isinstance(item, dict) or not isinstance(item.get("question"), str) or not item["question"].strip():
            raise ValueError(f'{source}, line {number}: expected {{"question": "...", "answer": "..."}}')
        answer = item.get("answer")
        answers = [answer] if isinstance(answer, (str, int, float)) else answer
        if not isinstance(answers, list) or not answers or not all(isinstance(a, (str, int, float)) for a in answers):
            raise ValueError(f"{source}, line {number}: 'answer' must be a string, a number or a list of them")
        questions.append(Question(item["question"].strip(), tuple(str(a) for a in answers)))
    if not questions:
        raise ValueError(f"{source}: no questions (one JSON object per line)")
    if len(questions) > MAX_QUESTIONS:
        raise ValueError(f"{source}: {len(questions)} questions; at most {MAX_QUESTIONS}")
    return questions


def builtin_questions() -> list[Question]:
    return load_questions(BUILTIN_QUESTIONS.read_text(encoding="utf-8"), "the built-in questions")


def question_messages(question: Question) -> list[dict]:
    """The question in a chat with two worked examples, so that even a small model answers in
    the short form exact match needs."""
    messages = [{"role": "system", "content": _ANSWER_FORMAT}]
    for asked, answered in _EXAMPLES:
        messages += [{"role": "user", "content": asked}, {"role": "assistant", "content": answered}]
    return messages + [{"role": "user", "content": question.question}]


def normalize(text: str) -> str:
    """SQuAD's answer normalization: lower case, no punctuation, no articles, single spaces."""
    text = "".join(ch for ch in text.lower() if ch not in string.punctuation)
    return " ".join(_ARTICLES.sub(" ", text).split())


def exact_match(reply: str, question: Question) -> bool:
    """The reply's first line, normalized, equals one of the accepted answers, normalized."""
    first_line = reply.strip().split("\n", 1)[0]
    return normalize(first_line) in {normalize(answer) for answer in question.answers}
