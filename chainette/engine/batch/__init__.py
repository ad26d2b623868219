"""Batch mode: an engine's requests go through a provider's Batch API instead of one HTTP
request each (half the price on OpenAI, separate and much larger rate limits), or through
``vllm run-batch`` for a managed vLLM engine.

The seam is the engine itself: :class:`~chainette.engine.batch.engine.BatchEngine`'s
``complete()`` puts the request into a batch collector and awaits the reply, so the row
runner, branches, joins, re-asks, error records and the run directory work exactly as online.

* :mod:`.settings`  ``BatchSettings`` (the engine config's ``batch:`` mapping) and the limits;
* :mod:`.wire`      the documented file formats (request lines, output and error lines), pure;
* :mod:`.record`    ``BatchRecord`` (one batch as journaled) and the ``BatchStore`` protocol
  (implemented by :mod:`chainette.io.batch_journal` in the run directory);
* :mod:`.openai_api` the OpenAI Files + Batches API (also any compatible gateway);
* :mod:`.vllm_offline` ``vllm run-batch -i -o --model`` as the "provider";
* :mod:`.engine`    the collector: flushes files, submits, polls with back-off, matches
  results back by ``custom_id``, re-queues unfinished requests once, re-attaches on resume.
"""
