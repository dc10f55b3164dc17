"""Probe: SmolLM2 on LMDeploy's PyTorch engine alone, the 48 built-in questions as one greedy batch,
with CUDA graphs (the default) and in eager mode, each in a fresh process; prints the replies.
Seen through the console: TurboMind and transformers answered 27.1%, the PyTorch engine 2-4%
with replies like 'Paris922' and 'To' (run)."""

import json
import multiprocessing
import sys


def run(eager: bool) -> None:
    from lmdeploy import GenerationConfig, PytorchEngineConfig, pipeline

    from compare.quality import builtin_questions, exact_match, question_messages

    questions = builtin_questions()
    pipe = pipeline(
        "/tmp/models/SmolLM2-135M-Instruct",
        backend_config=PytorchEngineConfig(cache_max_entry_count=0.4, eager_mode=eager),
        log_level="ERROR",
    )
    greedy = GenerationConfig(max_new_tokens=16, do_sample=False, top_k=1)
    batch = pipe.infer([question_messages(q) for q in questions], gen_config=greedy)
    single = [pipe.infer(question_messages(q), gen_config=greedy) for q in questions[:8]]
    right = sum(exact_match(r.text, q) for r, q in zip(batch, questions, strict=True))
    print(
        json.dumps(
            {
                "eager": eager,
                "batch_exact": f"{right} of {len(questions)}",
                "batch": [r.text for r in batch[:12]],
                "one_at_a_time": [r.text for r in single],
            }
        ),
        flush=True,
    )
    pipe.close()


if __name__ == "__main__":
    sys.path.insert(0, ".")
    for eager in (False, True):
        process = multiprocessing.get_context("spawn").Process(target=run, args=(eager,))
        process.start()
        process.join()
