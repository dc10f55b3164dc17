"""Probe: why the PyTorch engine garbled replies to 48 questions sent through the console (the 7B ladder run's
run: exact match 2-4% against 11 of 48 for `Pipeline.infer`). Drives LMDeploy's own AsyncEngine the
way the console's worker does (one `generate` per request on the pipeline's loop) and varies one thing
at a time: the seed the console passes with greedy decoding, requests arriving together or a few
milliseconds apart, and what Compare runs before the questions (LMDeploy's get_ppl, get_logits).
Prints one JSON line a variant."""

import asyncio
import json
import sys


async def ask_all(pipe, questions, gen_config, gap_s: float) -> list[str]:
    engine = pipe.async_engine

    async def one(q) -> str:
        from compare.quality import question_messages

        request = await engine.preprocess(
            messages=question_messages(q), session_id=pipe.session_mgr.get(), gen_config=gen_config
        )
        return "".join([out.response or "" async for out in engine.generate(request, stream_response=True)])

    tasks = []
    for q in questions:
        tasks.append(asyncio.create_task(one(q)))
        if gap_s:
            await asyncio.sleep(gap_s)
    return await asyncio.gather(*tasks)


async def logits_of(engine, ids):
    return await engine.async_get_logits([ids])


def main() -> None:
    from lmdeploy import GenerationConfig, PytorchEngineConfig, pipeline

    from compare.prompts import PERPLEXITY_TEXT
    from compare.quality import builtin_questions, exact_match

    questions = builtin_questions()
    pipe = pipeline(
        "/tmp/models/SmolLM2-135M-Instruct",
        backend_config=PytorchEngineConfig(cache_max_entry_count=0.4),
        log_level="ERROR",
    )
    as_console = dict(max_new_tokens=16, do_sample=False, temperature=1.0, top_p=1.0, top_k=1, repetition_penalty=1.0)
    text = PERPLEXITY_TEXT.read_text(encoding="utf-8")
    ids = pipe.async_engine.tokenizer.encode(text)[:512]
    loop = pipe.internal_thread.loop
    variants = [("seed 0, together", 0, 0.0, None), ("seed 0, 3 ms apart", 0, 0.003, None)]
    variants += [("seed None, together", None, 0.0, None)]
    variants += [("after get_ppl", 0, 0.0, pipe.async_engine.async_get_ppl), ("after get_logits", 0, 0.0, logits_of)]
    for name, seed, gap_s, before in variants:
        if before is not None:  # what Compare runs before the questions: perplexity, then agreement
            asyncio.run_coroutine_threadsafe(
                before(pipe.async_engine, ids) if before is logits_of else before(ids), loop
            ).result()
        config = GenerationConfig(**as_console, random_seed=seed)
        replies = asyncio.run_coroutine_threadsafe(ask_all(pipe, questions, config, gap_s), loop).result()
        right = sum(exact_match(r, q) for r, q in zip(replies, questions, strict=True))
        print(
            json.dumps({"variant": name, "exact": f"{right} of {len(questions)}", "replies": replies[:10]}), flush=True
        )
    pipe.close()


if __name__ == "__main__":
    sys.path.insert(0, ".")
    main()
