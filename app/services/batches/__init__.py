"""The Batch API (OpenAI's /v1/batches and Anthropic's /v1/messages/batches): validation, execution, results.

service.py and message_batches.py are the two APIs, execute.py (with run_lines.py) the `execute_batch`
job, store.py the rows all three write; lines.py and messages.py hold the lines' and Anthropic's shapes."""
